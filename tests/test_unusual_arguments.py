"""Arguments that are not plain, passed as users may: tensor subclasses, a str subclass
as the method. Each gives what the plain argument gives."""
import pytest
import torch


class _OwnNumpy(torch.Tensor):
    """A tensor subclass whose numpy() takes no ``force`` (as a user's might)."""

    def numpy(self):
        return torch.Tensor.numpy(self)


@pytest.mark.parametrize("layer", ["fft_abs", "scipy_conv2d"])
def test_tensor_subclasses_reach_numpy_as_plain_tensors_do(layer):
    """Found by the hostile tester: handing numpy(force=True) to every tensor broke a
    subclass whose numpy() takes no force; values and gradients equal the plain ones."""
    from scipy_layers import fft_abs, scipy_conv2d
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(9, 8, dtype=torch.float64, generator=generator)
    w = torch.randn(3, 2, dtype=torch.float64, generator=generator)
    b = torch.randn(1, 1, dtype=torch.float64, generator=generator)

    def run(make):
        inputs = [make(t).requires_grad_() for t in (x, w, b)]
        y = fft_abs(inputs[0]) if layer == "fft_abs" else scipy_conv2d(*inputs)
        wanted = inputs[:1] if layer == "fft_abs" else inputs
        return (y.as_subclass(torch.Tensor),
                *torch.autograd.grad(y.sum(), wanted))

    for ours, plain in zip(run(lambda t: t.clone().as_subclass(_OwnNumpy)),
                           run(lambda t: t.clone())):
        assert torch.equal(ours.as_subclass(torch.Tensor), plain)


def test_a_str_subclass_method_that_hashes_apart_still_runs_backward():
    """Found by the hostile tester: backward looked its method up in a dict, so a str
    subclass equal to "fft" but hashing apart (forward accepts it) raised KeyError."""
    from scipy_layers import fft_abs

    class OwnHash(str):
        def __hash__(self):
            return 12345

    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    (ours,) = torch.autograd.grad(fft_abs(x, OwnHash("fft")).sum(), x)
    (plain,) = torch.autograd.grad(fft_abs(x, "fft").sum(), x)
    assert torch.equal(ours, plain)
