"""Helpers of the layers' torch.func rules: a vmap rule run with subclass
``__torch_function__`` off, vmap by folding the vmapped dim into the layer's batch or by a
loop over its entries, the jvp tangent of a layer linear in each argument, and a clear
error for autograd's own batched tensors (is_grads_batched, vectorize=True), under which
no custom Function's rule is called.
"""
from __future__ import annotations

import functools

import torch

from ._checks import LayerMemoryError, LayerValueError


def vmap_rule(rule):
    """A Function's vmap rule, run with subclass ``__torch_function__`` off: native ops'
    batching rules run below that protocol, so vmap of a native op gives a plain tensor
    for a subclass input; a layer's rule calls the layer again, which would otherwise
    hand it to the subclass and give the subclass back."""

    @functools.wraps(rule)
    def plain(*args):
        with torch._C.DisableTorchFunctionSubclass():
            return rule(*args)

    return plain


_is_legacy_batchedtensor = torch._C._functorch.is_legacy_batchedtensor


def check_not_legacy_batched(name: str, *tensors) -> None:
    """A clear error for a tensor of autograd's own vmap (is_grads_batched=True,
    jacobian(..., vectorize=True) in either mode): custom Functions' vmap rules are not
    called under it and numpy cannot read it."""
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and _is_legacy_batchedtensor(tensor):
            raise legacy_batching_error(name)


def legacy_batching_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"the gradients of {name} run in numpy/scipy and cannot take autograd's batched "
        f"gradients (torch.autograd.grad(..., is_grads_batched=True), "
        f"torch.autograd.functional.jacobian/hessian(..., vectorize=True), reverse or "
        f"forward mode). Use torch.func.vmap over torch.func.vjp / jvp, or jacrev / "
        f"jacfwd (supported), or in reverse mode the unbatched call (vectorize=False, "
        f"or one grad call per grad_output).")


def linear_tangent(output_shape, like, terms):
    """A tangent of an output of ``output_shape``: the sum of ``terms``, each a
    ``(tangent or None, make the output tangent from it)`` pair; zero without any."""
    tangent = like.new_zeros(output_shape)
    for input_tangent, contribution in terms:
        if input_tangent is not None:
            tangent = tangent + contribution(input_tangent)
    return tangent


def vmap_by_fold(apply, folded: torch.Tensor, entries: int):
    """``apply(folded)`` for a vmap rule that folded the vmapped dim, of ``entries``
    entries, into the first dim of ``folded``: a LayerMemoryError then names the folded
    shape, and gets a note saying so (the user passed entries of the other dims)."""
    try:
        return apply(folded)
    except LayerMemoryError as error:
        error.add_note(f"(under torch.func.vmap: the first dim of those shapes is the "
                       f"vmapped dim of {entries} entries, folded into the layer's batch)")
        raise


def vmap_of_images(function, in_dims, input, *args):
    """vmap rule of a layer over the last two dims (the FFT layers): the vmapped dim is one
    more batch dim. Each entry must be an image (..., H, W) itself: the layer's checks see
    the folded tensor alone, where the vmapped dim would pass for H (hostile pass 112: a
    1-D entry gave a transform across the vmapped entries, where native raises)."""
    if input.dim() < 3:
        entry_shape = tuple(size for dim, size in enumerate(input.shape)
                            if dim != in_dims[0] % input.dim())
        raise LayerValueError(f"input must have at least 2 dims, got a {len(entry_shape)}-D "
                              f"tensor of shape {entry_shape} (each entry under torch.func.vmap)")
    entries = input.shape[in_dims[0]]
    return vmap_by_fold(lambda x: function.apply(x, *args), input.movedim(in_dims[0], 0),
                        entries), 0


def vmap_by_loop(apply, info, in_dims, args):
    """A vmap rule that calls ``apply`` once per batch entry and stacks the results along
    dim 0. ``in_dims`` and ``args`` line up; tensors with a None in_dim are shared.
    Outputs that are None for every entry stay None."""
    if info.batch_size == 0:  # no entry to run: one on meta tensors gives the shapes
        device = next(arg.device for arg, dim in zip(args, in_dims) if dim is not None)
        results = [apply(*(_meta_entry(arg, dim) for arg, dim in zip(args, in_dims)))]

        def stack(parts):
            return torch.empty(0, *parts[0].shape, dtype=parts[0].dtype, device=device)
    else:
        results = [apply(*(arg if dim is None else arg.select(dim, index)
                           for arg, dim in zip(args, in_dims)))
                   for index in range(info.batch_size)]
        stack = torch.stack
    if isinstance(results[0], torch.Tensor):
        return stack(results), 0
    outputs = tuple(None if parts[0] is None else stack(parts) for parts in zip(*results))
    return outputs, tuple(None if out is None else 0 for out in outputs)


def _meta_entry(arg, dim):
    """One batch entry of ``arg`` (vmapped along ``dim``, or shared: None) as a meta
    tensor; non-tensors as they are."""
    if not isinstance(arg, torch.Tensor):
        return arg
    shape = arg.shape if dim is None else arg.shape[:dim] + arg.shape[dim + 1:]
    return torch.empty(shape, dtype=arg.dtype, device="meta")
