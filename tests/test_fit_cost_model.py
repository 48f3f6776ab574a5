"""tools/fit_cost_model.py: the cost model's constants fitted back from times the model
itself gives, the fit's objective (relative error) and held-out split, and its errors;
method_choice's draw, which must not follow the constants it fits."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import fit_cost_model  # noqa: E402
import method_choice  # noqa: E402
from scipy_layers import _nchw_rule as rule  # noqa: E402

NAMES = fit_cost_model.IM2COL + fit_cost_model.FFT
# constants unlike the rule's own, so that a fit that returned those would fail
TRUE = {"float32": dict(zip(NAMES, (1.3, 0.11, 40.0, 150e3, 2.0, 7.0, 4.0, 300e3))),
        "float64": dict(zip(NAMES, (3.1, 0.2, 20.0, 90e3, 2.4, 12.0, 9.0, 500e3)))}


def _rows(cells, scale=lambda index, case: 1.0):
    """method_choice.csv rows of the draw's first ``cells`` cells, times the model's own
    with TRUE's constants, times ``scale(index, case)``."""
    rows = []
    for index, case in enumerate(method_choice.drawn_cases(cells)):
        x_shape, w_shape, padding = method_choice._shapes(case)
        dtype = case[2]
        with method_choice.constants(dtype, TRUE[dtype]):
            fft_ns, _, im2col_ns = rule.modelled_times(x_shape, w_shape, padding,
                                                       getattr(torch, dtype))
        factor = scale(index // 2, case)
        rows.append({"cell": method_choice.label(case), "dtype": dtype,
                     "fft_ms": fft_ns / 1e6 * factor, "im2col_ms": im2col_ns / 1e6 * factor})
    return rows


def _csv(tmp_path, rows):
    path = tmp_path / "method_choice.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _fitted(text, dtype):
    """{constant: fitted value} from the tool's markdown for ``dtype``."""
    section = text.split(f"## {dtype}: ")[1].split("## ")[0]
    values = {}
    for name in NAMES:
        cell = section.split(f"| {name} | ")[1].split(" | ")[1].split(" |")[0]
        values[name] = cell if cell.startswith("kept") else float(cell)
    return section, values


def test_the_constants_come_back_from_the_models_own_times(tmp_path, capsys):
    before = {name: dict(getattr(rule, name)) for name in NAMES}
    assert fit_cost_model.main([_csv(tmp_path, _rows(64))]) == 0
    text = capsys.readouterr().out
    for dtype, values in TRUE.items():
        section, fitted = _fitted(text, dtype)
        assert section.startswith("fitted on 24 cells")  # (64 drawn, the first 40 held out)
        assert fitted == pytest.approx(values, rel=1e-3)
    # the rule's constants are as they were (the tool changes nothing)
    assert {name: dict(getattr(rule, name)) for name in NAMES} == before


def test_held_out_cells_times_do_not_enter_the_fit(tmp_path, capsys):
    # the first 40 cells' times a hundred times off: the fit must not see them
    rows = _rows(64, lambda index, case: 100.0 if index < 40 else 1.0)
    assert fit_cost_model.main([_csv(tmp_path, rows)]) == 0
    assert _fitted(capsys.readouterr().out, "float32")[1] == pytest.approx(TRUE["float32"],
                                                                          rel=1e-3)


def test_the_fit_minimises_relative_error():
    """With times off the model by up to +-30%, fit's constants satisfy the optimality
    conditions of sum((modelled / measured - 1)^2), not of absolute error (which the
    large cells would dominate)."""
    noise = np.random.default_rng(1).uniform(0.7, 1.3, 100)
    cells = [(case, row) for case, row in zip(method_choice.drawn_cases(100),
                                              _rows(100, lambda i, c: noise[i]))
             if case[2] == "float64"]
    now = {name: getattr(rule, name)["float64"] for name in NAMES}
    for names, which, column, chosen in [
            (fit_cost_model.FFT, 0, "fft_ms", cells),
            (fit_cost_model.IM2COL, 2, "im2col_ms",
             [cell for cell in cells if not fit_cost_model.runs_kn2row(cell[0])])]:
        a = np.array([fit_cost_model.features(case, names, which) for case, _ in chosen])
        t = np.array([row[column] * 1e6 for _, row in chosen])
        fitted, kept = fit_cost_model.fit(a, t, names, now)
        assert kept == []
        c = np.array([fitted[name] for name in names])
        scaled = a / t[:, None]
        gradient = scaled.T @ (scaled @ c - 1)  # of the relative objective, / 2
        scale = np.abs(scaled).sum(axis=0)
        for j in range(len(names)):  # KKT: zero where positive, >= 0 where at the bound
            if c[j] > 0:
                assert abs(gradient[j]) <= 1e-8 * scale[j], names[j]
            else:
                assert gradient[j] >= -1e-8 * scale[j], names[j]
        # the absolute fit is another answer, so this test tells the two apart
        absolute = np.linalg.lstsq(a, t, rcond=None)[0]
        assert not np.allclose(absolute, c, rtol=1e-2)


def test_kn2row_cells_times_do_not_move_im2col_constants(tmp_path, capsys):
    # where im2col runs kn2row its time follows kn2row's model: times a hundred times
    # off there must leave the four im2col constants as they are
    rows = _rows(64)
    kn2row = [fit_cost_model.runs_kn2row(fit_cost_model.case_of(row["cell"])) for row in rows]
    assert sum(kn2row[80:]) >= 2  # (the fitted part of the draw has some)
    for row, runs in zip(rows, kn2row):
        row["im2col_ms"] *= 100 if runs else 1
    assert fit_cost_model.main([_csv(tmp_path, rows)]) == 0
    fitted = _fitted(capsys.readouterr().out, "float32")[1]
    for name in fit_cost_model.IM2COL:
        assert fitted[name] == pytest.approx(TRUE["float32"][name], rel=1e-3), name


def test_a_constant_no_cell_exercises_keeps_its_value(tmp_path, capsys):
    # cells with fewer than FFT_MODEL_MATMUL_MIN_PRODUCTS a bin never price the stacked
    # matmul: that constant cannot be fitted and stays the rule's
    rows = [row for row, case in zip(_rows(120), method_choice.drawn_cases(120))
            if case[1][0] * case[1][1] * case[1][4] < rule.FFT_MODEL_MATMUL_MIN_PRODUCTS
            or case[1][0] < 2]
    assert fit_cost_model.main([_csv(tmp_path, rows)]) == 0
    _, fitted = _fitted(capsys.readouterr().out, "float32")
    assert fitted["FFT_NS_PER_MATMUL_CONTRACTION"] == "kept: no fitted cell exercises it"
    assert fitted["FFT_NS_PER_CONTRACTION"] == pytest.approx(7.0, rel=1e-3)


def test_one_dtype_alone_is_fitted(tmp_path, capsys):
    rows = [row for row in _rows(64) if row["dtype"] == "float64"]
    assert fit_cost_model.main([_csv(tmp_path, rows)]) == 0
    text = capsys.readouterr().out
    assert "## float32" not in text
    assert _fitted(text, "float64")[1] == pytest.approx(TRUE["float64"], rel=1e-3)


def test_constants_are_put_back_when_the_block_raises():
    before = rule.FFT_FIXED_NS["float32"]
    with pytest.raises(ZeroDivisionError):
        with method_choice.constants("float32", {"FFT_FIXED_NS": 1.0}):
            assert rule.FFT_FIXED_NS["float32"] == 1.0
            1 / 0
    assert rule.FFT_FIXED_NS["float32"] == before


def test_the_draw_does_not_follow_the_rules_constants():
    """A refit must not change the cells: the draw's limit on modelled time reads the
    constants it was made with (method_choice.DRAW_CONSTANTS)."""
    before = method_choice.drawn_cases(60)
    # every im2col, kn2row and fft constant of a dtype 30 times the rule's: with the
    # rule's constants in the limit, most cells would fall out
    names = NAMES + ("KN2ROW_NS_PER_MAC", "KN2ROW_NS_PER_ROW_ELEMENT", "KN2ROW_NS_PER_INPUT",
                     "KN2ROW_FIXED_NS")
    for dtype in ("float32", "float64"):
        with method_choice.constants(dtype, {name: 30 * getattr(rule, name)[dtype]
                                             for name in names}):
            assert not all(max(method_choice.modelled(case)) <= method_choice.MAX_MODELLED_MS
                           for case in before if case[2] == dtype)
            assert method_choice.drawn_cases(60) == before, dtype


def test_the_draw_is_the_one_every_report_was_timed_on():
    # (pinned: reports and fits of different sessions compare the same cells; a change
    # of the draw, or of the model's formulas it reads, must be a deliberate one)
    assert [method_choice.label(case) for case in method_choice.drawn_cases(4)] == [
        "cnn 2x3x16x16->4 k13 float32", "cnn 2x3x16x16->4 k13 float64",
        "cnn 4x1x24x24->64 k15 float32", "cnn 4x1x24x24->64 k15 float64",
        "cnn 4x3x128x128->2 k9 p4 float32", "cnn 4x3x128x128->2 k9 p4 float64",
        "cnn 8x3x32x32->16 k7 p3 float32", "cnn 8x3x32x32->16 k7 p3 float64"]
    assert method_choice.label(method_choice.drawn_cases(160)[-1]) == \
        "cnn 8x3x48x48->8 k5 p2 float64"


def test_regret_is_that_of_the_rules_own_pick():
    case = method_choice.parse_case("cnn:4x4x128x128:8:float32:9:p4")
    x_shape, w_shape, padding = method_choice._shapes(case)
    pick = rule.choose_nchw_method(x_shape, w_shape, (1, 1), (1, 1), 1, torch.float32,
                                   padding)
    other = {"fft": "im2col", "im2col": "fft"}[pick]
    now = {name: getattr(rule, name)["float32"] for name in NAMES}
    assert fit_cost_model.regret([(case, {pick: 3.0, other: 2.0})], "float32", now) == (1.5, 1)
    assert fit_cost_model.regret([(case, {pick: 2.0, other: 3.0})], "float32", now) == (1.0, 0)


def test_a_cell_label_gives_back_its_case():
    for case in method_choice.drawn_cases(12):
        assert fit_cost_model.case_of(method_choice.label(case)) == case
    for text in ("conv 16x16 k3 float32", "cnn 1x2x16x16->4 k5 float32 ",
                 "cnn 1x2x16x16->4 k5 s2 float32", None, 3.0):
        with pytest.raises(ValueError, match="not a method_choice cell label"):
            fit_cost_model.case_of(text)


GOOD = "cnn 2x3x16x16->4 k13 float32"


@pytest.mark.parametrize("content, message", [
    ("", "not a CSV file of method_choice's columns (EmptyDataError"),
    ("cell,dtype\nx,float32\n", "no column fft_ms, im2col_ms (not a method_choice.csv)"),
    (f"cell,dtype,fft_ms,im2col_ms\nconv 16x16 k3 float32,float32,1,1\n",
     "row 1: not a method_choice cell label: 'conv 16x16 k3 float32'"),
    (f"cell,dtype,fft_ms,im2col_ms\n{GOOD},float64,1,1\n",
     f"row 1: dtype 'float64', but the cell '{GOOD}' is float32"),
    (f"cell,dtype,fft_ms,im2col_ms\n{GOOD},float32,1,1\n{GOOD},float32,1,1\n",
     f"row 2: {GOOD} given twice"),
    ("cell,dtype,fft_ms,im2col_ms\ncnn 1x1x32x32->1 k9 float32,float32,1,1\n",
     "does not weigh fft against im2col there"),
    ("cell,dtype,fft_ms,im2col_ms\ncnn 8x16x32x32->32 k3 float32,float32,1,1\n",
     "does not weigh fft against im2col there"),
    *[(f"cell,dtype,fft_ms,im2col_ms\n{GOOD},float32,{bad},1\n",
       f"row 1: {GOOD}: fft_ms is {shown}; a time must be a number of ms from 1e-06 (1 ns) "
       f"to 86400000 (a day)")
      for bad, shown in [("nan", "nan"), ("inf", "inf"), ("0", "0"), ("-2.5", "-2.5"),
                         ("fast", "'fast'"), ("1e-320", "1e-320"), ("1e305", "1e+305"),
                         ("True", "True"), ("9" * 400, "9" * 400)]],
    (f"cell,dtype,fft_ms,im2col_ms\n{GOOD},float32,1,\n",
     "im2col_ms is nan; a time must be a number of ms"),
    (f"cell,dtype,fft_ms,im2col_ms\n{GOOD},float32,1,1,999\n",
     "not a CSV file of method_choice's columns (ParserWarning"),
    # the same cell spelt otherwise would dodge the held-out split and the duplicate check
    ("cell,dtype,fft_ms,im2col_ms\ncnn 2x3x16x16->4 k13 p0 float32,float32,1,1\n",
     f"is not written as method_choice writes that cell: '{GOOD}'"),
    ("cell,dtype,fft_ms,im2col_ms\ncnn 02x3x16x16->4 k13 float32,float32,1,1\n",
     f"is not written as method_choice writes that cell: '{GOOD}'"),
    # cells no run could have timed
    ("cell,dtype,fft_ms,im2col_ms\ncnn 2x3x4x4->4 k13 float32,float32,1,1\n",
     "no output (the kernel is larger than the padded image)"),
    ("cell,dtype,fft_ms,im2col_ms\ncnn 0x3x16x16->4 k13 float32,float32,1,1\n",
     "an empty dimension"),
    ("cell,dtype,fft_ms,im2col_ms\ncnn 99999999x3x16x16->4 k13 float32,float32,1,1\n",
     "an array past 268435456 elements"),
    (f"cell,dtype,fft_ms,im2col_ms\ncnn 2x3x{10 ** 30}x16->4 k13 float32,float32,1,1\n",
     "an array past 268435456 elements"),
])
def test_bad_files_are_named(tmp_path, capsys, content, message):
    path = tmp_path / "method_choice.csv"
    path.write_text(content)
    with pytest.raises(SystemExit) as stopped:
        fit_cost_model.main([str(path)])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["{missing}"], "no such file"),
    (["{folder}"], "a folder, not a method_choice.csv"),
    (["{csv}", "--held-out", "-1"], "--held-out must be 0 to 500, got -1"),
    (["{csv}", "--held-out", "100000"], "--held-out must be 0 to 500, got 100000"),
])
def test_bad_arguments_are_named(tmp_path, capsys, arguments, message):
    places = {"missing": tmp_path / "nope.csv", "folder": tmp_path,
              "csv": _csv(tmp_path, _rows(2))}
    with pytest.raises(SystemExit):
        fit_cost_model.main([argument.format(**places) for argument in arguments])
    assert message in capsys.readouterr().err


def test_too_few_cells_past_the_held_out_ones_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fit_cost_model.main([_csv(tmp_path, _rows(42))])
    assert "float32: 2 cells to fit on past the 40 held out" in capsys.readouterr().err


def test_regret_is_that_of_the_pick_the_given_constants_make():
    """(mutation pass 114) The fitted constants' regret is that of the rule's pick by
    them, not by the rule's constants of the day."""
    case = method_choice.parse_case("cnn:4x4x128x128:8:float32:9:p4")
    x_shape, w_shape, padding = method_choice._shapes(case)
    now = {name: getattr(rule, name)["float32"] for name in NAMES}

    def pick(values):
        with method_choice.constants("float32", values):
            return rule.choose_nchw_method(x_shape, w_shape, (1, 1), (1, 1), 1,
                                           torch.float32, padding)

    first = pick(now)
    other = {"fft": "im2col", "im2col": "fft"}[first]
    flipped = {**now, ("FFT_FIXED_NS" if first == "fft" else "IM2COL_FIXED_NS"): 1e12}
    assert pick(flipped) == other  # (the first pick made a second's worth dearer)
    times = {first: 1.0, other: 2.0}
    assert fit_cost_model.regret([(case, times)], "float32", now) == (1.0, 0)
    assert fit_cost_model.regret([(case, times)], "float32", flipped) == (2.0, 1)
    assert {name: getattr(rule, name)["float32"] for name in NAMES} == now


@pytest.mark.parametrize("held_out, fitted", [(20, 44), (0, 64)])
def test_held_out_takes_the_count_given(tmp_path, capsys, held_out, fitted):
    # (mutation pass 114: the default 40 were held out whatever --held-out said)
    assert fit_cost_model.main([_csv(tmp_path, _rows(64)), "--held-out", str(held_out)]) == 0
    text = capsys.readouterr().out
    for dtype in ("float32", "float64"):
        section, values = _fitted(text, dtype)
        assert section.startswith(f"fitted on {fitted} cells")
        assert f"{64 - fitted} held out" in section.splitlines()[0]
        assert (f"| held out ({held_out}) |" in section) == bool(held_out)
        assert f"| fitted ({fitted}) |" in section
        assert values == pytest.approx(TRUE[dtype], rel=1e-3)


def test_a_padded_cell_is_unrunnable_only_where_the_padded_image_is_too_small():
    # (mutation pass 114: the padding was left out, refusing 'same' cells whose kernel is
    # larger than the image itself)
    for cell, problem in [("cnn 2x3x8x8->4 k13 p6 float32", None),
                          ("cnn 2x3x8x8->4 k13 p2 float32", "no output"),
                          ("cnn 2x3x8x8->4 k13 float32", "no output"),
                          ("cnn 2x3x8x12->4 k11 p2 float32", None)]:
        why = fit_cost_model._unrunnable(fit_cost_model.case_of(cell))
        assert (why is None) if problem is None else problem in why, (cell, why)
