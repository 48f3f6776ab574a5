"""The batched conv's layer-type view: the conv strings (scipy_layers.conv_spec), the
suite's cases (bench_conv2d_nchw.Conv2dNCHWLayerTypes), their bounds in the report and
their table in summary.md (results synthesised beside the real fixture ones)."""
import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.bench_conv2d_nchw import LAYER_TYPES, Conv2dNCHWLayerTypes
from benchmarks.common import kernel_too_large
from fixtures.asv_variants import FIXTURE, copy_results, load, results_files, save
from scipy_layers import LAYERS
from scipy_layers.conv_spec import ConvCase, parse_conv_case, parse_options
from scipy_layers.reports import build_report, read_results
from scipy_layers.reports.limits import work
from test_reports_limits import write_calibration

BENCH = "bench_conv2d_nchw.Conv2dNCHWLayerTypes.time_forward_backward"


@pytest.mark.parametrize("spec", LAYER_TYPES)
def test_each_layer_type_reads_back_as_written_and_shapes_as_torch_does(spec):
    case = parse_conv_case(spec)
    assert str(case) == spec and parse_conv_case(str(case)) == case
    x = torch.empty(case.size, device="meta")
    w = torch.empty(case.weight_shape, device="meta")
    assert F.conv2d(x, w, **case.options).shape[-2:] == case.output_hw


@pytest.mark.parametrize("text,expected", [
    ("8x64x28x28 64x3x3 g64 s2 p1", ConvCase((8, 64, 28, 28), (64, 3, 3), 64, 2, 1, 1)),
    ("1x3x9x7 5x2x3 d3 p0", ConvCase((1, 3, 9, 7), (5, 2, 3), dilation=3)),
    ("  2x4x5x5   4x1x1  ", ConvCase((2, 4, 5, 5), (4, 1, 1))),
])
def test_options_default_and_any_order(text, expected):
    case = parse_conv_case(text)
    assert case == expected
    assert case.options == {k: v for k, v in (("groups", expected.groups),
                                              ("stride", expected.stride),
                                              ("padding", expected.padding),
                                              ("dilation", expected.dilation))
                            if v != {"padding": 0}.get(k, 1)}


@pytest.mark.parametrize("text,message", [
    ("", "expected 'NxCxHxW C_outxkHxkW'"),
    ("8x64x28x28", "expected 'NxCxHxW C_outxkHxkW'"),
    ("8x64x28 64x3x3", "the input must be 4 positive ints"),
    ("8x64x28x28 64x3", "the kernel must be 3 positive ints"),
    ("8x64x28x28x5 64x3x3", "the input must be 4 positive ints"),  # (one too many: pass 105)
    ("8x64x28x28 64x3x3x3", "the kernel must be 3 positive ints"),
    ("8x0x28x28 64x3x3", "the input must be 4 positive ints"),
    ("8x64x28x28 64x3x3 g2 g2", "'g2': groups is given twice"),
    ("８x64x28x28 64x3x3", "the input must be 4 positive ints"),   # ASCII digits only
    ("²x64x28x28 64x3x3", "the input must be 4 positive ints"),
    ("8x64x28x28 64x3x3 s٢", "'s٢' is not one of"),
    (None, "expected 'NxCxHxW C_outxkHxkW'"),
    (b"8x64x28x28 64x3x3", "expected 'NxCxHxW C_outxkHxkW'"),
    ("8x64x28x28 64x3x3 s0", "'s0' is not one of"),
    ("8x64x28x28 64x3x3 x2", "'x2' is not one of"),
    ("8x64x28x28 64x3x3 p-1", "'p-1' is not one of"),
    ("8x64x28x28 6x3x3 g4", "groups=4 must divide C (64) and C_out (6)"),
    ("1x1x4x4 1x3x3 d2", "exceeds the padded input"),
])
def test_bad_conv_strings_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match="conv case") as error:
        parse_conv_case(text)
    assert message in str(error.value)


@pytest.mark.parametrize("fields,message", [
    ("g2 s2", "options must be a list of fields"), (None, "options must be a list"),
    (iter(["g2"]), "options must be a list"), (["g" + "9" * 5000], "is not one of"),
    ([None], "None is not one of"),
    ([5], "5 is not one of"), (["s1", "s2"], "'s2': stride is given twice")])
def test_bad_options_say_what_is_wrong(fields, message):
    with pytest.raises(ValueError) as error:
        parse_options(fields)
    assert message in str(error.value)


@pytest.mark.parametrize("spec", LAYER_TYPES)
def test_the_suites_parts_of_each_case_are_the_ones_its_name_says(spec):
    size, kernel, options = LAYER_TYPES[spec]
    case = parse_conv_case(spec)
    assert (size, kernel, options) == ("x".join(map(str, case.size)),
                                       "x".join(map(str, case.kernel)), case.options)


def test_the_suite_imports_and_runs_without_conv_spec_or_grouped_inputs(monkeypatch):
    """Against a commit older than the layer-type view: its module imports, ungrouped cases
    run, grouped ones are skipped with a reason (asv shows n/a)."""
    import dataclasses
    import importlib

    import benchmarks.bench_conv2d_nchw as suite
    import benchmarks.common as common
    monkeypatch.setitem(sys.modules, "scipy_layers.conv_spec", None)  # (import fails)
    importlib.reload(suite)
    layer = LAYERS["conv2d_nchw"]

    def old_maker(size, kernel, dtype=torch.float64, device="cpu", seed=0, requires_grad=True):
        return layer.make_inputs(size, kernel, dtype, device, seed, requires_grad)

    monkeypatch.setitem(LAYERS, "conv2d_nchw", dataclasses.replace(layer, make_inputs=old_maker))
    common.cached_inputs.cache_clear()
    try:
        bench = suite.Conv2dNCHWLayerTypes()
        bench.setup("scipy", "8x16x32x32 32x3x3 s2 p1", "float32")
        assert bench.fn(*bench.inputs).shape == (8, 32, 16, 16)
        with pytest.raises(NotImplementedError, match="makes no grouped weights"):
            suite.Conv2dNCHWLayerTypes().setup("scipy", "8x128x14x14 128x3x3 g8 p1", "float32")
    finally:
        common.cached_inputs.cache_clear()
    monkeypatch.undo()
    importlib.reload(suite)


def test_the_suite_passes_padding_to_the_kernel_fit(monkeypatch):
    import benchmarks.bench_conv2d_nchw as suite
    monkeypatch.setitem(suite.LAYER_TYPES, "1x4x2x2 4x3x3 p1", ("1x4x2x2", "4x3x3", {"padding": 1}))
    bench = suite.Conv2dNCHWLayerTypes()
    bench.setup("native", "1x4x2x2 4x3x3 p1", "float32")  # (3x3 over 2x2 padded by 1)
    assert bench.fn(*bench.inputs).shape == (1, 4, 2, 2)


def test_padding_and_dilation_decide_whether_the_kernel_fits():
    assert kernel_too_large("4x3x3", "1x4x2x2") and not kernel_too_large(
        "4x3x3", "1x4x2x2", (("padding", 1),))
    assert not kernel_too_large("4x7x7", "1x4x5x5", (("padding", 3),))
    assert kernel_too_large("4x3x3", "1x4x5x5", (("padding", 1), ("dilation", 4)))
    assert not kernel_too_large("4x3x3", "1x4x5x5", (("padding", 1), ("dilation", 3)))


def test_the_registry_maker_takes_groups():
    x, w, b = LAYERS["conv2d_nchw"].make_inputs((2, 8, 5, 5), (4, 3, 3), groups=4, seed=2)
    assert (x.shape, w.shape, b.shape) == ((2, 8, 5, 5), (4, 2, 3, 3), (4,))
    # the same seed draws the same input whatever the groups
    assert torch.equal(x, LAYERS["conv2d_nchw"].make_inputs((2, 8, 5, 5), (4, 3, 3), seed=2)[0])
    assert LAYERS["conv2d_nchw"].make_inputs((2, 8, 5, 5), (4, 3, 3),
                                             groups=np.int64(2))[1].shape == (4, 4, 3, 3)
    for groups in (0, 3, 2.0, "2", True, -2):
        with pytest.raises(ValueError, match="groups must be a positive int dividing"):
            LAYERS["conv2d_nchw"].make_inputs((2, 8, 5, 5), (4, 3, 3), groups=groups)
    # dividing C_in (8) but not C_out (6)
    with pytest.raises(ValueError, match=r"groups must be a positive int dividing.*\(6\)"):
        LAYERS["conv2d_nchw"].make_inputs((2, 8, 5, 5), (6, 3, 3), groups=4)
    # another seed, other inputs
    other = LAYERS["conv2d_nchw"].make_inputs((2, 8, 5, 5), (4, 3, 3), groups=4, seed=3)
    assert not any(torch.equal(a, b) for a, b in zip(other, (x, w, b)))


@pytest.mark.parametrize("spec", LAYER_TYPES)
def test_the_suite_runs_each_layer_type_with_its_options(spec):
    case = parse_conv_case(spec)
    bench = Conv2dNCHWLayerTypes()
    bench.setup("native", spec, "float32")
    x, w, b = bench.inputs
    assert (x.shape, w.shape, b.shape) == (case.size, case.weight_shape, (case.kernel[0],))
    output = bench.fn(*bench.inputs)
    assert output.shape == (case.size[0], case.kernel[0], *case.output_hw)
    assert bench.grad_output.shape == output.shape
    expected = F.conv2d(x, w, b, **case.options)
    assert torch.equal(output, expected)
    with pytest.raises(NotImplementedError, match="outside the default grid"):
        Conv2dNCHWLayerTypes().setup("scipy", spec, "float64")


def test_a_layer_types_bound_by_hand():
    # 2x4x8x8 -> 4, 3x3 depthwise at stride 2, padding 1: Ho = Wo = (8 + 2 - 2 - 1) // 2 + 1
    forward = work("conv2d_nchw", "forward", "", "", "2x4x8x8 4x3x3 g4 s2 p1")
    outputs, weights, inputs = 2 * 4 * 4 * 4, 4 * 1 * 9, 2 * 4 * 8 * 8
    assert forward.elements == inputs + weights + outputs
    # one channel per output's sum; along each axis 4 outputs x 3 taps read indices
    # 2 i + j - 1, all in the input but output 0's tap 0 (padding): 11 pairs
    assert forward.direct_flops == 2 * (2 * 4) * 11 * 11
    assert forward.points == 9 * 9  # 8 + p: the zeros of one side stand for both's
    assert forward.transforms == 2 * 4 + 4 * 1 + 2 * 4
    # without options the conv string is the suite's size and kernel
    for measurement in ("forward", "backward", "forward+backward"):
        assert (work("conv2d_nchw", measurement, "", "", "8x3x32x32 16x7x7")
                == work("conv2d_nchw", measurement, "8x3x32x32", "16x7x7"))
    assert work("conv2d_nchw", "forward", "", "", "8x3x32x32 16x7x7 g2") is None  # 3 % 2
    assert work("conv2d_nchw", "forward", "", "", "not a conv") is None


PLAIN = "bench_conv2d_nchw.Conv2dNCHW.time_forward_backward"


def with_layer_types(results):
    """The fixture results (which predate the batched conv) plus one case of its plain
    view and a layer-type view of two convs, float32 only."""
    convs = ["8x32x56x56 32x3x3 g32 p1", "2x256x16x16 1x3x3"]
    added = {  # benchmark -> (param names, params, values in asv's row-major order)
        PLAIN: (["implementation", "size", "kernel", "dtype"],
                [["'native'", "'scipy'"], ["'8x3x32x32'"], ["'3x3'"], ["'float32'"]], [5e-3, 6e-3]),
        BENCH: (["implementation", "conv", "dtype"],
                [["'native'", "'scipy'"], [repr(c) for c in convs], ["'float32'"]],
                [4e-3, 2e-3, 3e-3, 1e-3]),
    }
    index = results / "benchmarks.json"
    benchmarks = json.loads(index.read_text())
    for name, (names, params, values) in added.items():
        for path in results_files(results):
            data = load(path)
            entry = [values, params, "1", data["date"], 1.0]
            data["results"][name] = entry + [None] * (len(data["result_columns"]) - len(entry))
            save(path, data)
        benchmarks[name] = {**benchmarks["bench_conv2d.Conv2dMethods.time_forward_backward"],
                            "name": name, "param_names": names, "params": params, "version": "1"}
    index.write_text(json.dumps(benchmarks))
    return results


def test_the_report_bounds_the_layer_types_and_summary_shows_them(tmp_path):
    results = with_layer_types(copy_results(tmp_path / "results"))
    write_calibration(results)
    timings = read_results(results)
    rows = timings[timings["benchmark"] == BENCH]
    assert len(rows) == 4 and set(rows["kind"]) == {"layertypes"}
    depthwise = rows[rows["conv"] == "8x32x56x56 32x3x3 g32 p1"]
    assert (depthwise["bound_time"] > 0).all() and depthwise["bound_time"].nunique() == 1
    assert (timings.loc[timings["benchmark"] != BENCH, "conv"].isna()).all()
    plain = timings[timings["benchmark"] == PLAIN]
    assert set(plain["kind"]) == {"timings"} and (plain["bound_time"] > 0).all()
    build_report(results, tmp_path / "out", with_plots=False)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Each kind of conv layer (layertypes view" in summary
    assert "| 8x32x56x56 32x3x3 g32 p1 | 4 ms | 3 ms | 0.75 |" in summary
    assert "| 2x256x16x16 1x3x3 | 2 ms | 1 ms | 0.50 |" in summary
    assert "| 8x3x32x32 | 5 ms | 6 ms | 1.20 |" in summary  # the plain view: no conv column
    assert "Fraction of the machine's limit, layertypes view" in summary
    assert FIXTURE.exists()  # (the original results stay as they were: a copy was changed)


def test_sizes_no_float_holds_get_a_blank_bound_not_a_crash(tmp_path):
    results = with_layer_types(copy_results(tmp_path / "results"))
    huge = "1x1x" + "9" * 400 + "x5 1x3x3"
    for path in results_files(results):
        data = load(path)
        data["results"][BENCH][1][1] = [repr(huge), repr("1x1x5x5 1x3x3 p" + "9" * 200)]
        save(path, data)
    write_calibration(results)
    rows = read_results(results).query("benchmark == @BENCH")
    assert len(rows) == 4 and rows["bound_time"].isna().all()
    # a plotted view's size too (plots and all, as the command writes them)
    for path in results_files(results):
        data = load(path)
        data["results"][PLAIN][1][1] = [repr("9" * 400 + "x16")]
        save(path, data)
    build_report(results, tmp_path / "out", with_plots=True)
    assert (tmp_path / "out" / "summary.md").exists()


def test_the_summary_names_no_implementation_as_not_run_when_one_view_ran(tmp_path):
    """Only the layer-type view ran at the commit (asv run -b LayerTypes): its
    implementations ran, whatever the plain view shows."""
    results = with_layer_types(copy_results(tmp_path / "results"))
    for path in results_files(results):
        data = load(path)
        data["results"][PLAIN][0] = [float("nan")] * 2  # (skipped in the plain view)
        save(path, data)
    build_report(results, tmp_path / "out", with_plots=False)
    section = (tmp_path / "out" / "summary.md").read_text().split("## conv2d_nchw")[1]
    assert "| 8x32x56x56 32x3x3 g32 p1 | 4 ms | 3 ms | 0.75 |" in section
    assert "Not run at this commit" not in section.split("## ")[0]


def test_not_run_names_only_implementations_skipped_everywhere(tmp_path):
    """scipy-fft ran in the methods view only; scipy-shift nowhere."""
    results = with_layer_types(copy_results(tmp_path / "results"))
    methods = "bench_conv2d.Conv2dMethods.time_forward_backward"
    for path in results_files(results):
        data = load(path)
        implementations = [eval(v) for v in data["results"][methods][1][0]]
        per = len(data["results"][methods][0]) // len(implementations)
        values = data["results"][methods][0]
        at = implementations.index("scipy-fft") * per
        values[at] = 1e-3                                  # one case of scipy-fft ran
        shift = implementations.index("scipy-shift") * per
        values[shift:shift + per] = [float("nan")] * per   # scipy-shift: all skipped
        save(path, data)
    build_report(results, tmp_path / "out", with_plots=False)
    section = (tmp_path / "out" / "summary.md").read_text().split("## conv2d\n")[1].split("## ")[0]
    line = next(x for x in section.splitlines() if x.startswith("Not run at this commit"))
    assert "scipy-shift" in line and "scipy-fft" not in line


def test_the_gate_and_the_compare_page_name_the_conv():
    import pandas as pd

    from scipy_layers.reports.gate import case_label
    sys.path.insert(0, str(FIXTURE.parents[2] / "tools"))
    import compare_page
    row = {"layer": "conv2d_nchw", "implementation": "scipy", "measurement": "forward+backward",
           "size": "", "kernel": "", "conv": "8x64x28x28 64x3x3 g64 s2 p1", "dtype": "float32",
           "threads": "1", "machine": "m"}
    assert case_label(pd.Series(row)) == ("conv2d_nchw scipy forward+backward "
                                          "8x64x28x28 64x3x3 g64 s2 p1 float32 (m)")
    assert compare_page.case_label(row) == "8x64x28x28 64x3x3 g64 s2 p1 float32, 1 thread"


def test_conv_spec_output_size_is_native_convs():
    """conv_spec.output_hw (ConvCase's check that the kernel fits, and the roofline
    bounds of reports/limits.py) gives F.conv2d's output size for any stride, padding and
    dilation (the suite passed with its stride rounding wrong: (n + 2p - d(k-1)) // s)."""
    import itertools

    from scipy_layers.conv_spec import output_hw
    for n, k, stride, padding, dilation in itertools.product(range(1, 9), range(1, 4), range(1, 4),
                                                             range(3), range(1, 3)):
        if n + 2 * padding < dilation * (k - 1) + 1:
            continue
        native = F.conv2d(torch.zeros(1, 1, n, n + 1), torch.zeros(1, 1, k, k), stride=stride,
                          padding=padding, dilation=dilation).shape[2:]
        assert output_hw((n, n + 1), (k, k), stride, padding, dilation) == tuple(native)
