"""What a layer's forward keeps for its backward, outside autograd's saved tensors, and
when backward may use it (saved-tensor hooks, tensors changed in place)."""
from __future__ import annotations

import functools
import inspect
import threading
import weakref

import torch


class ForwardState:
    """What one forward call computed for its backward; ``value`` is None until forward
    fills it (and stays None where forward did not run on exactly these inputs)."""

    __slots__ = ("value", "hint", "keeper", "_holder", "_dropped", "__weakref__")

    def __init__(self, hint=None):
        self.value = None
        self.hint = hint  # what the caller knew before forward (e.g. which grads are wanted)
        self.keeper = self._holder = None  # see :meth:`new_keeper`
        self._dropped = False  # (:meth:`drop` ran: nothing may be put back since)

    def new_keeper(self):
        """An owner for large arrays kept beside ``value`` (_kept.keep_until_dead):
        it dies with this state, or when :meth:`holder`'s tensor is freed, whichever
        comes first. (Only large ones: a holder costs 2-3% of an fft_abs call at 256x256,
        docs/layers.md "Memory in training".)"""
        self.keeper = _Keeper()
        return self.keeper

    def holder(self) -> torch.Tensor:
        """An empty tensor for ``ctx.save_for_backward``: autograd frees it with the other
        saved tensors (after a backward without retain_graph, or with the graph), and then
        ``value`` and ``keeper`` go, as native's saved tensors do. Without it a graph kept
        its state until the output died: a training loop held the last step's (im2col's
        windows) while the next forward ran."""
        tensor = torch.empty(0)
        self._holder = weakref.ref(tensor, functools.partial(_drop, weakref.ref(self)))
        return tensor

    def drop(self) -> None:
        """Forget ``value``, then ``keeper`` (so that what it owned is given back only
        once nothing here can hand it to a backward)."""
        with _taking:
            self.value = None
            self._dropped = True
        self.keeper = None

    def __repr__(self):
        return f"ForwardState({'filled' if self.value is not None else 'empty'})"

    def take(self):
        """``value``, leaving None behind, atomically: a backward that may overwrite what
        forward left takes it, so that no other backward of the graph (retain_graph, or
        one running in another thread at the same time) reads it meanwhile; they find
        None and recompute."""
        with _taking:
            value, self.value = self.value, None
        return value

    def put_back(self, value) -> None:
        """Return what :meth:`take` gave, unchanged, unless the slot was filled since, or
        the state was dropped since: its keeper then gives what ``value`` held back to
        the pool, and a backward of the graph still running (it read the saved tensors
        before autograd freed them) took that pooled buffer from ``value`` as forward's
        spectrum, overwritten meanwhile (hostile pass 157: NaN gradients)."""
        with _taking:
            if self.value is None and not self._dropped:
                self.value = value


def holders(saved: ForwardState | None) -> tuple:
    """What a layer's ``ctx.save_for_backward`` takes beside its own tensors: the state's
    holder (:meth:`ForwardState.holder`) where forward gave it a keeper, else nothing."""
    return () if saved is None or saved.keeper is None else (saved.holder(),)


class _Keeper:
    __slots__ = ("kept_count", "__weakref__")  # (_kept.keep_until_dead's record)


def _drop(state_ref, _holder_ref) -> None:
    state = state_ref()
    if state is not None:
        state.drop()


_taking = threading.Lock()

_saved_tensor_hooks = torch._C._autograd._top_saved_tensors_default_hooks


def new_forward_state(hint=None):
    """A :class:`ForwardState` for forward to fill, or None while saved-tensor hooks are
    in force (non-reentrant checkpointing, ``save_on_cpu``, ``saved_tensors_hooks``):
    what forward kept there would bypass the hooks, holding the activations (and
    im2col's windows) that checkpointing frees or ``save_on_cpu`` moves. Backward then
    recomputes from the saved tensors, which the hooks hand back."""
    if _saved_tensor_hooks(False) is not None:
        return None
    return ForwardState(hint)


def as_forward_saved(grad_output, *saved):
    """``saved`` (from ``ctx.saved_tensors``) in the dtype and on the device forward saved
    them in: ``grad_output``'s, which autograd gives the output's, which is the inputs'
    for these layers. A saved-tensor hook may hand back another: a pack hook that stores
    activations in half precision with an unpack hook that leaves them so. Native's
    ``rfft2(x).abs()`` keeps its gradient there (it saves no real tensor), and native's
    conv raises "expected scalar type"; the layers' numpy kernels have no float16 and
    failed deep inside (``fft_abs``: pocketfft's "unsupported data type"; the convs: a
    ``KeyError: dtype('float16')``, scipy's "convolve2d not available for this type", or
    a silent float16 computation; hostile pass 151), so each such tensor is cast back,
    as an unpack hook that restores the dtype would. Called only where forward ran
    under hooks (its forward state None): no cost on the common path."""
    dtype, device = grad_output.dtype, grad_output.device
    return tuple(t if t.dtype == dtype and t.device == device else t.to(device, dtype)
                 for t in saved)


def check_forward_state(cls, saved) -> None:
    """A TypeError unless ``saved`` (a Function's last ``apply`` argument, not None) is a
    :class:`ForwardState`: that slot is internal (torch.func passes the outermost call's
    state down), and anything else given there failed deep inside forward, "'int'
    object has no attribute 'value'" (hostile pass 112)."""
    if type(saved) is not ForwardState:
        names = list(inspect.signature(cls.forward).parameters)[:cls.PUBLIC_ARGUMENTS]
        raise TypeError(f"{cls.__name__}.apply takes ({', '.join(names)}); got {saved!r} "
                        f"after them, in a slot that is internal (the forward state "
                        f"torch.func passes down)")


def remember_inputs(ctx, input, weight) -> None:
    """Record which tensors forward ran on (their TensorImpls' addresses), and where their
    data lay and how it was laid out (strides and shape: ``x.data = x.data.transpose(2,
    3)`` puts other values at the same address, hostile pass 146), for :func:`state_for`.
    Not weak references, which the graph node held for its life:
    ``torch.utils.swap_tensors`` refuses a tensor that has one, so a module's parameters
    could not be swapped while a graph that read them lived, even after its backward
    (``Module.to()`` under ``torch.__future__.set_swap_module_params_on_conversion``,
    ``load_state_dict(assign=True)``: hostile pass 144). An address reused by another
    tensor once the first died is caught by the data's: forward's numpy views keep the
    data they read alive, so no other tensor's lies there."""
    try:  # (inline: a frame costs ~0.5 us inside autograd)
        addresses = (input.data_ptr(), input.stride(), input.shape, weight.data_ptr(),
                     weight.stride(), weight.shape)
    except RuntimeError:  # (torch.func's wrappers hold no storage)
        addresses = _unwrapped_addresses(input, weight)
    ctx.forward_inputs = (input._cdata, weight._cdata, addresses)


def state_for(ctx, input, weight):
    """``ctx.forward_state``'s value if ``input`` and ``weight`` (from
    ``ctx.saved_tensors``) are the very tensors forward ran on (:func:`remember_inputs`),
    else None, and backward recomputes from them. They are not where hooks repacked them
    (``allow_mutation_on_saved_tensors`` hands back a clone of the original values after
    an in-place change, while forward's numpy views see the new ones); under hooks
    active during forward nothing was kept (:func:`new_forward_state`), and hooks
    registered later are caught here. Nor where their data has moved since forward:
    ``share_memory_()`` (also run by ``Module.share_memory()`` and by torch.multiprocessing's
    pickler, sending a tensor through a queue) copies it into shared memory and frees the
    old buffer under the same tensor, which forward's numpy views still point at (before
    hostile pass 144: gradients NaN or 1e158 off native, or a segfault)."""
    forward_state = ctx.forward_state
    if forward_state is None:
        return None
    input_impl, weight_impl, addresses = ctx.forward_inputs
    if input._cdata != input_impl or weight._cdata != weight_impl:
        return None
    try:
        if addresses != (input.data_ptr(), input.stride(), input.shape, weight.data_ptr(),
                         weight.stride(), weight.shape):
            return None
    except RuntimeError:
        if addresses != _unwrapped_addresses(input, weight):
            return None
    return forward_state.value


_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_unwrapped = torch._C._functorch.get_unwrapped


def _unwrapped_addresses(input, weight):
    """Where the data of the tensors that torch.func's wrappers ``input`` and ``weight``
    hold begins, and its strides and shape (forward ran on those); None where there is
    none to read."""
    tensors = []
    for tensor in (input, weight):
        while _is_wrapped(tensor):
            tensor = _unwrapped(tensor)
        tensors.append(tensor)
    try:
        return tuple(part for tensor in tensors
                     for part in (tensor.data_ptr(), tensor.stride(), tensor.shape))
    except RuntimeError:
        return None
