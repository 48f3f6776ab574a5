"""How the layers meet torch's tracing and override protocols: torch.compile (Dynamo),
torch.export, make_fx, torch.fx and ``__torch_function__`` (tensor subclasses,
TorchFunctionModes). numpy never enters a graph: each layer call is a graph break,
traces that would record it are refused with a clear error, and subclasses and modes
get each call as they get native ops."""
from __future__ import annotations

import functools
import inspect

import torch
from torch.overrides import handle_torch_function

from ._workspace import run_callbacks_outside_compile


_is_dynamo_compiling = torch.compiler.is_dynamo_compiling  # (Dynamo reads it as True)

# Dynamo's execution strategy per code object, from torch's C eval-frame module (loaded
# with torch: no import of Dynamo): SKIP for a frame and for every frame it calls, as
# torch.compiler.disable does per call, but with no wrapper: an eager call pays nothing.
try:
    from torch._C._dynamo.eval_frame import (_FrameAction, _FrameExecStrategy,
                                             set_code_exec_strategy)
    _RUN_EAGERLY = _FrameExecStrategy(_FrameAction.SKIP, _FrameAction.SKIP)
    _NOT_ITS_OWN = _FrameExecStrategy(_FrameAction.SKIP, _FrameAction.DEFAULT)
except (ImportError, AttributeError, TypeError):  # (a torch without it: see never_compiled)
    _RUN_EAGERLY = _NOT_ITS_OWN = None


def never_compiled(fn):
    """``fn``, whose frame and every frame it calls Dynamo never compiles: inside a
    compiled program it runs eagerly (Dynamo may still inline it into a frame it traces).
    Why: after the graph break at a layer call, Dynamo compiled the frames that make the
    call (conv2d, a module's forward: the layer's own Python) as frames of their own,
    guarded on their tensors' shapes, static for parameters; so each layer of another
    shape compiled them again, and a model with more than 8 such layers hit Dynamo's
    recompile limit (a warning, or FailOnRecompileLimitHit under
    ``fail_on_recompile_limit_hit``; hostile pass), where native's nn.Conv2d compiles
    once. (Stopping the trace at a frame's first line leaves the rest of it to a resume
    function that Dynamo compiles, guarded the same way: tried.) Without the strategy
    (another torch) ``fn`` is returned as is: compiled as before, correct but recompiled."""
    return _with_strategy(fn, _RUN_EAGERLY)


def own_frame_never_compiled(fn):
    """``fn``, whose own frame Dynamo never compiles (as torch's nn modules' forwards, for
    the same reason: see never_compiled), but which it inlines into a frame it traces
    and whose callees it compiles: for a module's forward that reads its parameters,
    so that a parametrization on them (user code) is still compiled."""
    return _with_strategy(fn, _NOT_ITS_OWN)


def _with_strategy(fn, strategy):
    """``fn``, its code given ``strategy`` where this torch can (a private API, set at
    import: whatever another torch's version of it raises must not stop the import)."""
    if strategy is not None:
        try:
            set_code_exec_strategy(fn.__code__, strategy)
        except Exception:  # noqa: BLE001 (compiled as before: correct, recompiled)
            pass
    return fn


def opaque_to_compile(fn):
    """``fn`` hidden from torch.compile (why: see the module docstring). While Dynamo
    traces a call, the call goes to ``torch.compiler.disable(fn)``: a graph break, then
    ``fn`` runs eagerly with no frame of it traced. Outside tracing, ``fn`` runs as is.
    The disabled twin is made on the first traced call, not at import: importing Dynamo
    (and sympy) takes ~2 s, which a program that never compiles should not pay, and
    every eager call skips the twin's ~0.6 us of frame bookkeeping. The test is
    ``is_dynamo_compiling`` (Dynamo reads it as True while tracing): ``is_compiling``
    adds a call to ``torch.jit.is_scripting`` on every eager call, and its other case,
    export tracing without Dynamo, runs ``fn`` eagerly either way."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _is_dynamo_compiling():
            return _disabled(fn)(*args, **kwargs)
        return fn(*args, **kwargs)

    # torch's Function.apply binds every call's arguments to inspect.signature(forward)
    # (for setup_context-style Functions): computed once here, not on every call (~10 us).
    call.__signature__ = inspect.signature(fn)
    return graph_break_here(call)  # (wraps gave call fn's __qualname__, which it names)


def graph_break_here(fn):
    """``fn``, marked as torch.compiler.disable marks its wrapper, which Dynamo reads
    before it inlines a function: it stops there (a graph break) instead of tracing in,
    and where it cannot break (fullgraph=True, strict torch.export) its error names the
    layer and says why, instead of Dynamo's "Attempted to call function marked as
    skipped: disable" or "Unsupported custom jvp" (Dynamo refuses Functions with a jvp
    before it reads anything of theirs: hence the mark on the public functions too).
    Attributes only: no wrapper, no import of Dynamo, nothing on an eager call. After the
    break ``fn`` runs eagerly, with every frame it calls (:func:`never_compiled`; where
    torch lacks that, :func:`opaque_to_compile`'s twin keeps Dynamo out of the numpy
    code). So Dynamo compiles no frame of a bare layer function: ``torch.compile(fn,
    fullgraph=True)`` of one says "found no compiled frames" (torch's error); of a
    program or module that calls it, this message."""
    never_compiled(fn)
    # torch.jit.script calls this on a function it is asked to compile, alone or called
    # from a module's forward it compiles: see refuse_scripting_function
    fn.__prepare_scriptable__ = functools.partial(refuse_scripting_function, fn)
    fn._torchdynamo_disable = True
    fn._torchdynamo_disable_msg = (
        f"{fn.__qualname__} runs numpy/scipy, which no graph can hold: each call "
        f"to a scipy_layers layer is a graph break (compile without fullgraph=True; for "
        f"torch.export use the layer's native twin)")
    return fn


_DISABLED_TWINS: dict = {}


def _disabled(fn):
    """``torch.compiler.disable(fn)``, made once per ``fn``. (A dict, not lru_cache:
    Dynamo, tracing this, warns of any lru_cache-wrapped function it meets.)"""
    twin = _DISABLED_TWINS.get(fn)
    if twin is None:
        if not _DISABLED_TWINS:  # (Dynamo traces a layer: the pool's callbacks too)
            run_callbacks_outside_compile(torch.compiler.disable)
        twin = _DISABLED_TWINS[fn] = torch.compiler.disable(fn)
    return twin


def torch_function_layer(function, tensors, *args, **kwargs):
    """``function(*args, **kwargs)`` through ``__torch_function__`` (torch.overrides'
    ``handle_torch_function``, the way torch's own Python functions support tensor
    subclasses and TorchFunctionModes), for a caller that found one among ``tensors``:
    the handler sees ``function``, and torch's default one runs it with subclass
    dispatch off and returns the result as the subclass, where a numpy layer would
    otherwise return a plain tensor. ``torch.fx.symbolic_trace`` records it as one node.
    Where every handler refuses (returns NotImplemented), torch's TypeError, reworded to
    name the layer."""
    try:
        return handle_torch_function(function, tensors, *args, **kwargs)
    except TypeError as error:
        # (torch names a function by module and __name__ alone: "scipy_layers.fft.apply")
        refused = f"no implementation found for '{function.__module__}.{function.__name__}'"
        if not str(error).startswith(refused):
            raise
        raise TypeError(f"{function.__qualname__}: every __torch_function__ handler among "
                        f"its arguments (a tensor subclass's or a TorchFunctionMode's) "
                        f"returned NotImplemented; torch says: {error}") from None


_dispatch_mode = torch._C._get_dispatch_mode
_PROXY = torch._C._TorchDispatchModeKey.PROXY
_FAKE = torch._C._TorchDispatchModeKey.FAKE
_in_tls = torch._C._dispatch_tls_is_dispatch_key_included
_PRE_DISPATCH = torch._C.DispatchKey.PreDispatch


def check_not_tracing() -> None:
    """A clear error under make_fx (it records torch ops: a proxy mode, or with
    ``pre_dispatch=True`` the PreDispatch key) and non-strict torch.export (it runs the
    model on fake tensors: a fake mode), in forward and in backward. A numpy layer is
    neither: its output would enter a trace as a constant, silently wrong on other
    inputs, and fake tensors hold no values for numpy. (Three C calls, ~0.15 us.)"""
    if (_dispatch_mode(_PROXY) is None and _dispatch_mode(_FAKE) is None
            and not _in_tls(_PRE_DISPATCH)):
        return
    raise RuntimeError(
        "make_fx / torch.export cannot record a scipy_layers layer: it computes with "
        "numpy/scipy, outside torch's dispatcher, so fake tensors hold no values for it "
        "and a trace of real ones would hold this input's result as a constant (wrong on "
        "any other input). Trace the native twin (native_conv2d, native_fft_abs, "
        "torch.nn.Conv2d), or use torch.compile, where each layer call is a graph break. "
        "(torch.func.linearize traces with make_fx too: torch.func.jvp gives the same "
        "products, one call per tangent, where the layer has a forward-mode rule)")


def jit_trace_error(layer: str, native_twin: str) -> RuntimeError:
    """For a direct call of a Function whose arguments fix it to one input (the batched
    conv's geometry) under ``torch.jit.trace``: every later call of the traced function
    would get them (a wrong output size, or autograd's "invalid gradient")."""
    return RuntimeError(
        f"torch.jit.trace cannot record {layer}: its arguments (the output geometry, "
        f"computed in Python for this input) would be fixed into the trace, so an input of "
        f"another size would give a wrong result. Use torch.compile (each layer call is a "
        f"graph break), call the layer eagerly, or trace its native twin, {native_twin}")


def refuse_onnx(layer: str, native_twin: str) -> staticmethod:
    """A Function's ``symbolic``, which ``torch.onnx.export``'s tracing exporter calls for
    each recorded call of the Function, in a model traced there or traced before: it
    raises. Without one, the exporter replaced the call with the subgraph the trace
    holds for it, the traced input's output as a constant: a model giving it for every
    input (hostile passes 100 and 102)."""
    def symbolic(graph, *args, **kwargs):
        raise onnx_export_error(layer, native_twin)
    return staticmethod(symbolic)


def onnx_export_error(layer: str, native_twin: str) -> RuntimeError:
    return RuntimeError(
        f"torch.onnx.export cannot export {layer}: it runs numpy/scipy, which an ONNX "
        f"model cannot hold (the exporter would store this call's output as a constant, "
        f"returned for every input). Export a model built on its native twin, "
        f"{native_twin}")


def backward_jit_trace_error(name: str) -> RuntimeError:
    """For a layer's backward run while ``torch.jit.trace`` records (a traced function
    that calls ``torch.autograd.grad``): the gradient numpy computes would enter the
    trace as a constant, this call's gradient for every later input."""
    return RuntimeError(
        f"torch.jit.trace cannot record the backward of {name}: it computes the gradient "
        f"with numpy/scipy, so the trace would hold this call's gradient as a "
        f"constant (wrong for any other input). Compute gradients outside the traced "
        f"function, or trace the layer's native twin")


def refuse_scripting(module, scriptable="torch.nn.Conv2d",
                     runs="numpy/scipy and argument checks",
                     compiled="each layer call is a graph break"):
    """For ``__prepare_scriptable__``, which torch.jit.script calls on a module and each
    submodule before it compiles them: a clear error where TorchScript would stop deep in
    the layer's Python ("Don't support conversion in JoinedStr", "Can't redefine method:
    forward"). ``scriptable``: what to script instead; ``runs``: what its forward runs
    that TorchScript cannot (a native twin: argument checks alone); ``compiled``: what
    torch.compile makes of it."""
    raise RuntimeError(
        f"torch.jit.script cannot compile {type(module).__name__}: its forward runs "
        f"Python that TorchScript cannot express ({runs}). Use torch.compile ({compiled}), "
        f"or {scriptable} where a scripted model is needed")


def refuse_scripting_function(fn):
    """For a layer function's (or a Function's method's) ``__prepare_scriptable__``, which
    torch.jit.script calls on a function it compiles, alone or called from a module's
    forward: a clear error where TorchScript stopped in the layer's Python ("Compiled
    functions can't take variable number of arguments or use keyword-only arguments with
    defaults", "undefined value apply_positional"). The native twins run Python argument
    checks that TorchScript cannot compile either: the way out is torch's own ops."""
    raise RuntimeError(
        f"torch.jit.script cannot compile {fn.__qualname__}: it runs numpy/scipy, which "
        f"TorchScript cannot express. Use torch.compile (each layer call is a graph "
        f"break), or, where a scripted model is needed, torch's own ops: "
        f"torch.nn.functional.conv2d for the convolutions (scipy_conv2d's: on "
        f"input[None, None] and filter[None, None]), torch.fft.rfft2(x).abs() for the FFT "
        f"layers")
