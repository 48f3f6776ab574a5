"""tools/method_choice.py: the seeded draw of cells where auto's cost model decides, the
figures it writes and its errors; and the rule's pieces it reads (_nchw_rule.weighs_fft,
modelled_times) against choose_nchw_method itself."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import method_choice  # noqa: E402
from scipy_layers import _nchw_rule  # noqa: E402

SCRIPT = [sys.executable, str(ROOT / "tools" / "method_choice.py")]


def test_a_longer_draw_starts_with_the_shorter_and_repeats_no_cell():
    cases = method_choice.drawn_cases(120)
    assert cases[:24] == method_choice.drawn_cases(12)
    assert len({method_choice.label(case) for case in cases}) == 240


def test_cases_given_with_default_options_are_the_same_cell():
    given = method_choice._model_case("cnn:1x2x16x16:4:float32:5:s1:g1:d1:p2")
    assert given == method_choice.parse_case("cnn:1x2x16x16:4:float32:5:p2")


@pytest.mark.parametrize("error, code", [(KeyboardInterrupt(), 130),
                                         (RuntimeError("out of\n memory"), 1)])
def test_a_run_that_stops_writes_nothing(monkeypatch, tmp_path, capsys, error, code):
    (tmp_path / "method_choice.csv").write_text("before")
    timed = []

    def measure(case, batches):
        if timed:
            raise error
        timed.append(case)
        return {"cell": "x", "auto": "fft", "fft_over_im2col": 1.0,
                "modelled_fft_over_im2col": 1.0}

    monkeypatch.setattr(method_choice, "measure", measure)
    assert method_choice.main(["--case", "cnn:1x2x16x16:4:float32:5",
                               "cnn:1x2x16x16:4:float64:5", "--out", str(tmp_path)]) == code
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == ("method_choice: interrupted after 1 of 2 cells; nothing written"
                    if code == 130 else "method_choice: cnn 1x2x16x16->4 k5 float64: "
                    "RuntimeError: out of memory; nothing written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["method_choice.csv"]
    assert (tmp_path / "method_choice.csv").read_text() == "before"


def test_the_draw_is_seeded_and_stays_where_the_model_decides():
    cases = method_choice.drawn_cases(12)
    assert cases == method_choice.drawn_cases(12) and len(cases) == 24
    assert len({method_choice.label(case) for case in cases}) == 24
    for case in cases:
        fft_ms, im2col_ms = method_choice.modelled(case)
        assert method_choice.decided_by_model(case)
        assert max(fft_ms, im2col_ms) <= method_choice.MAX_MODELLED_MS
        kernel, (_, _, height, _, _) = case[3], case[1]
        assert 25 <= kernel * kernel and kernel <= height
    # both dtypes of each cell, and both of auto's answers among them
    assert [case[2] for case in cases[:2]] == ["float32", "float64"]
    picks = {_nchw_rule.choose_nchw_method(*_args(case)) for case in cases}
    assert picks == {"fft", "im2col"}


def _args(case):
    x_shape, w_shape, padding = method_choice._shapes(case)
    return x_shape, w_shape, (1, 1), (1, 1), 1, getattr(torch, case[2]), padding


@pytest.mark.parametrize("seed", range(3))
def test_the_rules_pieces_give_the_rules_answer(seed):
    """choose_nchw_method takes fft exactly where weighs_fft holds, the spectra fit and
    modelled_times puts fft within the margin of im2col (random shapes, both dtypes)."""
    rng = torch.Generator().manual_seed(seed)

    def draw(low, high):
        return int(torch.randint(low, high + 1, (), generator=rng))

    for _ in range(300):
        c_in, c_out, k = draw(1, 40), draw(1, 40), draw(1, 15)
        x_shape = (draw(1, 9), c_in, draw(max(1, k - 4), 70), draw(max(1, k - 4), 70))
        padding = (draw(0, 3),) * 2 + (draw(0, 3),) * 2
        if min(x_shape[2] + 2 * padding[0], x_shape[3] + 2 * padding[2]) < k:
            continue
        dtype = (torch.float32, torch.float64)[draw(0, 1)]
        w_shape = (c_out, c_in, k, k)
        method = _nchw_rule.choose_nchw_method(x_shape, w_shape, (1, 1), (1, 1), 1, dtype,
                                               padding)
        if not _nchw_rule.weighs_fft(x_shape, w_shape, (1, 1), (1, 1), 1, dtype, padding):
            assert method in ("shift", "im2col")
            continue
        fft_ns, spectra, im2col_ns = _nchw_rule.modelled_times(x_shape, w_shape, padding,
                                                              dtype)
        out_hw = (x_shape[2] + 2 * padding[0] - k + 1) * (x_shape[3] + 2 * padding[2] - k + 1)
        data = x_shape[0] * (c_in * x_shape[2] * x_shape[3] + c_out * out_hw)
        fits = (spectra <= _nchw_rule.FFT_MODEL_MAX_SPECTRA_BYTES
                or ((c_out == 1 or c_in * c_out <= _nchw_rule.FFT_MAX_CHANNEL_PAIRS)
                    and spectra <= 16 * _nchw_rule.NARROW_SPECTRA_PER_ELEMENT * data))
        takes_fft = fits and fft_ns <= _nchw_rule.FFT_MODEL_MARGIN * im2col_ns
        assert method == ("fft" if takes_fft else "im2col")


def test_the_rules_pieces_take_the_rules_dtypes():
    with pytest.raises(TypeError):
        _nchw_rule.weighs_fft((8, 4, 64, 64), (16, 4, 7, 7), (1, 1), (1, 1), 1, torch.float16)
    shapes = ((1, 2, 16, 16), (4, 2, 5, 5), (0,) * 4)
    assert _nchw_rule.modelled_times(*shapes) == _nchw_rule.modelled_times(*shapes,
                                                                           torch.float32)


@pytest.mark.parametrize("stride, dilation, groups", [((2, 2), (1, 1), 1),
                                                      ((1, 1), (2, 1), 1), ((1, 1), (1, 1), 2)])
def test_the_model_is_not_weighed_where_fft_cannot_run(stride, dilation, groups):
    assert not _nchw_rule.weighs_fft((8, 4, 64, 64), (16, 4 // groups, 7, 7), stride,
                                     dilation, groups)
    assert _nchw_rule.weighs_fft((8, 4, 64, 64), (16, 4, 7, 7), (1, 1), (1, 1), 1)


def test_regret_and_the_summary_come_from_the_timed_methods(monkeypatch):
    def batch_times(calls, batches, per_batch):
        assert set(calls) == {"fft", "im2col"} and batches == 2
        return {"fft": [0.003, 0.005], "im2col": [0.002, 0.002]}  # medians 4 and 2 ms

    monkeypatch.setattr(method_choice, "batch_times", batch_times)
    case = method_choice.parse_case("cnn:4x2x32x32:8:float64:15")  # auto: fft
    assert _nchw_rule.choose_nchw_method(*_args(case)) == "fft"
    row = method_choice.measure(case, 2)
    assert row["auto"] == "fft" and row["fft_ms"] == pytest.approx(4.0)
    assert row["fft_over_im2col"] == pytest.approx(2.0) == row["regret"]
    text = method_choice.markdown([row], 2, "now", "abc")
    assert "auto 4.0 ms in all, the faster method 2.0 ms (2.000x); 1 of 1 cells" in text
    assert "| **2.00** |" in text


def test_the_script_writes_both_files(tmp_path):
    result = subprocess.run(SCRIPT + ["--case", "cnn:2x2x16x16:8:float32:5:p2",
                                      "cnn:1x2x24x24:4:float64:7", "--batches", "2",
                                      "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="2"))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "method_choice.csv")
    assert list(table["cell"]) == ["cnn 2x2x16x16->8 k5 p2 float32",
                                   "cnn 1x2x24x24->4 k7 float64"]
    assert (table[["fft_ms", "im2col_ms"]] > 0).all().all() and (table["regret"] >= 1).all()
    text = (tmp_path / "method_choice.md").read_text()
    assert "## float32:" in text and "## float64:" in text and "- CPU:" in text
    # the BLAS threads the cells ran at (one), whatever the environment allowed
    blas = next(line for line in text.splitlines() if "numpy/scipy BLAS:" in line)
    blas = blas.split("numpy/scipy BLAS:")[1]
    assert blas.count(" thread(s)") == blas.count(" 1 thread(s)") > 0, blas


@pytest.mark.parametrize("arguments, message", [
    (["--case", "cnn:2x2x16x16:8:float32:5:s2"], "no options but padding"),
    (["--case", "fft:16:float32"], "a cnn case"),
    (["--case", "cnn:1x1x20x20:1:float64:7"], "takes 'shift' by a fixed rule"),
    (["--case", "cnn:8x64x32x32:64:float32:3"], "takes 'im2col' by a fixed rule"),
    (["--case", "cnn:1x2x16x16:4:float32:5", "cnn:1x2x16x16:4:float32:5:s1:p0"],
     "--case names cnn 1x2x16x16->4 k5 float32 twice"),  # (defaults given: the same cell)
    (["--case", "cnn:16x64x4096x4096:128:float64:15"], "at most 268435456"),
    (["--case", "cnn:1x2x16x16:4:float32:5", "--cells", "3"], "give one of the two"),
    (["--cells", "0"], "--cells must be 1 to 500, got 0"),
    (["--cells", "501"], "--cells must be 1 to 500, got 501"),
    (["--batches", "0"], "--batches must be at least 1, got 0")])
def test_bad_arguments_are_named(arguments, message, tmp_path):
    result = subprocess.run(SCRIPT + arguments + ["--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2 and message in result.stderr
    assert not list(tmp_path.iterdir())


def _row(cell, dtype, auto, fft_ms, im2col_ms):
    return {"cell": cell, "dtype": dtype, "auto": auto, "fft_ms": fft_ms,
            "im2col_ms": im2col_ms, "fft_over_im2col": fft_ms / im2col_ms,
            "modelled_fft_over_im2col": 1.0,
            "regret": {"fft": fft_ms, "im2col": im2col_ms}[auto] / min(fft_ms, im2col_ms)}


def test_each_dtypes_summary_counts_its_own_cells():
    # (mutation pass 114: each dtype's section summed and listed both dtypes' cells)
    rows = [_row("a", "float32", "fft", 4.0, 2.0), _row("b", "float64", "im2col", 9.0, 3.0),
            _row("c", "float32", "im2col", 5.0, 1.0)]
    text = method_choice.markdown(rows, 2, "now", "abc")
    sections = {part.split(":")[0]: part for part in text.split("\n## ")[1:]}
    assert sections["float32"].startswith(
        "float32: auto 5.0 ms in all, the faster method 3.0 ms (1.667x); 1 of 2 cells")
    assert sections["float64"].startswith(
        "float64: auto 3.0 ms in all, the faster method 3.0 ms (1.000x); 0 of 1 cells")
    listed = {dtype: [line.split(" | ")[0] for line in part.splitlines() if line.startswith("| ")
                      and "---" not in line and "cell" not in line]
              for dtype, part in sections.items()}
    assert listed == {"float32": ["| a", "| c"], "float64": ["| b"]}


def test_cells_draws_the_count_given(monkeypatch, tmp_path):
    # (mutation pass 114: --cells was ignored, the default draw timed)
    timed = []

    def measure(case, batches):
        timed.append(method_choice.label(case))
        return _row(method_choice.label(case), case[2], "fft", 1.0, 1.0)

    monkeypatch.setattr(method_choice, "measure", measure)
    threads = torch.get_num_threads()
    try:
        assert method_choice.main(["--cells", "2", "--batches", "2", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert timed == [method_choice.label(case) for case in method_choice.drawn_cases(2)]
    assert len(timed) == 4
    assert list(pd.read_csv(tmp_path / "method_choice.csv")["cell"]) == timed


def test_the_modelled_ratio_is_fft_over_im2col_as_the_measured_one(monkeypatch):
    # (mutation pass 114: the modelled column was im2col / fft)
    monkeypatch.setattr(method_choice, "batch_times", lambda calls, batches, per_batch:
                        {"fft": [0.003, 0.003], "im2col": [0.001, 0.001]})
    case = method_choice.parse_case("cnn:4x2x32x32:8:float64:15")
    fft_ms, im2col_ms = method_choice.modelled(case)
    assert abs(fft_ms / im2col_ms - 1) > 0.05  # (a ratio told from its inverse)
    row = method_choice.measure(case, 2)
    assert row["modelled_fft_over_im2col"] == pytest.approx(fft_ms / im2col_ms)
    assert row["fft_over_im2col"] == pytest.approx(3.0)
