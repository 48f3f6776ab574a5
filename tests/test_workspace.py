"""The scratch workspace (scipy_layers._workspace) and the FFT layer's transforms into
its arrays (scipy_layers._fft_into)."""
import gc
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.fft
import torch

from scipy_layers import _fft_into, _workspace, fft_abs
from tests._nan_scratch import fill_scratch_with_nan
from tests._two_backwards import two_backwards_at_once


def test_workspace_is_bounded_and_keeps_only_whole_arrays(monkeypatch):
    _workspace.clear_workspace()
    monkeypatch.setattr(_workspace, "WORKSPACE_LIMIT_BYTES", 1000)
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", 0)
    small, big = _workspace.scratch((10,), "float64"), _workspace.scratch((200,), "float64")
    _workspace.recycle(small, big, small[2:], None)  # big overflows, the view is not ours
    assert _workspace._workspace_bytes == 80
    assert _workspace.scratch((10,), "float64") is small
    assert _workspace.scratch((10,), "float64") is not small and _workspace._workspace_bytes == 0
    _workspace.recycle(small)
    _workspace.clear_workspace()
    assert _workspace._workspace_bytes == 0 and not _workspace._workspace


def test_small_arrays_are_not_pooled(monkeypatch):
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", 1 << 16)  # (any threshold)
    _workspace.clear_workspace()
    small = _workspace.scratch((100,), np.float64)
    _workspace.recycle(small)
    assert _workspace._workspace_bytes == 0
    handed_out = _workspace.output((100,), np.float64)
    assert handed_out.base is None  # a plain array: no finalizer, no buffer behind it
    big = _workspace.scratch((1 << 14,), np.float64)  # 128 KiB
    _workspace.recycle(big)
    assert _workspace.scratch((1 << 14,), np.float64) is big
    view = _workspace.output((1 << 14,), np.float64)
    buffer = view.base
    del view
    gc.collect()
    assert _workspace.scratch((1 << 14,), np.float64) is buffer  # back once the view died
    _workspace.recycle(buffer, buffer)  # given back twice: handed out once only
    assert _workspace.scratch((1 << 14,), np.float64) is buffer
    assert _workspace.scratch((1 << 14,), np.float64) is not buffer


def test_a_transposed_output_gives_its_buffer_back_when_it_dies():
    """output(shape, axes=...) hands out the buffer's transpose; the buffer goes back
    when that view dies, not before (a view made of it later is based on the buffer)."""
    _workspace.clear_workspace()
    view = _workspace.output((2, 4, 5, 3), np.float64, axes=(0, 3, 1, 2))  # (pooled: tests)
    assert view.shape == (2, 3, 4, 5) and view.base.flags.c_contiguous
    assert view.strides == view.base.transpose(0, 3, 1, 2).strides
    buffer = view.base
    view[...] = 1.0
    gc.collect()
    assert _workspace.scratch((2, 4, 5, 3), np.float64) is not buffer  # still handed out
    del view
    gc.collect()
    assert _workspace.scratch((2, 4, 5, 3), np.float64) is buffer


def test_private_pocketfft_is_in_use_here():
    """The probe accepts scipy's pocketfft entry points on the pinned scipy: without them
    every transform would copy (no speed-up; the results stay right, see below)."""
    assert _fft_into.PRIVATE


LAYOUTS = {
    "contiguous": lambda t: t,
    "transposed": lambda t: t.transpose(-2, -1),
    "step-sliced": lambda t: t[..., ::2, 1::3],
    "expanded": lambda t: t[..., :1, :].expand(*t.shape[:-2], 6, t.shape[-1]),
    "cropped": lambda t: t[..., 1:-1, 2:],
}


@pytest.mark.parametrize("private", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(7, 9), (2, 3, 8, 11), (1, 1), (5, 2), (3, 1, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transforms_into_arrays_match_scipy_fft(private, layout, shape, dtype, monkeypatch):
    if not private:  # (as on a scipy without pocketfft's private module, PRIVATE False:
        # with it True, rfft2_adjoint's one call left the public fft_axis and irfft_last
        # untested)
        monkeypatch.setattr(_fft_into, "PRIVATE", False)
        for name in ("rfft_last", "rfft2_last", "fft_axis", "irfft_last"):
            monkeypatch.setattr(_fft_into, name, getattr(_fft_into, "_public_" + name))
    base = torch.randn(*shape[:-2], shape[-2] + 4, shape[-1] + 5, dtype=torch.float64)
    x = LAYOUTS[layout](base).to(getattr(torch, np.dtype(dtype).name)).numpy()
    if x.size == 0:
        pytest.skip("layout leaves no element")
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    spectrum = _fft_into.rfft2(x)
    expected = scipy.fft.rfft2(x)
    assert spectrum.dtype == expected.dtype and spectrum.shape == expected.shape
    np.testing.assert_allclose(spectrum, expected, rtol=tolerance,
                               atol=tolerance * np.abs(expected).max())
    width = x.shape[-1]
    inverse = _fft_into.rfft2_adjoint(expected.copy(), width)
    reference = scipy.fft.irfft2(expected, s=x.shape[-2:], norm="forward")
    assert inverse.dtype == x.dtype and inverse.shape == x.shape
    np.testing.assert_allclose(inverse, reference, rtol=tolerance,
                               atol=tolerance * np.abs(reference).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fft_abs_buffers_are_not_shared_between_live_results(dtype):
    """Outputs and gradients of calls alive at once, and a backward after other calls
    reused the pool, equal those of calls made alone (pooled buffers are never handed
    out twice)."""
    shape = (2, 300, 130)  # above the real threshold too
    inputs = [torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(2)]
    grads = [torch.randn(2, 300, 66, dtype=dtype) for _ in range(2)]
    alone = []
    for x, g in zip(inputs, grads):
        y = fft_abs(x, "fft")
        alone.append((y.detach().clone(), torch.autograd.grad(y, x, g)[0]))
    outputs = [fft_abs(x, "fft") for x in inputs]
    for _ in range(3):  # other calls in between take and give back buffers
        fft_abs(torch.randn(shape, dtype=dtype, requires_grad=True), "fft").sum().backward()
    later = [torch.autograd.grad(y, x, g, retain_graph=True)[0]
             for y, x, g in zip(outputs, inputs, grads)]
    again = torch.autograd.grad(outputs[1], inputs[1], grads[1])[0]
    for (y_alone, grad_alone), y, grad in zip(alone, outputs, later):
        assert torch.equal(y, y_alone) and torch.equal(grad, grad_alone)
    assert torch.equal(again, alone[1][1])


def _fft_abs_input(kind, shape, dtype):
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    if kind == "zero bins":  # constant: exact 0 bins (the careful way), matrices too
        x = torch.full(shape, 0.75, dtype=dtype)
    return x.requires_grad_()


BACKWARD_AGAIN_CASES = [(method, shape, kind)
                        for method, shape in [("fft", (2, 256, 128)), ("auto", (2, 61, 61)),
                                              ("matrix", (3, 20, 22))]
                        for kind in ("random", "zero bins")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method, shape, kind", BACKWARD_AGAIN_CASES)
def test_fft_abs_backward_again_after_its_spectrum_was_overwritten(method, shape, kind, dtype,
                                                                   monkeypatch):
    """A plain backward writes the gradient spectrum over forward's spectrum (it takes
    it from the forward state); a second backward of the same graph (retain_graph)
    must recompute it, and one through create_graph or torch.func must not take it:
    every gradient equals a fresh call's, bit for bit (and native's, on random input).
    A constant image takes the careful way (its bins are exactly 0)."""
    from scipy_layers import _fft_gradient
    careful_calls = []
    careful = _fft_gradient.gradient_spectrum_carefully
    monkeypatch.setattr(_fft_gradient, "gradient_spectrum_carefully",
                        lambda *args: careful_calls.append(1) or careful(*args))
    x = _fft_abs_input(kind, shape, dtype)
    g = torch.randn(*shape[:-1], shape[-1] // 2 + 1, dtype=dtype,
                    generator=torch.Generator().manual_seed(4))
    fresh = torch.autograd.grad(fft_abs(x, method), x, g)[0]
    y = fft_abs(x, method)
    first = torch.autograd.grad(y, x, g, retain_graph=True)[0]
    second = torch.autograd.grad(y, x, g, retain_graph=True)[0]
    graph_built = torch.autograd.grad(y, x, g, create_graph=True)[0]
    assert torch.equal(first, fresh) and torch.equal(second, fresh)
    assert torch.equal(graph_built.detach(), fresh)
    _, vjp = torch.func.vjp(lambda t: fft_abs(t, method), x.detach())
    assert torch.equal(vjp(g)[0], fresh) and torch.equal(vjp(g)[0], fresh)
    assert bool(careful_calls) == (kind == "zero bins")
    if kind == "random":
        native = torch.autograd.grad(torch.fft.rfft2(x).abs(), x, g)[0]
        tolerance = 1e-4 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(fresh, native, rtol=tolerance,
                                   atol=tolerance * native.abs().max().item())


@pytest.mark.parametrize("first", ["plain", "create_graph"])
def test_fft_abs_backwards_of_one_graph_in_two_threads_at_once(first, monkeypatch):
    """Found by the hostile tester: a backward (thread A) is held just as it forms its
    gradient spectrum from forward's spectrum, while a plain backward of the same graph
    (thread B) runs to its end; before the state was taken while in use, B wrote its
    gradient spectrum over the spectrum A was reading (create_graph: 100% off). Both
    now equal a call made alone, bit for bit."""
    shape = (2, 256, 128)  # (the pool's sizes)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    g = torch.randn(2, 256, 65, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    leaf = x.clone().requires_grad_()
    alone = torch.autograd.grad(fft_abs(leaf, "fft"), leaf, g)[0]
    y = fft_abs(leaf, "fft")
    results = two_backwards_at_once(y, leaf, g, first == "create_graph", monkeypatch)
    assert torch.equal(results["A"], alone) and torch.equal(results["B"], alone)
    again = torch.autograd.grad(y, leaf, g)[0]  # and the graph still serves a backward
    assert torch.equal(again, alone)


@pytest.mark.parametrize("method", ["fft", "auto"])
@pytest.mark.parametrize("shape", [(2, 9, 12), (131, 26), (3, 13, 17)])
def test_fft_abs_writes_scratch_before_reading_it(shape, method, monkeypatch):
    """Every workspace array starts as NaN: a result that read an unwritten element
    would be NaN (grad_output expanded, as .sum().backward() gives it)."""
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    expected_y = fft_abs(x, method)
    expected_grad = torch.autograd.grad(expected_y.sum(), x)[0]
    from scipy_layers import _dft_axes, _fft_gradient
    fill_scratch_with_nan(monkeypatch, _workspace, _fft_into, _fft_gradient, _dft_axes)
    y = fft_abs(x, method)
    grad = torch.autograd.grad(y.sum(), x)[0]
    assert torch.equal(y, expected_y) and torch.equal(grad, expected_grad)


def test_recycle_when_dead_only_for_pooled_arrays(monkeypatch):
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", 1 << 16)  # (any threshold)
    _workspace.clear_workspace()

    class Owner:
        pass

    owner = Owner()
    small, big = _workspace.scratch((10,), np.float64), _workspace.scratch((1 << 14,), np.float64)
    foreign = np.empty(1 << 14)  # big enough, but not the pool's
    for array in (small, big, big[1:], foreign):  # (a view: never pooled)
        _workspace.recycle_when_dead(owner, array)
    _workspace.recycle(foreign)
    assert _workspace._workspace_bytes == 0
    del owner
    gc.collect()
    assert _workspace._workspace_bytes == big.nbytes
    assert _workspace.scratch(big.shape, big.dtype) is big


POOL_CASES = [(shape, method) for shape in [(127, 127), (2, 13, 130), (131, 26), (300, 300)]
              for method in ["auto", "fft", "matrix"]
              if method != "matrix" or max(shape[-2:]) <= 128]  # (matrices: H, W <= 128)


@pytest.mark.parametrize("shape,method", POOL_CASES)
def test_the_pool_does_not_grow_over_repeated_calls(shape, method):
    """Only arrays taken from the pool go back to it: an array recycled that no later
    call takes would pile up (up to the pool's limit), and every call would page-fault
    on fresh memory."""
    _workspace.clear_workspace()
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    sizes = []
    for _ in range(6):
        fft_abs(x, method).sum().backward()
        gc.collect()
        sizes.append(_workspace._workspace_bytes)
    assert sizes[-1] == sizes[2], sizes


def test_bookkeeping_forgets_dead_arrays_and_their_addresses(monkeypatch):
    """The pool knows its arrays by id: an array that dies leaves its bookkeeping, and a
    foreign array that later takes the same address is not taken for the pool's."""
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", 1 << 16)  # (any threshold)
    _workspace.clear_workspace()
    known, pending = len(_workspace._made_here), len(_workspace._pending)
    array = _workspace.scratch((1 << 14,), np.float64)
    address = id(array)
    del array
    assert len(_workspace._made_here) == known
    for _ in range(1000):  # (the allocator hands the same block back, usually at once)
        foreign = np.empty(1 << 14)
        if id(foreign) == address:
            break
    else:
        pytest.skip("no foreign array landed at the dead array's address")
    assert not _workspace._made_by_scratch(foreign)
    _workspace.recycle(foreign)
    assert _workspace._workspace_bytes == 0

    class Owner:
        pass

    views, owners = [_workspace.output((1 << 14,), np.float64) for _ in range(3)], []
    for _ in range(3):
        owners.append(Owner())
        _workspace.recycle_when_dead(owners[-1], _workspace.scratch((1 << 14,), np.float64))
    assert len(_workspace._pending) == pending + 6
    del views, owners
    gc.collect()
    assert len(_workspace._pending) == pending  # every give-back ran once, and left
    assert _workspace._workspace_bytes == 6 * (1 << 17)


def test_give_backs_stop_once_the_interpreter_exits(monkeypatch):
    """After atexit, as weakref.finalize(atexit=False) did: a dying owner gives nothing
    back (teardown may have frozen a thread inside the pool's lock)."""
    _workspace.clear_workspace()
    view = _workspace.output((1 << 10,), np.float64)  # (every array pooled in the tests)
    monkeypatch.setattr(_workspace, "_exiting", True)
    del view
    gc.collect()
    assert _workspace._workspace_bytes == 0
    monkeypatch.setattr(_workspace, "_exiting", False)
    view = _workspace.output((1 << 10,), np.float64)
    del view
    gc.collect()
    assert _workspace._workspace_bytes == 8 << 10


def test_the_exit_hook_runs_and_teardown_is_quiet():
    """The pool's atexit hook runs (a handler registered before the import runs after
    it), and an exit with a graph, an output and a gradient alive prints nothing."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('exiting', "
            "sys.modules['scipy_layers._workspace']._exiting, file=sys.stderr))\n"
            "import torch; from scipy_layers import fft_abs\n"
            "x = torch.randn(2, 300, 300, dtype=torch.float64, requires_grad=True)\n"
            "fft_abs(x).sum().backward(); y = fft_abs(x)\n")
    result = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    assert result.stderr.strip() == "exiting True", result.stderr


@pytest.mark.parametrize("special", ["nan in grad_output", "zero bins"])
def test_the_careful_gradient_way_keeps_no_more_in_the_pool(special):
    """Found by the hostile tester: where the FFT layer's quick gradient check failed,
    the careful way took a second scale array while the first was still out, and the
    pool then kept one buffer more. Both ways now leave the pool as large."""
    def pool_bytes_after(grad_output, x):
        _workspace.clear_workspace()
        for _ in range(3):
            torch.autograd.grad(fft_abs(x), x, grad_output)
        return _workspace._workspace_bytes

    x = torch.randn(2, 400, 400, dtype=torch.float32, requires_grad=True)
    g = torch.randn(2, 400, 201, dtype=torch.float32)
    plain = pool_bytes_after(g, x)
    if special == "nan in grad_output":
        g = g.clone()
        g[1, 7, 3] = float("nan")
    else:
        x = torch.ones_like(x, requires_grad=True)  # every bin but (0, 0) is zero
    assert pool_bytes_after(g, x) == plain


@pytest.mark.skipif(not _fft_into.PRIVATE, reason="pocketfft's private entry points absent")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (7, 5), (16, 16), (15, 17),
                                   (3, 16, 16), (2, 2, 9, 8), (64, 64), (128, 127)])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "step_sliced"])
def test_the_adjoint_in_one_call_gives_the_two_calls_bits(shape, dtype, layout, monkeypatch):
    """rfft2_adjoint's one pocketfft call over both axes (small spectra) and its two in
    place (large ones) give the same bits, on spectra of any strides."""
    generator = np.random.default_rng(sum(shape))
    height, width = shape[-2:]
    complex_dtype = np.result_type(dtype, np.complex64)
    full = (generator.standard_normal((*shape[:-1], width // 2 + 1, 2))
            .astype(dtype).view(complex_dtype)[..., 0])
    laid_out = {"contiguous": lambda z: z.copy(),
                "transposed": lambda z: np.swapaxes(z, -1, -2).copy().swapaxes(-1, -2),
                "step_sliced": lambda z: np.repeat(z, 2, axis=-1)[..., ::2]}[layout]
    results = {}
    for limit in (1 << 40, -1):  # one call always, then never
        monkeypatch.setattr(_fft_into, "ONE_CALL_ADJOINT_MAX_BYTES", limit)
        spectrum = laid_out(full)  # (a fresh one: the two calls overwrite theirs)
        assert np.array_equal(spectrum, full)
        assert spectrum.flags.c_contiguous == (layout == "contiguous") or 1 in spectrum.shape
        results[limit] = _fft_into.rfft2_adjoint(spectrum, width).copy()
    one_call, two_calls = results.values()
    assert one_call.shape == (*shape[:-1], width) and one_call.dtype == dtype
    assert np.array_equal(one_call, two_calls)
    reference = scipy.fft.irfft2(full, s=(height, width), norm="forward")
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(one_call, reference, rtol=tolerance,
                               atol=tolerance * max(np.abs(reference).max(), 1))


@pytest.mark.parametrize("pattern", ["made-before-compile", "layer-inside-users-disable"])
def test_buffers_dying_inside_compiled_code_come_back_quietly(pattern):
    """A pooled output whose owner dies inside a torch.compile'd region: its give-back
    runs there, under Dynamo's frame hook (which, before, tried to compile it: "Exception
    ignored ... InternalTorchDynamoError" and the buffer lost). Outputs made eagerly
    before anything was compiled, and outputs of a layer the user wrapped in
    torch.compiler.disable (Dynamo never traces the layer): a fresh interpreter each, so
    no earlier compile has switched the callbacks already (hostile pass)."""
    code = textwrap.dedent(f"""
        import gc, torch, scipy_layers as sl
        from scipy_layers import _workspace
        x = torch.randn(8, 16, 64, 64, dtype=torch.float64)
        w = torch.randn(32, 16, 3, 3, dtype=torch.float64)
        if {pattern!r} == "made-before-compile":
            held = [sl.conv2d(x, w, padding=1)]

            @torch.compile(backend="eager")
            def f(held, x):
                y = sl.conv2d(x, w, padding=1)
                held.clear()
                return y.sum()
            f(held, x)
        else:
            layer = torch.compiler.disable(lambda x: sl.conv2d(x, w, padding=1))
            f = torch.compile(lambda x: layer(x).relu().sum(), backend="eager")
            for _ in range(3):
                f(x)
        gc.collect()
        print("pending", len(_workspace._pending))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pending 0" in result.stdout, (result.stdout, result.stderr[-3000:])
    assert "Exception ignored" not in result.stderr, result.stderr[-3000:]


def test_eager_use_never_imports_dynamo():
    """The compile switch is a lookup of sys.modules: eager calls import no Dynamo."""
    code = ("import sys, torch, scipy_layers as sl\n"
            "x = torch.randn(8, 16, 64, 64, requires_grad=True)\n"
            "w = torch.randn(32, 16, 3, 3, requires_grad=True)\n"
            "sl.conv2d(x, w, padding=1).sum().backward()\n"
            "sl.fft_abs(torch.randn(300, 300, requires_grad=True)).sum().backward()\n"
            "print('torch._dynamo' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.strip() == "False", (result.stdout, result.stderr[-3000:])


def test_the_compile_switch_remakes_live_callbacks_and_follows_dynamos_import():
    """run_callbacks_outside_compile routes every later callback, and the live ones made
    before it, through ``disable`` (here a counting stand-in); and a callback made once
    torch._dynamo is imported switches by itself. In a fresh interpreter: the switch is
    one-way and process-wide."""
    code = textwrap.dedent("""
        import gc, sys
        import numpy as np
        from scipy_layers import _workspace as ws
        runs = []

        def counting_disable(fn):
            def outside(*args):
                runs.append(1)
                return fn(*args)
            return outside
        before = [ws.output((1 << 16,), np.float64) for _ in range(2)]  # 512 KiB: pooled
        assert ws._outside_compile is None
        ws.run_callbacks_outside_compile(counting_disable)
        after = ws.output((1 << 16,), np.float64)
        del before, after
        gc.collect()
        print("runs", len(runs), "pending", len(ws._pending))
        ws._outside_compile = None  # (as before any compile) then Dynamo arrives
        import torch._dynamo
        ws.output((1 << 16,), np.float64)
        print("switched", ws._outside_compile is not None)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["runs", "3", "pending", "0", "switched", "True"], (
        result.stdout, result.stderr[-3000:])


_FRESH_INTERPRETER_CASES = {
    # A thread making outputs while the main thread's first torch.compile imports
    # Dynamo, with cyclic garbage holding pooled outputs collected during that import:
    # the switch waited for the import holding the pool's lock while the import's
    # collection waited for the lock (hostile pass: hung 3 of 3 runs at c9338b5).
    "switch-during-dynamos-import": """
        import gc, threading, time, torch, scipy_layers as sl
        a = torch.randn(300, 300, dtype=torch.float64)
        class Node: pass
        held = []
        for _ in range(4):
            node = Node(); node.me = node; node.out = sl.fft_abs(a); held.append(node)
        gc.collect(); held.clear()
        threading.Thread(target=lambda: [sl.fft_abs(a) for _ in range(200)],
                         daemon=True).start()
        time.sleep(0.05)
        f = torch.compile(lambda u: sl.fft_abs(u).sum(), backend="eager")
        print("done", f(a).item() > 0)
    """,
    # The pool imported before torch (its atexit hook runs last), callbacks switched,
    # buffers live and pooled at exit: torch's wrapper ran in teardown and raised
    # ("Exception ignored in functools.partial ... 'NoneType'"; hostile pass).
    "exit-after-the-switch": """
        import numpy as np
        from scipy_layers import _workspace
        import torch, scipy_layers as sl
        x = torch.randn(8, 16, 64, 64, dtype=torch.float64)
        w = torch.randn(8, 16, 3, 3, dtype=torch.float64)
        held = sl.conv2d(x, w, padding=1)
        torch.compile(lambda u: sl.conv2d(u, w, padding=1).sum(), backend="eager")(x)
        keep = [_workspace.scratch((300, 300), np.float64) for _ in range(3)]
        print("done", _workspace._outside_compile is not None)
    """,
}


@pytest.mark.parametrize("case", sorted(_FRESH_INTERPRETER_CASES))
def test_the_compile_switch_neither_hangs_nor_speaks_at_exit(case):
    code = textwrap.dedent(_FRESH_INTERPRETER_CASES[case])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # (~10 s; a hang fails here)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["done", "True"], (result.stdout, result.stderr[-3000:])
    assert "Exception ignored" not in result.stderr, result.stderr[-3000:]


def test_an_interrupted_switch_is_made_again_by_the_next_callback():
    """A KeyboardInterrupt inside the switch leaves it unmade, not half made (fresh
    interpreter: the switch is process-wide)."""
    code = textwrap.dedent("""
        import numpy as np
        from scipy_layers import _workspace as ws
        calls = []

        def interrupted_disable(fn):
            calls.append(1)
            if len(calls) == 1:
                raise KeyboardInterrupt
            return fn
        held = ws.output((1 << 16,), np.float64)
        try:
            ws.run_callbacks_outside_compile(interrupted_disable)
        except KeyboardInterrupt:
            pass
        print(ws._outside_compile is None, ws._give_back_callback is ws._give_back)
        ws.run_callbacks_outside_compile(interrupted_disable)
        print(ws._outside_compile is not None, ws._give_back_callback is not ws._give_back)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.split() == ["True"] * 4, (result.stdout, result.stderr[-3000:])


def test_fft_abs_spectrum_handed_to_backward_returns_to_the_pool_once():
    """A plain backward overwrites forward's spectrum, which goes back to the pool when
    the graph dies, not also at the end of backward: given back twice, a later call's
    live spectrum would be handed out again and its backward read another input's."""
    shape = (2, 300, 130)  # (its spectrum above the real threshold too)
    inputs = [torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    g = torch.randn(2, 300, 66, dtype=torch.float64)
    expected = torch.autograd.grad(torch.fft.rfft2(inputs[1]).abs(), inputs[1], g)[0]
    first = fft_abs(inputs[0], "fft")
    first.backward(g)  # (the spectrum handed over and overwritten)
    second = fft_abs(inputs[1], "fft")
    del first  # the first graph dies: its spectrum back to the pool
    gc.collect()
    third = fft_abs(inputs[2], "fft")
    got = torch.autograd.grad(second, inputs[1], g)[0]
    torch.testing.assert_close(got, expected)
    del third
