"""Where a layer cannot be traced, the error names the layer and the way out:
torch.compile(fullgraph=True) and torch.export (strict: Dynamo; non-strict: fake
tensors), make_fx. Before, fullgraph said "Attempted to call function marked as
skipped: disable", export ".numpy() is not supported for tensor subclasses", and
make_fx on real tensors recorded the layer's output as a constant (wrong on any other
input). Run in a
subprocess (this file as a script), as test_compile.py: Dynamo is heavy and may crash."""
import json
import sys

import pytest

from tests._case_scripts import run_cases


def _layers():
    """name -> (callable, example args, the names one of which the error must give: the
    function Dynamo met first, or the Function it reached)."""
    import torch

    import scipy_layers as sl
    x2, w2 = torch.randn(8, 7, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    x4, w4 = torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3)
    return {
        "fft_abs": (sl.fft_abs, (x2,), ("fft_abs", "FFTAbsFunction")),
        "incorrect_fft": (sl.incorrect_fft, (x2,), ("incorrect_fft", "BadFFTFunction")),
        "scipy_conv2d": (sl.scipy_conv2d, (x2, w2), ("scipy_conv2d", "ScipyConv2dFunction")),
        "conv2d": (sl.conv2d, (x4, w4), ("conv2d", "Conv2dNCHWFunction")),
        "ScipyConv2d": (sl.ScipyConv2d(3, 2).double(), (x2,), ("scipy_conv2d",)),
        "Conv2d": (sl.Conv2d(3, 4, 3), (x4,), ("conv2d",)),
    }


def _error(run):
    try:
        run()
    except Exception as error:  # noqa: BLE001 (reported to the test)
        return f"{type(error).__name__}: {error}"
    return None


def _under_fake_mode(fn, args):
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:  # (a module's own weights)
        fn(*(mode.from_tensor(arg) for arg in args))


def main(names):
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    class Wrapped(torch.nn.Module):  # export takes modules
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, *args):
            return self.fn(*args)

    layers = _layers()
    for name in names:
        fn, args, names_given = layers[name]
        module = fn if isinstance(fn, torch.nn.Module) else Wrapped(fn)
        torch._dynamo.reset()
        errors = {
            # (a program calling the layer: Dynamo compiles no frame of a bare layer
            # function or of ScipyConv2d, so there fullgraph may get torch's "found no
            # compiled frames", asserted below)
            "fullgraph": _error(lambda: torch.compile(Wrapped(fn), fullgraph=True)(*args)),
            "fullgraph-bare": _error(lambda: torch.compile(fn, fullgraph=True)(*args)),
            "export-strict": _error(lambda: torch.export.export(module, args, strict=True)),
            "export": _error(lambda: torch.export.export(module, args, strict=False)),
            "make_fx": _error(lambda: make_fx(lambda *inputs: fn(*inputs))(*args)),
            "make_fx-pre_dispatch": _error(
                lambda: make_fx(lambda *inputs: fn(*inputs), pre_dispatch=True)(*args)),
            "make_fx-symbolic": _error(
                lambda: make_fx(lambda *inputs: fn(*inputs), tracing_mode="symbolic")(*args)),
        }
        # fake tensors alone (a FakeTensorMode, no trace recording): no values for numpy
        errors["fake"] = _error(lambda: _under_fake_mode(fn, args))
        # a graph built eagerly, its backward traced: the gradient would be a constant
        inputs = [arg.detach().requires_grad_() for arg in args]
        output = fn(*inputs)
        errors["make_fx-backward"] = _error(lambda: make_fx(
            lambda grad: torch.autograd.grad(output, inputs, grad))(torch.ones_like(output)))
        print(json.dumps({"case": name, "names": names_given, "errors": errors}), flush=True)


LAYER_NAMES = ["fft_abs", "incorrect_fft", "scipy_conv2d", "conv2d", "ScipyConv2d", "Conv2d"]


@pytest.fixture(scope="module")
def results():
    return run_cases(__file__, LAYER_NAMES)


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("how", ["fullgraph", "export-strict"])
def test_dynamo_that_cannot_break_names_the_layer(results, name, how):
    error = results[name]["errors"][how]
    assert error is not None, f"{how} of {name} ran"
    assert any(f"{given} runs numpy/scipy" in error or f"{given}.forward runs numpy/scipy"
               in error for given in results[name]["names"]), error[:1000]
    assert "fullgraph=True" in error and "native twin" in error
    assert "marked as skipped" not in error


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_fullgraph_of_a_bare_layer_refuses(results, name):
    """Dynamo compiles no frame of a layer (_torch_protocols.never_compiled: else one
    compile per layer shape), so a bare function or ScipyConv2d under fullgraph=True gets
    torch's own refusal; Conv2d (torch's forward traced) the layer's message."""
    error = results[name]["errors"]["fullgraph-bare"]
    assert error is not None, f"fullgraph of the bare {name} ran"
    assert ("found no compiled frames" in error
            or any(f"{given} runs numpy/scipy" in error for given in results[name]["names"]))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_export_with_fake_tensors_names_the_way_out(results, name):
    error = results[name]["errors"]["export"]
    assert error is not None
    assert error.startswith("RuntimeError: make_fx / torch.export cannot record a "
                            "scipy_layers layer")
    assert "Trace the native twin" in error and "torch.compile" in error



@pytest.mark.parametrize("name", LAYER_NAMES)
def test_fake_tensors_outside_any_trace_are_refused_clearly(results, name):
    """A FakeTensorMode with no proxy mode (what non-strict export runs the model under,
    here alone): the layer's error, not numpy's on a tensor that holds no values."""
    error = results[name]["errors"]["fake"]
    assert error is not None and error.startswith(
        "RuntimeError: make_fx / torch.export cannot record a scipy_layers layer"), error


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_symbolic_shapes_are_refused_with_the_layers_error(results, name):
    """make_fx with symbolic shapes (as non-strict torch.export with dynamic dims): the
    batched conv picked its method from the input's shape before its Function's check,
    and hashing a SymInt in scipy.fft.next_fast_len gave "TypeError: unhashable type:
    non-nested SymInt" (hostile pass 130)."""
    error = results[name]["errors"]["make_fx-symbolic"]
    assert error is not None and error.startswith(
        "RuntimeError: make_fx / torch.export cannot record a scipy_layers layer"), error


def test_symbolic_shapes_that_reach_the_batched_conv_cost_model_are_refused():
    """The batched conv's "auto" asks its cost model (scipy.fft.next_fast_len, which hashes
    the size) on a 15x15 float64 kernel: with symbolic sizes that raised "TypeError:
    unhashable type: non-nested SymInt" before the layer's own check (hostile pass 130)."""
    import torch
    from torch.export import Dim
    from torch.fx.experimental.proxy_tensor import make_fx

    import scipy_layers as sl
    module = sl.Conv2d(1, 4, 15, padding=7, dtype=torch.float64)
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    refusal = r"^make_fx / torch\.export cannot record a scipy_layers layer"
    with pytest.raises(RuntimeError, match=refusal):
        make_fx(lambda t: module(t), tracing_mode="symbolic")(x)
    with pytest.raises(RuntimeError, match=refusal):
        torch.export.export(module, (x,), strict=False, dynamic_shapes={
            "input": {2: Dim("h", min=20, max=500), 3: Dim("w", min=20, max=500)}})


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("how", ["make_fx", "make_fx-pre_dispatch", "make_fx-backward"])
def test_make_fx_on_real_tensors_refuses_instead_of_recording_a_constant(results, name, how):
    """Found by hostile passes: each of these recorded the layer's output (or its
    gradient) as a constant, wrong on any other input."""
    error = results[name]["errors"][how]
    assert error is not None and "cannot record a scipy_layers layer" in error
    assert "as a constant" in error



def test_jit_script_of_a_layer_module_names_it():
    """torch.jit.script stopped deep in the layer's Python ("Don't support conversion in
    JoinedStr", "Can't redefine method: forward"); now each module, alone or inside
    another, refuses by name before TorchScript compiles anything."""
    import torch

    import scipy_layers as sl
    for module in (sl.ScipyConv2d(3, 2), sl.NativeConv2d(3, 2), sl.Conv2d(3, 4, 3),
                   torch.nn.Sequential(torch.nn.ReLU(), sl.Conv2d(3, 4, 3))):
        name = type(module[-1] if isinstance(module, torch.nn.Sequential) else module).__name__
        with pytest.raises(RuntimeError, match=f"^torch.jit.script cannot compile {name}: "):
            torch.jit.script(module)


def test_jit_script_of_a_users_module_calling_a_layer_function_names_it():
    """A user's module whose forward calls a layer function: TorchScript compiled the
    function and stopped in its Python ("Compiled functions can't take variable number
    of arguments or use keyword-only arguments with defaults" for conv2d, "undefined
    value apply_positional" for fft_abs and scipy_conv2d, pointing at
    _torch_protocols.py with fft.py's source; hostile pass 94); now the function refuses
    by name, as does scripting the function itself."""
    import torch

    import scipy_layers as sl

    class UsesConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 3, 3, 3))

        def forward(self, x):
            return sl.conv2d(x, self.w, None, 1, 1)

    class UsesFFT(torch.nn.Module):
        def forward(self, x):
            return sl.fft_abs(x)

    class UsesTutorialFFT(torch.nn.Module):
        def forward(self, x):
            return sl.incorrect_fft(x)

    class UsesScipy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.f = torch.nn.Parameter(torch.randn(3, 3))

        def forward(self, x):
            return sl.scipy_conv2d(x, self.f)

    for module, name in ((UsesConv(), "conv2d"), (UsesFFT(), "fft_abs"),
                         (UsesTutorialFFT(), "incorrect_fft"), (UsesScipy(), "scipy_conv2d")):
        expected = (f"^torch.jit.script cannot compile {name}: it runs numpy/scipy.*"
                    f"torch.compile.*torch.nn.functional.conv2d.*torch.fft.rfft2")
        with pytest.raises(RuntimeError, match=expected):
            torch.jit.script(module)
        with pytest.raises(RuntimeError, match=expected):
            torch.jit.script(getattr(sl, name))


def test_jit_script_of_the_tutorial_module_names_what_to_script_instead():
    """ScipyConv2d's refusal sent the user to torch.nn.Conv2d, a 4-D batched layer; its
    native twin NativeConv2d is refused too (Python argument checks), so the message
    names the scriptable computation NativeConv2d runs."""
    import torch

    import scipy_layers as sl
    for module, computes in ((sl.ScipyConv2d(3, 2), "NativeConv2d"),
                             (sl.NativeConv2d(3, 2), "it")):
        with pytest.raises(RuntimeError, match=r"torch\.nn\.functional\.conv2d on "
                                               r"input\[None, None\] and filter\[None, "
                                               rf"None\] \(what {computes} computes\)") as error:
            torch.jit.script(module)
    # (hostile pass 100: the native twin's refusal said it ran numpy/scipy and that each
    # of its calls was a graph break under torch.compile)
    assert "numpy" not in str(error.value) and "graph break" not in str(error.value)
    assert "native_conv2d's argument checks" in str(error.value)
    with pytest.raises(RuntimeError, match=r"scipy_conv2d's: on input\[None, None\] and "
                                           r"filter\[None, None\]"):
        torch.jit.script(sl.scipy_conv2d)
    with pytest.raises(RuntimeError, match=r"torch\.nn\.Conv2d where a scripted model"):
        torch.jit.script(sl.Conv2d(3, 4, 3))


if __name__ == "__main__":
    main(sys.argv[1:])
