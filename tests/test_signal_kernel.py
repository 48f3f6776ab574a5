"""scipy.signal's correlation kernel called directly (scipy_layers/_signal_kernel.py)
gives what scipy.signal.correlate2d / convolve2d give, bit for bit, on every layout and
kernel shape the layers pass; the public fallback does too."""
import numpy as np
import pytest
import torch
from scipy import signal

from scipy_layers import _signal_kernel

LAYOUTS = {
    "contiguous": lambda t: t,
    "transposed": lambda t: t.transpose(-2, -1),
    "step-sliced": lambda t: t[::2, 1::3],
    "expanded": lambda t: t[:1, :].expand(6, t.shape[-1]),
    "cropped": lambda t: t[1:-1, 2:],
    "negative view": lambda t: torch._neg_view(t),
}


def test_private_kernel_is_in_use_here():
    """The probe accepts scipy's kernel on the pinned scipy (else no speed-up; the
    results stay right, see below)."""
    assert _signal_kernel.PRIVATE


def test_the_probe_refuses_a_kernel_of_another_dtype_or_one_that_raises(monkeypatch):
    """A private kernel whose results have another dtype (same values), or that raises
    (another signature), is refused: the public functions run, and the import survives."""
    kernel = _signal_kernel._convolve2d
    monkeypatch.setattr(_signal_kernel, "_convolve2d",
                        lambda *args: kernel(*args).astype(np.float64))
    assert not _signal_kernel._private_works()

    def changed(in1, in2, flip, mode, boundary, fillvalue, extra):
        raise AssertionError("not reached")

    monkeypatch.setattr(_signal_kernel, "_convolve2d", changed)  # (a TypeError when called)
    assert not _signal_kernel._private_works()
    monkeypatch.setattr(_signal_kernel, "_convolve2d", kernel)
    assert _signal_kernel._private_works()


@pytest.mark.parametrize("private", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel", [(1, 1), (3, 1), (1, 4), (3, 3), (6, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_direct_kernel_matches_scipy_signal_bit_for_bit(private, layout, kernel, dtype,
                                                        monkeypatch):
    if not private:
        monkeypatch.setattr(_signal_kernel, "correlate_valid",
                            _signal_kernel._public_correlate_valid)
        monkeypatch.setattr(_signal_kernel, "convolve_full",
                            _signal_kernel._public_convolve_full)
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(12, 14, dtype=dtype, generator=generator)
    x = LAYOUTS[layout](base).numpy(force=True)
    if x.shape[0] < kernel[0] or x.shape[1] < kernel[1]:
        pytest.skip("the layout leaves an input smaller than the kernel")
    w = LAYOUTS[layout](torch.randn(14, 14, dtype=dtype, generator=generator)).numpy(
        force=True)[:kernel[0], :kernel[1]]
    g = torch.randn(x.shape[0] - kernel[0] + 1, x.shape[1] - kernel[1] + 1, dtype=dtype,
                    generator=generator).numpy()
    pairs = [(_signal_kernel.correlate_valid(x, w), signal.correlate2d(x, w, mode="valid")),
             (_signal_kernel.convolve_full(g, w), signal.convolve2d(g, w, mode="full")),
             (_signal_kernel.correlate_valid(x, g), signal.correlate2d(x, g, mode="valid"))]
    for ours, public in pairs:
        assert ours.dtype == public.dtype and ours.shape == public.shape
        assert np.array_equal(ours, public)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf, 1e300])
def test_direct_kernel_matches_on_non_finite_and_huge_values(special):
    x = np.random.default_rng(1).standard_normal((9, 8))
    x[4, 3] = special
    w = np.random.default_rng(2).standard_normal((3, 2))
    np.testing.assert_array_equal(_signal_kernel.correlate_valid(x, w),
                                  signal.correlate2d(x, w, mode="valid"))
    np.testing.assert_array_equal(_signal_kernel.convolve_full(x, w),
                                  signal.convolve2d(x, w, mode="full"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_direct_method_gives_the_same_through_the_public_functions(dtype, monkeypatch):
    """The layer's "direct" method, forward and both gradients, is the same bit for bit
    whether it reaches scipy's kernel directly or through scipy.signal's functions."""
    from scipy_layers import scipy_conv2d

    def run():
        generator = torch.Generator().manual_seed(3)
        x = torch.randn(11, 9, dtype=dtype, generator=generator, requires_grad=True)
        w = torch.randn(4, 3, dtype=dtype, generator=generator, requires_grad=True)
        b = torch.randn(1, 1, dtype=dtype, generator=generator, requires_grad=True)
        y = scipy_conv2d(x, w, b, method="direct")
        return (y, *torch.autograd.grad(y, (x, w, b), torch.ones_like(y)))

    direct = run()
    monkeypatch.setattr(_signal_kernel, "correlate_valid", _signal_kernel._public_correlate_valid)
    monkeypatch.setattr(_signal_kernel, "convolve_full", _signal_kernel._public_convolve_full)
    for ours, public in zip(direct, run()):
        assert torch.equal(ours, public)
