"""The batched conv's shift method (scipy_layers/_nchw_shift.py): when auto runs it, that
its scratch buffers are written before they are read, signed zeros as native's, and the
module refusing a geometry fft or shift cannot run.
Its values, layouts, NaN/inf, gradients and accuracy are checked with every other method
from the sample table (test_harness.py, test_accuracy.py, test_views.py)."""
import pytest
import torch
import torch.nn.functional as F

import scipy_layers.nn as nn
from scipy_layers import Conv2d, _nchw_shift, conv2d, scipy_conv2d
from scipy_layers.agreement import TOLERANCE, max_errors
from scipy_layers.samples import SAMPLES, make_case
from tests._nan_scratch import fill_scratch_with_nan
from tests._shift_tiers import SHIFT_TIERS, shift_tier


def test_auto_shift_rule_follows_the_dtype():
    """float64 hands 11x11 (121 taps) to fft, float32 keeps it on shift
    (_conv_rule.SHIFT_MAX_TAPS)."""
    args = ((4, 1, 32, 32), (1, 1, 11, 11), (1, 1), (1, 1), 1)  # (64x64: im2col, pass 132)
    assert nn.choose_nchw_method(*args, torch.float32) == "shift"
    assert nn.choose_nchw_method(*args, torch.float64) == "fft"
    assert nn.choose_nchw_method(*args[:2], (1, 1), (2, 1), 1, torch.float32) == "im2col"


@pytest.mark.parametrize("sample", [s for s in SAMPLES["conv2d_nchw"] if s.accepts("scipy-shift")],
                         ids=lambda s: s.name)
def test_shift_scratch_is_written_before_it_is_read(sample, monkeypatch):
    fill_scratch_with_nan(monkeypatch, nn.kernels, _nchw_shift)
    for dtype in (torch.float64, torch.float32):
        leaves, prepare = make_case(sample, "contiguous", dtype, requires_grad=False)
        inputs = prepare(leaves)
        ours = conv2d(*inputs, **sample.kwargs, method="shift")
        theirs = F.conv2d(*inputs, **sample.kwargs)
        assert max_errors(ours, theirs).max_rel <= TOLERANCE[dtype], sample.name


@pytest.mark.parametrize("tier", ["shift", *SHIFT_TIERS])
@pytest.mark.parametrize("shape,kernel", [((300, 1, 12, 12), 3), ((2, 1, 200, 200), 1),
                                          ((1, 1, 9, 9), 3)])
def test_shift_sums_of_negative_zeros_come_out_positive_as_native(shape, kernel, tier):
    """A window of -0 products (zero input, negative weight) sums to +0 in native; the
    shift kernels' long-run branch started from the first product and gave -0. Each tier
    (tests/_shift_tiers.py), the gradients too (-0 products: a zero g)."""
    x = torch.zeros(shape, requires_grad=True)
    w = -torch.ones(1, shape[1], kernel, kernel, requires_grad=True)
    with shift_tier(tier) as shift:
        for method in (shift, "auto", "im2col"):
            y = conv2d(x, w, method=method)
            assert not y.signbit().any(), method
            grad_x, grad_w = torch.autograd.grad(y, (x, w), torch.zeros_like(y))
            assert not (grad_x.signbit().any() or grad_w.signbit().any()), method
        assert not F.conv2d(x, w).signbit().any()
        single_x = torch.zeros(200, 200, requires_grad=True)
        single = scipy_conv2d(single_x, -torch.ones(kernel, kernel), method=shift)
        assert not single.signbit().any()
        (grad_single,) = torch.autograd.grad(single, single_x, torch.zeros_like(single))
        assert not grad_single.signbit().any()


@pytest.mark.parametrize("method", ["fft", "shift"])
@pytest.mark.parametrize("kwargs", [dict(stride=2), dict(dilation=(1, 2)), dict(groups=2)])
def test_module_refuses_a_method_its_geometry_cannot_run_when_built(method, kwargs):
    with pytest.raises(ValueError, match=rf"method='{method}' needs stride 1, dilation 1 and "
                                         r"groups 1; got"):
        Conv2d(2, 2, 3, method=method, **kwargs)
    assert "method='shift'" in repr(Conv2d(2, 1, 3, method="shift"))
