"""tools/fit_cost_model.py: the cost model's constants fitted back from times the model
itself gives, the held-out split, and its errors."""
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import fit_cost_model  # noqa: E402
import method_choice  # noqa: E402
from scipy_layers import _nchw_rule as rule  # noqa: E402

# constants unlike the rule's own, so that a fit that returned those would fail
TRUE = {"float32": dict(zip(fit_cost_model.IM2COL + fit_cost_model.FFT,
                            (1.3, 0.11, 40.0, 150e3, 2.0, 7.0, 4.0, 300e3))),
        "float64": dict(zip(fit_cost_model.IM2COL + fit_cost_model.FFT,
                            (3.1, 0.2, 20.0, 90e3, 2.4, 12.0, 9.0, 500e3)))}


def _timed_by_model(tmp_path, cells):
    """A method_choice.csv whose times are the model's own with TRUE's constants."""
    rows = []
    for case in method_choice.drawn_cases(cells):
        x_shape, w_shape, padding = method_choice._shapes(case)
        dtype = case[2]
        with fit_cost_model.constants(rule, dtype, TRUE[dtype]):
            fft_ns, _, im2col_ns = rule.modelled_times(x_shape, w_shape, padding,
                                                       getattr(torch, dtype))
        rows.append({"cell": method_choice.label(case), "dtype": dtype,
                     "fft_ms": fft_ns / 1e6, "im2col_ms": im2col_ns / 1e6})
    path = tmp_path / "method_choice.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_constants_come_back_from_the_models_own_times(tmp_path, capsys):
    before = {name: dict(getattr(rule, name)) for name in TRUE["float32"]}
    assert fit_cost_model.main([str(_timed_by_model(tmp_path, 64))]) == 0
    text = capsys.readouterr().out
    for dtype, values in TRUE.items():
        section = text.split(f"## {dtype}: ")[1].split("## ")[0]
        assert section.startswith("fitted on 24 cells")  # (64 drawn, the first 40 held out)
        for name, value in values.items():
            fitted = float(section.split(f"| {name} | ")[1].split(" | ")[1].split(" |")[0])
            assert fitted == pytest.approx(value, rel=1e-3), (dtype, name)
    # the rule's constants are as they were (the tool changes nothing)
    assert {name: dict(getattr(rule, name)) for name in TRUE["float32"]} == before


def test_kn2row_cells_times_do_not_move_im2col_constants(tmp_path, capsys):
    # where im2col runs kn2row its time follows kn2row's model: times a hundred times
    # off there must leave the four im2col constants as they are
    path = _timed_by_model(tmp_path, 64)
    table = pd.read_csv(path)
    kn2row = [fit_cost_model.runs_kn2row(rule, fit_cost_model.case_of(cell))
              for cell in table.cell]
    assert sum(kn2row[80:]) >= 2  # (the fitted part of the draw has some)
    table.loc[kn2row, "im2col_ms"] *= 100
    table.to_csv(path, index=False)
    assert fit_cost_model.main([str(path)]) == 0
    section = capsys.readouterr().out.split("## float32: ")[1]
    for name in fit_cost_model.IM2COL:
        fitted = float(section.split(f"| {name} | ")[1].split(" | ")[1].split(" |")[0])
        assert fitted == pytest.approx(TRUE["float32"][name], rel=1e-3), name


def test_regret_is_that_of_the_rules_own_pick():
    case = method_choice.parse_case("cnn:4x4x128x128:8:float32:9:p4")
    x_shape, w_shape, padding = method_choice._shapes(case)
    pick = rule.choose_nchw_method(x_shape, w_shape, (1, 1), (1, 1), 1, torch.float32,
                                   padding)
    other = {"fft": "im2col", "im2col": "fft"}[pick]
    times = {pick: 3.0, other: 2.0}
    now = {name: getattr(rule, name)["float32"] for name in TRUE["float32"]}
    assert fit_cost_model.regret(rule, [(case, times)], "float32", now) == (1.5, 1)


def test_a_cell_label_gives_back_its_case():
    for case in method_choice.drawn_cases(12):
        assert fit_cost_model.case_of(method_choice.label(case)) == case
    with pytest.raises(ValueError, match="not a method_choice cell label"):
        fit_cost_model.case_of("conv 16x16 k3 float32")


@pytest.mark.parametrize("columns, message", [
    ({"cell": ["x"], "dtype": ["float32"]}, "no column fft_ms, im2col_ms"),
])
def test_a_file_that_is_not_method_choice_output_is_named(tmp_path, capsys, columns, message):
    path = tmp_path / "other.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    with pytest.raises(SystemExit):
        fit_cost_model.main([str(path)])
    assert message in capsys.readouterr().err


def test_too_few_cells_past_the_held_out_ones_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fit_cost_model.main([str(_timed_by_model(tmp_path, 42))])
    assert "time more cells (--cells)" in capsys.readouterr().err
