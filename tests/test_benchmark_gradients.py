"""The suite's gradient-agreement benchmarks (benchmarks/gradients.py): one comparison
that raises fails its own combinations, not the class; a comparison with nothing to
compare records NaN, not an error of 0. (FFTAbsGradients: its setup_cache takes ~2 s.)"""
import itertools
import math
import pickle

import pytest

import benchmarks.gradients as gradients
from benchmarks.bench_fft_abs import FFTAbsGradients


def outcomes(cls, table):
    """Per combination (without quantity) of ``cls``: "ok", "skipped" or "failed", as asv
    would record ``setup`` raising NotImplementedError or anything else."""
    found = {}
    for params in itertools.product(*cls.params):
        try:
            cls().setup(table, *params)
        except NotImplementedError:
            found[params] = "skipped"
        except Exception:  # noqa: BLE001 -- asv records a failure
            found[params] = "failed"
        else:
            found[params] = "ok"
    return found


def test_one_raising_comparison_fails_its_combinations_only(monkeypatch):
    """Hostile pass 93: error_table runs in asv's setup_cache, so one implementation
    raising at one size failed setup_cache, and with it every combination of every
    implementation of the layer (hundreds of gradient regressions in the report)."""
    real = gradients.compare_with_native

    def compare(spec, implementation, leaves, **kwargs):
        if implementation == "scipy-matrix" and leaves[0].dim() == 3:  # the 4x31x30 batch
            raise RuntimeError("scipy-matrix broke on batched input")
        return real(spec, implementation, leaves, **kwargs)

    monkeypatch.setattr(gradients, "compare_with_native", compare)
    table = FFTAbsGradients().setup_cache()
    table = pickle.loads(pickle.dumps(table))  # asv pickles setup_cache's result
    found = outcomes(FFTAbsGradients, table)
    failed = {params for params, outcome in found.items() if outcome == "failed"}
    assert failed and all(p[0] == "scipy-matrix" and p[1] == "4x31x30" for p in failed)
    # every layout, values, dtype and quantity of that implementation and size
    assert len(failed) == 2 * 2 * 2 * 2
    assert all(outcome == "ok" for params, outcome in found.items() if params not in failed)
    with pytest.raises(RuntimeError, match="scipy-matrix broke on batched input"):
        FFTAbsGradients().setup(table, "scipy-matrix", "4x31x30", "float64", "contiguous",
                                "finite", "output")


@pytest.fixture(scope="module")
def fft_table():
    return FFTAbsGradients().setup_cache()


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("quantity", ["output", "grad_input"])
def test_nothing_compared_records_nan_not_zero(fft_table, quantity, layout):
    """Hostile pass 93: a NaN and an inf planted in a 16x16 image make every entry of
    the FFT's output and input gradient non-finite, native's too: the max abs and rel
    errors compared nothing and read 0.0 (a pass). NaN now (asv: skipped); the mismatch
    count (0) says the two agree on where. Hostile pass 142: in the strided layout the
    gradient was compared over the whole NaN-filled buffer the view is cut from, whose
    slots outside the view get a gradient of 0 on both sides: those zeros were the only
    entries finite on both sides, and the errors read 0.0 (a pass) there."""
    params = ("scipy", "16x16", "float64", layout, "nonfinite", quantity)
    bench = FFTAbsGradients()
    bench.setup(fft_table, *params)
    assert math.isnan(bench.track_max_rel_error(fft_table, *params))
    assert math.isnan(bench.track_max_abs_error(fft_table, *params))
    assert bench.track_nonfinite_mismatches(fft_table, *params) == 0
    # where something was compared, a figure
    finite = ("scipy", "4x31x30", "float64", layout, "nonfinite", quantity)
    bench.setup(fft_table, *finite)
    assert 0 <= bench.track_max_rel_error(fft_table, *finite) < 1e-10


def test_an_older_commits_errors_have_no_mismatch_count_not_a_count_of_0():
    """An older commit's Errors hold max_abs and max_rel alone: its mismatch count is
    unknown (NaN, asv's skipped), never 0, which the report reads as "the non-finite
    entries agree with native's"; its errors are the ones it has."""
    import types
    bench = FFTAbsGradients()
    bench.errors = types.SimpleNamespace(max_abs=2e-7, max_rel=3e-7)
    assert math.isnan(bench.track_nonfinite_mismatches(None))
    assert bench.track_max_rel_error(None) == 3e-7 and bench.track_max_abs_error(None) == 2e-7
    bench.errors = types.SimpleNamespace(max_abs=2e-7, max_rel=3e-7, finite_max_abs=1e-7,
                                         finite_max_rel=4e-7, nonfinite_mismatches=5)
    assert bench.track_max_rel_error(None) == 4e-7 and bench.track_max_abs_error(None) == 1e-7
    assert bench.track_nonfinite_mismatches(None) == 5


def test_an_older_commits_strided_nonfinite_cases_are_skipped(monkeypatch):
    """A commit whose compare_with_native compared gradients over the whole buffer of a
    strided view (its zeros outside the view read 0.0 where nothing in the view was
    finite) records no strided non-finite figure; its other cases run as before."""
    monkeypatch.setattr(gradients, "GRADIENTS_OVER_ENTRIES_READ", False)
    bench = FFTAbsGradients()
    assert bench._compare("scipy", "16x16", None, "float64", "strided", "nonfinite") is None
    for layout, values in (("strided", "finite"), ("contiguous", "nonfinite")):
        assert "grad_input" in bench._compare("scipy", "16x16", None, "float64", layout, values)
