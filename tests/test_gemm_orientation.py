"""tools/gemm_orientation.py and the kernels' forced grad_weight orientation it times
(_im2col_grads._grad_weight's cols_first): both orientations give the same gradients,
the keyword runs the one asked for, and the tool's arithmetic, checks and output."""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scipy_layers import _im2col_grads as grads
from scipy_layers import _im2col_layout as layout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import gemm_orientation  # noqa: E402


class _MatmulSpy:
    """Stands in for numpy in _im2col_grads: records each matmul's first operand."""

    def __init__(self):
        self.first_operands = []

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, **options):
        self.first_operands.append(a.shape)
        return np.matmul(a, b, **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias_row", [False, True])
def test_both_orientations_give_the_defined_gradients(dtype, with_bias_row):
    gy, windows, w_shape = gemm_orientation.operands("3x2x6x5:4:3", np.dtype(dtype))
    if not with_bias_row:
        windows = windows[:, :, :-1]
    exact = np.einsum("ngol,ngkl->gok", gy.astype(np.float64), windows.astype(np.float64))[0]
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for cols_first in (True, False):
        grad_w, grad_b = grads._grad_weight(gy, windows, w_shape, cols_first=cols_first)
        assert grad_w.shape == w_shape and grad_w.dtype == dtype
        np.testing.assert_allclose(grad_w.reshape(w_shape[0], -1), exact[:, :18],
                                   rtol=tolerance, atol=tolerance * 10)
        if with_bias_row:
            np.testing.assert_allclose(grad_b, exact[:, 18], rtol=tolerance, atol=tolerance * 10)
        else:
            assert grad_b is None


@pytest.mark.parametrize("cols_first", [True, False])
def test_the_keyword_runs_the_orientation_asked_for_and_skips_the_rule(monkeypatch, cols_first):
    gy, windows, w_shape = gemm_orientation.operands("2x3x6x6:4:3", np.dtype(np.float64))
    spy = _MatmulSpy()
    monkeypatch.setattr(grads, "np", spy)
    monkeypatch.setattr(layout, "grad_weight_cols_first",
                        lambda *_: pytest.fail("the rule was asked though forced"))
    grads._grad_weight(gy, windows, w_shape, cols_first=cols_first)
    assert spy.first_operands == [windows.shape if cols_first else gy.shape]


def test_without_the_keyword_the_rule_decides(monkeypatch):
    gy, windows, w_shape = gemm_orientation.operands("2x3x6x6:4:3", np.dtype(np.float32))
    for ruled in (True, False):
        spy = _MatmulSpy()
        monkeypatch.setattr(grads, "np", spy)
        monkeypatch.setattr(layout, "grad_weight_cols_first", lambda dtype, rows: ruled)
        grads._grad_weight(gy, windows, w_shape)
        assert spy.first_operands == [windows.shape if ruled else gy.shape]


def test_operands_have_the_layers_shapes_and_its_row_of_ones():
    gy, windows, w_shape = gemm_orientation.operands("2x3x10x8:5:3", np.dtype(np.float32))
    assert gy.shape == (2, 1, 5, 8 * 6) and windows.shape == (2, 1, 3 * 9 + 1, 8 * 6)
    assert w_shape == (5, 3, 3, 3) and (windows[:, :, -1] == 1).all()
    assert gy.dtype == windows.dtype == np.float32


def test_a_row_picks_by_the_rule_and_counts_its_regret(monkeypatch):
    times = {"cols": [2e-3, 4e-3], "gy": [1e-3, 1e-3]}  # cols-first: 2 and 4 times slower
    monkeypatch.setattr(gemm_orientation, "batch_times", lambda calls, batches, per: times)
    for ruled, regret in ((True, 3.0), (False, 1.0)):
        monkeypatch.setattr(gemm_orientation, "grad_weight_cols_first", lambda d, r: ruled)
        row = gemm_orientation.measure("2x3x6x6:4:3", np.dtype(np.float64), 2)
        assert row["picked"] == ("cols" if ruled else "gy")
        assert row["regret"] == pytest.approx(regret)
        assert row["ratio"] == pytest.approx(3.0)  # the median of the per-batch 2 and 4
        assert (row["rows"], row["columns"]) == (28, 16)
        assert (row["cols_us"], row["gy_us"]) == (pytest.approx(3000), pytest.approx(1000))


def test_a_real_row_times_both_and_asks_the_real_rule():
    row = gemm_orientation.measure("2x3x8x8:4:3", np.dtype(np.float32), 2)
    assert row["picked"] == ("cols" if layout.grad_weight_cols_first(np.dtype(np.float32), 28)
                             else "gy")
    assert row["cols_us"] > 0 and row["gy_us"] > 0 and row["regret"] >= 1
    assert row["ratio_q1"] <= row["ratio"] <= row["ratio_q3"]


def _row(case, regret, picked="gy", cols_us=100.0, gy_us=200.0):
    return {"case": case, "rows": 28, "columns": 900, "cols_us": cols_us, "gy_us": gy_us,
            "ratio": cols_us / gy_us, "ratio_q1": 0.4, "ratio_q3": 0.6, "picked": picked,
            "regret": regret}


def test_the_table_totals_and_marks_the_costly_picks():
    rows = [_row("a", 2.0), _row("b", 1.0, "cols", 300.0, 310.0)]
    lines = gemm_orientation.table(np.dtype(np.float32), rows)
    assert lines[0].startswith("## float32: the rule's picks 0.50 ms in all, the faster "
                               "orientation's 0.40 ms (1.250x); 1 of 2 cases 1.05x")
    assert lines[4].endswith("| gy | **2.000** |") and lines[5].endswith("| cols | 1.000 |")


@pytest.mark.parametrize("regret, marked", [(1.0494, False), (1.0496, True), (1.05, True),
                                            (1.049, False)])
def test_a_regret_is_marked_as_it_is_printed(regret, marked):
    lines = gemm_orientation.table(np.dtype(np.float64), [_row("a", regret)])
    assert lines[4].endswith(f"| **{regret:.3f}** |" if marked else f"| {regret:.3f} |")
    assert f"; {int(marked)} of 1 cases" in lines[0]


def test_each_label_times_its_own_orientation(monkeypatch):
    """A cols-first GEMM made slow must read slow in the cols column (labels not swapped)."""
    real = gemm_orientation._grad_weight

    def slow_cols_first(gy, windows, w_shape, cols_first=None):
        if cols_first:
            time.sleep(0.002)
        return real(gy, windows, w_shape, cols_first=cols_first)

    monkeypatch.setattr(gemm_orientation, "_grad_weight", slow_cols_first)
    row = gemm_orientation.measure("1x1x4x4:1:3", np.dtype(np.float64), 2)
    assert row["cols_us"] > row["gy_us"] + 1000 and row["ratio"] > 1


@pytest.mark.parametrize("dtype, c_in_k", [(np.float32, (7, 3)), (np.float32, (455, 3)),
                                           (np.float64, (7, 3)), (np.float64, (1, 8))])
def test_the_rule_is_asked_with_the_rows_the_layer_multiplies(monkeypatch, dtype, c_in_k):
    asked = []
    monkeypatch.setattr(gemm_orientation, "grad_weight_cols_first",
                        lambda d, rows: asked.append((d, rows)) or True)
    monkeypatch.setattr(gemm_orientation, "batch_times",
                        lambda calls, batches, per: {"cols": [1.0, 1.0], "gy": [1.0, 1.0]})
    c_in, k = c_in_k
    gemm_orientation.measure(f"1x{c_in}x{k}x{k}:2:{k}", np.dtype(dtype), 2)
    assert asked == [(np.dtype(dtype), c_in * k * k + 1)]  # e.g. 64 and 4,096 rows


@pytest.mark.parametrize("case, message", [
    ("8x16x32x32:32", "expected NxCxHxW:C_out:k"),
    ("8x16x32:32:3", "expected NxCxHxW:C_out:k"),
    ("8x16xax32:32:3", "six whole numbers"),
    ("+1x1x4x4:1:3", "six whole numbers"),
    ("-1x1x4x4:1:3", "six whole numbers"),  # (argparse read it as an option)
    ("1x1x4x4:1:1_0", "six whole numbers"),
    ("1x1x4x4:1:\u0663", "six whole numbers"),
    ("1x1x4x4:1:3 ", "nothing else"),
    ("1x1x4x4:1:3\n", "nothing else"),
    ("1x1x4x4:1234567890:3", "at most 9 digits"),
    ("1x1x4x4:" + "9" * 5000 + ":3", "..."),
    ("8x16x32x32:0:3", "at least 1"),
    ("1x1x4x4:1:5", "has no output on a 4x4 input"),
    ("1x1x4x6:1:5", "has no output on a 4x6 input"),
    ("64x64x512x512:64:15", "MiB, over the 1024 MiB"),
    ("1x1x1x1:999999999:1", "MiB, over the 1024 MiB"),  # grad_output alone
    ("1x1111x3x3:1000000:3", "MiB, over the 1024 MiB"),  # the GEMM's products alone
])
def test_bad_cases_are_refused_by_name_before_timing(monkeypatch, capsys, case, message):
    monkeypatch.setattr(gemm_orientation, "measure", lambda *_: pytest.fail("timed"))
    with pytest.raises(SystemExit) as exit_:
        gemm_orientation.main(["--cases", case])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and message in error and len(error) < 1000


@pytest.mark.parametrize("batches", ["3", "0", "-2", "1002"])
def test_an_odd_or_empty_batch_count_is_refused(capsys, batches):
    with pytest.raises(SystemExit) as exit_:
        gemm_orientation.main(["--batches", batches])
    assert exit_.value.code == 2 and "even number from 2 to 1000" in capsys.readouterr().err


def test_the_limit_is_each_dtypes_own():
    case = "1x64x512x512:64:3"  # ~0.58 GiB in float32, ~1.2 in float64
    gemm_orientation.checked(case, np.dtype(np.float32))
    with pytest.raises(ValueError, match="float64 windows"):
        gemm_orientation.checked(case, np.dtype(np.float64))


def test_a_filter_as_large_as_the_input_is_a_case():
    assert gemm_orientation.checked("1x2x5x4:3:4", np.dtype(np.float32))[1:3] == (33, 2)


def test_the_default_cases_are_the_suites_cnn_shapes_and_fit_the_limit():
    cases = gemm_orientation.default_cases()
    assert "8x16x32x32:32:3" in cases and "1x64x56x56:64:15" in cases and len(cases) == 15
    for case in cases:
        for dtype in (np.float32, np.float64):
            gemm_orientation.checked(case, np.dtype(dtype))


def test_a_run_prints_the_environment_and_a_table_per_dtype(capsys):
    assert gemm_orientation.main(["--cases", "2x3x8x8:4:3", "1x2x9x7:3:5",
                                  "--batches", "2"]) == 0
    out = capsys.readouterr().out
    assert "# im2col's grad_weight GEMM orientation on " in out
    assert "- kernel overrides:" in out and "BLAS" in out
    for dtype in ("float32", "float64"):
        assert f"## {dtype}: the rule's picks" in out
    assert out.count("| 2x3x8x8:4:3 | 28 | 36 |") == 2
    assert out.count("| 1x2x9x7:3:5 | 51 | 15 |") == 2


def test_a_run_times_only_the_dtypes_asked_each_case_once(capsys, monkeypatch):
    timed = []
    monkeypatch.setattr(gemm_orientation, "measure",
                        lambda case, dtype, batches: timed.append((case, dtype.name))
                        or _row(case, 1.0))
    assert gemm_orientation.main(["--cases", "2x3x8x8:4:3", "2x3x8x8:4:3", "1x1x4x4:1:3",
                                  "--dtypes", "float64", "float64", "--batches", "2"]) == 0
    assert timed == [("2x3x8x8:4:3", "float64"), ("1x1x4x4:1:3", "float64")]
    out = capsys.readouterr().out
    assert "## float64" in out and "## float32" not in out


def test_a_rows_ratio_is_the_median_and_quartiles_of_the_batch_pairs(monkeypatch):
    # (mutation pass 114) one slow cols-first batch of four: the median ratio stays 1
    times = {"cols": [1e-3, 1e-3, 1e-3, 5e-3], "gy": [1e-3, 1e-3, 1e-3, 1e-3]}
    monkeypatch.setattr(gemm_orientation, "batch_times", lambda calls, batches, per: times)
    row = gemm_orientation.measure("2x3x6x6:4:3", np.dtype(np.float64), 4)
    assert row["ratio"] == pytest.approx(1.0)
    assert (row["ratio_q1"], row["ratio_q3"]) == (pytest.approx(1.0), pytest.approx(2.0))
    assert (row["cols_us"], row["gy_us"]) == (pytest.approx(1000), pytest.approx(1000))
