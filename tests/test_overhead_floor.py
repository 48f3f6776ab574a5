"""tools/overhead_floor.py: its floors do the layer's work (kernels only) or none (null),
and the script prints one row per layer and size."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scipy_layers import fft_abs, scipy_conv2d

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import floor_layers  # noqa: E402
import side_by_side  # noqa: E402
from tests._two_backwards import two_backwards_at_once  # noqa: E402


@pytest.mark.parametrize("size,kernel", [(16, 3), (64, 3), (16, 15), (70, 15)])
def test_kernels_only_conv_computes_what_the_layer_computes(size, kernel):
    x = torch.randn(size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 1, dtype=torch.float64, requires_grad=True)
    y_floor, y_layer = floor_layers.KernelsOnlyConv.apply(x, w, b), scipy_conv2d(x, w, b)
    g = torch.randn_like(y_layer)
    assert torch.equal(y_floor, y_layer)
    for ours, theirs in zip(torch.autograd.grad(y_floor, (x, w, b), g),
                            torch.autograd.grad(y_layer, (x, w, b), g)):
        torch.testing.assert_close(ours.reshape(theirs.shape), theirs, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(16, 16), (127, 127), (256, 256)])
def test_kernels_only_fft_computes_what_the_layer_computes(shape):
    x = torch.randn(shape, requires_grad=True)
    y_floor, y_layer = floor_layers.KernelsOnlyFFT.apply(x), fft_abs(x)
    g = torch.randn_like(y_layer)
    assert torch.equal(y_floor, y_layer)
    assert torch.equal(torch.autograd.grad(y_floor, x, g)[0], torch.autograd.grad(y_layer, x, g)[0])


def test_the_script_prints_a_row_per_layer_and_size():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "overhead_floor.py"), "--sizes", "8", "12",
         "--kernels", "3", "--batches", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()
            if line.startswith("| conv2d") or line.startswith("| fft_abs")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("conv2d 3x3", "8"), ("fft_abs", "8"), ("conv2d 3x3", "12"), ("fft_abs", "12")]
    for row in rows:
        assert all(float(cell) > 0 for cell in row[2:])


def test_the_script_takes_a_kernel_as_large_as_the_input_and_refuses_no_batches():
    # (mutation pass 110: a 3x3 kernel on a 3x3 input has one output; a 5x5 has none)
    script = [sys.executable, str(ROOT / "tools" / "overhead_floor.py")]
    result = subprocess.run([*script, "--sizes", "3", "--kernels", "3", "5", "--batches", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [line.split("|")[1:3] for line in result.stdout.splitlines()
            if line.startswith(("| conv2d", "| fft_abs"))] == [
        [" conv2d 3x3 ", " 3 "], [" fft_abs ", " 3 "]]
    result = subprocess.run([*script, "--batches", "0"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "--batches must be at least 1" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_the_script_times_what_each_column_names_at_one_thread_and_the_batches_asked(
        monkeypatch, capsys):
    """In-process, the timing replaced by a recorder: each conv column times the function
    it names (lambdas made in a loop bind their own), at one torch thread, --batches
    batches, and each ratio stands under its heading (mutation pass 115)."""
    import types
    import overhead_floor
    ran, timed = [], {}
    for name in ("native_conv2d", "scipy_conv2d", "NullConv", "KernelsOnlyConv"):
        real = getattr(overhead_floor, name)
        call = real.apply if name in ("NullConv", "KernelsOnlyConv") else real
        spy = (lambda *args, _name=name, _call=call: ran.append(_name) or _call(*args))
        monkeypatch.setattr(overhead_floor, name,
                            types.SimpleNamespace(apply=spy) if call is not real else spy)
    seconds = {"native": 1e-6, "null": 2e-6, "kernels": 3e-6, "layer": 5e-6}

    def batch_times(functions, batches, per_batch):
        for name, function in functions.items():
            ran.clear()
            function()
            timed.setdefault(name, []).append((tuple(ran), batches, torch.get_num_threads()))
        return {name: [seconds[name]] for name in functions}
    monkeypatch.setattr(overhead_floor, "batch_times", batch_times)
    monkeypatch.setattr(overhead_floor, "settle_allocator", lambda: None)
    monkeypatch.setattr(sys, "argv", ["overhead_floor.py", "--sizes", "8", "--kernels", "3",
                                      "--batches", "3"])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert overhead_floor.main() == 0
    finally:
        torch.set_num_threads(threads)
    assert timed == {"native": [(("native_conv2d",), 3, 1), ((), 3, 1)],
                     "null": [(("NullConv",), 3, 1), ((), 3, 1)],
                     "kernels": [(("KernelsOnlyConv",), 3, 1), ((), 3, 1)],
                     "layer": [(("scipy_conv2d",), 3, 1), ((), 3, 1)]}
    rows = [[cell.strip() for cell in line.split("|")[1:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| conv2d")]
    assert rows == [["conv2d 3x3", "8", "1.0", "2.0", "3.0", "5.0", "2.00", "3.00", "5.00"]]


@pytest.mark.parametrize("size, kernel, options", [
    ((2, 3, 9, 9), (4, 3, 3), {}),                      # im2col
    ((2, 4, 9, 9), (4, 3, 3), {"groups": 2, "stride": 2, "padding": 1}),
    ((1, 2, 12, 12), (3, 7, 7), {"dilation": 1}),
    ((2, 8, 10, 10), (2, 3, 3), {"padding": 1}),        # fewer outputs than inputs
    ((2, 1, 16, 16), (1, 3, 3), {}),                    # shift
    ((2, 4, 8, 8), (4, 3, 3), {"groups": 4}),           # depthwise
    ((0, 3, 9, 9), (4, 3, 3), {"padding": 1}),          # an empty batch: no kernels run
    ((2, 0, 9, 9), (4, 3, 3), {}),                      # no input channels
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_only_nchw_computes_what_the_layer_computes(size, kernel, options, dtype):
    from scipy_layers import conv2d
    x = torch.randn(size, dtype=dtype, requires_grad=True)
    w = torch.randn(kernel[0], size[1] // options.get("groups", 1), *kernel[1:], dtype=dtype,
                    requires_grad=True)
    b = torch.randn(kernel[0], dtype=dtype, requires_grad=True)
    floors = floor_layers.floor_functions("cnn")
    y_floor, y_layer = floors["kernels"](x, w, b, **options), conv2d(x, w, b, **options)
    g = torch.randn_like(y_layer)
    assert torch.equal(y_floor, y_layer)
    for ours, theirs in zip(torch.autograd.grad(y_floor, (x, w, b), g),
                            torch.autograd.grad(y_layer, (x, w, b), g)):
        assert torch.equal(ours, theirs)
    nulls = torch.autograd.grad(floors["null"](x, w, b, **options), (x, w, b), g)
    assert floors["null"](x, w, b, **options).shape == y_layer.shape
    assert [t.shape for t in nulls] == [x.shape, w.shape, b.shape]


def test_kernels_only_fft_takes_batches_and_null_conv_gives_every_gradient():
    x = torch.randn(3, 8, 10, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 8, 6, dtype=torch.float64)
    assert torch.equal(torch.autograd.grad(floor_layers.KernelsOnlyFFT.apply(x), x, g)[0],
                       torch.autograd.grad(fft_abs(x), x, g)[0])
    x2, w, b = (torch.randn(s, requires_grad=True) for s in ((9, 9), (3, 3), (1, 1)))
    grads = torch.autograd.grad(floor_layers.NullConv.apply(x2, w, b), (x2, w, b),
                                torch.ones(7, 7))
    assert [t.shape for t in grads] == [x2.shape, w.shape, b.shape]


def test_floor_functions_refuse_an_unknown_kind():
    with pytest.raises(ValueError, match="'conv', 'fft' or 'cnn'"):
        floor_layers.floor_functions("depthwise")


def _fresh_scratch_arrays(step, calls=6) -> int:
    """How many arrays scratch() newly made over ``calls`` steps after two warm-up ones."""
    import gc

    from scipy_layers import _workspace
    for _ in range(2):
        step()
        gc.collect()
    made = set(_workspace._made_here)
    fresh = 0
    for _ in range(calls):
        step()
        gc.collect()
        fresh += len(set(_workspace._made_here) - made)
        made = set(_workspace._made_here)
    return fresh


@pytest.mark.parametrize("shape", [(256, 256), (2, 128, 128)])
def test_kernels_only_fft_reuses_memory_as_the_layer_does(shape):
    """The floor hands its spectrum back to the pool and writes the gradient over it, as
    fft_abs does: a floor that allocated more would time slower than the layer."""
    from scipy_layers import _workspace
    _workspace.clear_workspace()
    x = torch.randn(shape, dtype=torch.float32, requires_grad=True)
    assert _fresh_scratch_arrays(lambda: fft_abs(x).sum().backward()) == 0
    assert _fresh_scratch_arrays(
        lambda: floor_layers.KernelsOnlyFFT.apply(x).sum().backward()) == 0


def test_kernels_only_fft_backward_again_recomputes():
    x = torch.randn(64, 64, dtype=torch.float64, requires_grad=True)
    y = floor_layers.KernelsOnlyFFT.apply(x)
    g = torch.randn_like(y)
    first = torch.autograd.grad(y, x, g, retain_graph=True)[0]
    assert torch.equal(first, torch.autograd.grad(fft_abs(x), x, g)[0])
    torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], first)


def test_the_floors_take_the_layers_arguments():
    from scipy_layers import conv2d
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w, b = torch.randn(4, 3, 3, 3, requires_grad=True), torch.randn(4)
    floors = floor_layers.floor_functions("cnn")
    kernels, null = floors["kernels"], floors["null"]
    assert torch.equal(kernels(x, w, bias=b), conv2d(x, w, bias=b))
    assert torch.equal(kernels(x, w, b, 2, 1), conv2d(x, w, b, 2, 1))  # stride, padding
    assert torch.equal(kernels(input=x, weight=w, bias=-b, padding=[1, 0]),
                       conv2d(x, w, -b, padding=[1, 0]))
    assert null(x, w, b, 2, 1).shape == conv2d(x, w, b, 2, 1).shape
    with pytest.raises(TypeError, match="strides"):
        kernels(x, w, b, strides=2)
    with pytest.raises(ValueError, match="4-D input"):
        null(x[0], w, b)
    x2, w2 = torch.randn(9, 9, requires_grad=True), torch.randn(3, 3, requires_grad=True)
    assert torch.equal(floor_layers.KernelsOnlyConv.apply(x2, w2), scipy_conv2d(x2, w2))
    grads = torch.autograd.grad(floor_layers.KernelsOnlyConv.apply(x2, w2), (x2, w2),
                                torch.ones(7, 7))
    assert all(torch.equal(a, b) for a, b in zip(grads, torch.autograd.grad(
        scipy_conv2d(x2, w2), (x2, w2), torch.ones(7, 7))))
    assert floor_layers.NullConv.apply(x2, w2).shape == (7, 7)


@pytest.mark.parametrize("first", ["plain", "create_graph"])
def test_kernels_only_fft_backwards_of_one_graph_in_two_threads_at_once(first, monkeypatch):
    """From the second hostile pass: a backward (thread A) held as it forms its gradient
    spectrum while a plain backward of the same graph (thread B) runs to its end; the
    floor kept its spectrum on ctx, which B then overwrote under A (create_graph: up to
    595 off). It now takes it as the layer does; both equal a call made alone."""
    gen = torch.Generator().manual_seed(5)
    leaf = torch.randn(2, 256, 128, dtype=torch.float64, generator=gen).requires_grad_()
    g = torch.randn(2, 256, 65, dtype=torch.float64, generator=gen)
    alone = torch.autograd.grad(fft_abs(leaf), leaf, g)[0]
    y = floor_layers.KernelsOnlyFFT.apply(leaf)
    results = two_backwards_at_once(y, leaf, g, first == "create_graph", monkeypatch)
    assert torch.equal(results["A"], alone) and torch.equal(results["B"], alone)


def _layer_inputs(kind, shape, kernel, dtype=torch.float64):
    """The registry's seeded inputs of a tools/side_by_side.py case kind; a cnn ``kernel``
    is (C_out, kH, kW, groups)."""
    import scipy_layers
    make_inputs = scipy_layers.LAYERS[side_by_side.LAYER_OF[kind][0]].make_inputs
    if kind == "cnn":
        return make_inputs(shape, kernel[:3], dtype=dtype, seed=0, groups=kernel[3])
    return make_inputs(shape, kernel, dtype=dtype, seed=0)


@pytest.mark.parametrize("kind, shape, kernel, options", [
    ("conv", (16, 16), (3, 3), {}),          # direct
    ("conv", (64, 64), (3, 3), {}),          # shift
    ("conv", (30, 12), (5, 1), {}),
    ("fft", (16, 16), None, {}),
    ("fft", (3, 8, 10), None, {}),
    ("cnn", (2, 3, 9, 9), (4, 3, 3, 1), {}),                                   # im2col
    ("cnn", (2, 4, 9, 9), (4, 3, 3, 2), {"groups": 2, "stride": 2, "padding": 1}),
    ("cnn", (2, 1, 16, 16), (1, 3, 3, 1), {}),                                # shift
    ("cnn", (2, 8, 10, 10), (2, 3, 3, 1), {"padding": 1}),                    # kn2row
    ("cnn", (0, 3, 9, 9), (4, 3, 3, 1), {}),                                  # empty batch
    ("cnn", (2, 0, 9, 9), (4, 3, 3, 1), {}),                                  # no channels
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_hot_floor_computes_the_layers_gradients_without_autograd(kind, shape, kernel,
                                                                      options, dtype):
    """hot_call runs the kernels-only floor's forward and backward as plain calls: the
    layer's gradients exactly, and nothing recorded for autograd."""
    import scipy_layers
    inputs = _layer_inputs(kind, shape, kernel, dtype)
    layer = {"conv": scipy_layers.scipy_conv2d, "fft": fft_abs, "cnn": scipy_layers.conv2d}[kind]
    y = layer(*inputs, **options)
    g = torch.randn(y.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    expected = torch.autograd.grad(y, inputs, g)
    call = floor_layers.hot_call(kind, inputs, options, g)
    for _ in range(2):  # (a second call: nothing of the first is reused wrongly)
        grads = call()
        grads = (grads,) if isinstance(grads, torch.Tensor) else grads
        assert len([t for t in grads if t is not None]) == len(expected)
        for ours, theirs in zip(grads, expected):
            assert ours.grad_fn is None and not ours.requires_grad
            assert ours.shape == theirs.shape and torch.equal(ours, theirs)


@pytest.mark.parametrize("kind, shape, kernel", [
    ("fft", (256, 256), None), ("cnn", (4, 3, 32, 32), (8, 5, 5, 1))])
def test_the_hot_floor_gives_its_memory_back_every_call(kind, shape, kernel):
    """A hot floor that kept what a call left (the FFT spectrum, im2col's windows) would
    hold memory a layer call gives back, and time differently."""
    from scipy_layers import _workspace
    _workspace.clear_workspace()
    inputs = _layer_inputs(kind, shape, kernel, torch.float32)
    output_shape = ((*shape[:-1], shape[-1] // 2 + 1) if kind == "fft"
                    else (shape[0], kernel[0], shape[2] - 4, shape[3] - 4))
    call = floor_layers.hot_call(kind, inputs, {}, torch.randn(output_shape))
    assert _fresh_scratch_arrays(call) == 0


def test_the_hot_floor_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="'conv', 'fft' or 'cnn'"):
        floor_layers.hot_call("depthwise", (), {}, None)


def test_the_hot_floor_runs_its_backward_as_a_plain_backward_does(monkeypatch):
    """Gradients off, as autograd runs a backward: the FFT floor's backward then owns
    forward's spectrum and writes the gradient over it, as the layer's does."""
    from scipy_layers import fft
    seen = []
    original = fft._fft_abs_gradient

    def recording(*args, **kwargs):
        seen.append((kwargs["handed_over"], torch.is_grad_enabled()))
        return original(*args, **kwargs)

    monkeypatch.setattr(fft, "_fft_abs_gradient", recording)
    inputs = _layer_inputs("fft", (32, 32), None)
    floor_layers.hot_call("fft", inputs, {}, torch.randn(32, 17, dtype=torch.float64))()
    fft_abs(*inputs).sum().backward()
    assert seen == [(True, False), (True, False)]


@pytest.mark.parametrize("kind, inputs, options, grad_output, message", [
    ("cnn", "x3d w", {}, "g", "4-D input"),
    ("cnn", "x w b extra", {}, "g", "2 or 3 input tensors"),
    ("conv", "x w b", {}, "g5", "output's shape"),
    ("conv", "x w b", {"method": "matrix"}, "g7", "no options"),
    ("fft", "x1d", {}, "g", "at least 2 dims"),
    ("conv", "x w16 b", {}, "g7", "float16, which is unsupported"),
    ("conv", "x w b", {}, "g7f32", "float64 tensor"),
])
def test_the_hot_floor_says_what_is_wrong_with_its_arguments(kind, inputs, options,
                                                            grad_output, message):
    tensors = {"x": torch.randn(9, 9, dtype=torch.float64),
               "x3d": torch.randn(3, 9, 9), "x1d": torch.randn(9),
               "w": torch.randn(3, 3, dtype=torch.float64),
               "w16": torch.randn(3, 3, dtype=torch.float16),
               "b": torch.randn(1, 1, dtype=torch.float64), "extra": torch.ones(1)}
    grads = {"g": torch.randn(7, 7), "g5": torch.randn(5, 5, dtype=torch.float64),
             "g7": torch.randn(7, 7, dtype=torch.float64), "g7f32": torch.randn(7, 7)}
    with pytest.raises((ValueError, TypeError), match=message):
        floor_layers.hot_call(kind, [tensors[name] for name in inputs.split()], options,
                              grads[grad_output])


@pytest.mark.parametrize("bias_shape", [(), (1,), (1, 1)])
def test_the_hot_floor_gives_a_bias_gradient_of_the_bias_shape(bias_shape):
    """scipy_conv2d takes a bias of shape (), (1,) or (1, 1); the hot floor, with no
    autograd to reshape its gradients, gives each the layer's gradient in that shape."""
    from scipy_layers import scipy_conv2d
    generator = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(shape, dtype=torch.float64, generator=generator, requires_grad=True)
               for shape in [(9, 9), (3, 3), bias_shape])
    y = scipy_conv2d(x, w, b)
    g = torch.randn(y.shape, dtype=torch.float64, generator=generator)
    expected = torch.autograd.grad(y, (x, w, b), g)
    grads = floor_layers.hot_call("conv", (x, w, b), {}, g)()
    assert [t.shape for t in grads] == [x.shape, w.shape, b.shape]
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(grads, expected))


def test_the_null_floors_shapes_are_the_layers_on_oblong_inputs():
    """(mutation pass 114) The null floors' outputs and gradients have the layer's shapes
    where height and width differ, the kernel's included: a side taken for the other
    passed the square cases above."""
    x, w, b = (torch.randn(s, dtype=torch.float64, requires_grad=True)
               for s in ((12, 9), (5, 2), (1, 1)))
    y = floor_layers.NullConv.apply(x, w, b)
    assert y.shape == scipy_conv2d(x, w, b).shape == (8, 8)
    grads = torch.autograd.grad(y, (x, w, b), torch.ones(y.shape, dtype=torch.float64))
    assert [t.shape for t in grads] == [x.shape, w.shape, b.shape]
    for shape in ((6, 10), (2, 9, 4)):
        x = torch.randn(shape, requires_grad=True)
        y = floor_layers.NullFFT.apply(x)
        assert y.shape == fft_abs(x).shape
        (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
        assert grad.shape == x.shape


def test_a_batched_floor_called_again_with_other_arguments_plans_again():
    """(mutation pass 114) The plan is kept while the call is the same: another padding,
    dilation or groups at the same stride is another geometry."""
    from scipy_layers import conv2d
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w, b = torch.randn(4, 4, 3, 3), torch.randn(4)
    floors = floor_layers.floor_functions("cnn")
    for options in ({}, {"padding": 1}, {"padding": (2, 0)}, {"padding": 1, "dilation": 2},
                    {"padding": 1, "dilation": 2, "groups": 2}):
        weight = w[:, : 4 // options.get("groups", 1)]
        expected = conv2d(x, weight, b, **options)
        assert torch.equal(floors["kernels"](x, weight, b, **options), expected), options
        assert floors["null"](x, weight, b, **options).shape == expected.shape, options
