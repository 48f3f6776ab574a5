"""Bugs of older torch releases in the native oracle, probed rather than read off the
version: on such a torch the tests skip the comparisons the oracle cannot make, saying
why, instead of failing on torch's error (pyproject.toml's range starts at torch 2.8)."""
import torch


def _rfft2_takes_expanded_inputs() -> bool:
    try:
        torch.fft.rfft2(torch.ones(1, 4).expand(2, 4))
    except RuntimeError:  # torch 2.8: "MKL FFT error: ... Inconsistent configuration parameters"
        return False
    return True


RFFT2_TAKES_EXPANDED_INPUTS = _rfft2_takes_expanded_inputs()
RFFT2_EXPANDED_BUG = (f"torch {torch.__version__}'s rfft2, the oracle here, fails on expanded "
                      f"(stride 0) inputs (MKL DFTI error)")


def skip_where_native_rfft2_cannot(layer_name: str, layout: str) -> None:
    """Skip an FFT layer's comparison with native on an expanded view where torch's rfft2
    fails on those."""
    if layer_name == "fft_abs" and layout == "expanded" and not RFFT2_TAKES_EXPANDED_INPUTS:
        import pytest
        pytest.skip(RFFT2_EXPANDED_BUG)
