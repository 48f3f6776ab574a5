"""The machine's limit in the reports (scipy_layers/reports/limits.py): the formulas on
hand-computed cases, the bound and fraction columns on the real fixture results with a
synthetic calibration file, and a missing or malformed calibration file."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures.asv_variants import FIXTURE, MACHINE, copy_results, load, raw_value, results_files
from fixtures.compare_variants import COMMIT_A, environment_file
from fixtures.compare_variants import RESULTS as COMPARE_RESULTS
from scipy_layers.reports import ResultsError, build_report, read_results
from scipy_layers.reports.limits import (FORMULAS, Calibration, Work, parse_case, read_calibration,
                                         real_transform_flops, work)
from scipy_layers.reports.tables import speedup_table

ROOT = Path(__file__).resolve().parent.parent
RAW = load(results_files(FIXTURE)[0])
FB = "bench_conv2d.Conv2d.time_forward_backward"
FFT_FB = "bench_fft_abs.FFTAbs.time_forward_backward"
# Round figures, so the bounds below can be worked out by hand.
RATES = {"memory_bandwidth": 10e9, "gemm_float32": 80e9, "gemm_float64": 40e9,
         "fft_float32": 8e9, "fft_float64": 5e9}


def calibration_data(machine=MACHINE, rates=RATES):
    """A calibration file's content: the environment of a real record, round figures."""
    record = json.loads(environment_file(COMPARE_RESULTS, COMMIT_A).read_text())
    figures = {name: {"unit": "bytes/s" if name == "memory_bandwidth" else "flop/s",
                      "median": rate, "q25": 0.9 * rate, "q75": 1.1 * rate, "repeats": 7,
                      "work": 1e9, "seconds": [1e9 / rate] * 7, "timed": "synthetic"}
               for name, rate in rates.items()}
    return {"version": 1, "machine": machine, "recorded_at": "2026-12-01T10:00:00+00:00",
            "environment": {k: record[k] for k in ("cpu", "blas", "threads", "overrides", "versions")},
            "figures": figures}


def calibration_file(results: Path, machine=MACHINE) -> Path:
    return results.parent / "environments" / machine / "calibration.json"


def write_calibration(results: Path, data=None) -> Path:
    path = calibration_file(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration_data() if data is None else data))
    return path


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The fixture results with a calibration file beside them."""
    results = copy_results(tmp_path_factory.mktemp("calibrated") / "results")
    write_calibration(results)
    return results


@pytest.fixture(scope="module")
def table(calibrated):
    return read_results(calibrated)


# --- formulas, worked out by hand -------------------------------------------------------

def test_real_transform_flops_follow_fftws_convention():
    assert real_transform_flops(1024) == 2.5 * 1024 * 10
    assert real_transform_flops(1) == 0.0


def test_single_channel_conv_16x16_k3():
    # H = W = 16, kh = kw = 3: Ho = Wo = 14, 196 outputs x 9 taps; 16 x 9 = 144 bins.
    forward = work("conv2d", "forward", "16x16", "3x3")
    assert forward == Work(elements=256 + 9 + 196, direct_flops=2 * 196 * 9, transforms=3,
                           points=256, bin_flops=6 * 144)
    assert forward.fft_flops == 3 * 2.5 * 256 * 8 + 6 * 144
    backward = work("conv2d", "backward", "16x16", "3x3")
    # read grad_output, input, filter; write grad_input, grad_filter
    assert backward == Work(elements=196 + 256 + 9 + 256 + 9, direct_flops=4 * 196 * 9,
                            transforms=3, points=256, bin_flops=12 * 144)
    assert work("conv2d", "forward+backward", "16x16", "3x3") == forward + backward


def test_a_kernel_as_large_as_the_input_has_a_bound():
    """The suite runs a kernel as large as the input (benchmarks/common.kernel_too_large
    skips only a larger one): one output, 15 x 15 taps; the bound must not go blank."""
    forward = work("conv2d", "forward", "15x15", "15x15")
    assert forward is not None and forward.direct_flops == 2 * 1 * 225
    assert work("conv2d_nchw", "forward", "1x3x8x8", "4x8x8").elements == 192 + 4 * 3 * 64 + 4
    assert work("conv2d", "forward", "15x15", "16x15") is None  # larger: skipped, no bound


def test_batched_conv_takes_output_channels_from_the_suite():
    # 8x3x32x32 -> 16 channels, 3x3: Ho = Wo = 30; 32 x 17 = 544 bins per image.
    n, c_in, c_out, out = 8, 3, 16, 8 * 16 * 900
    macs = out * c_in * 9
    forward = work("conv2d_nchw", "forward", "8x3x32x32", "3x3")
    assert forward == Work(elements=8 * 3 * 1024 + 16 * 3 * 9 + out, direct_flops=2 * macs,
                           transforms=n * c_in + c_out * c_in + n * c_out, points=1024,
                           bin_flops=544 * n * c_out * (8 * c_in - 2))
    backward = work("conv2d_nchw", "backward", "8x3x32x32", "3x3")
    assert backward.elements == out + 2 * 8 * 3 * 1024 + 2 * 16 * 3 * 9
    assert backward.direct_flops == 4 * macs
    assert backward.bin_flops == 544 * (n * c_in * (8 * c_out - 2) + c_out * c_in * (8 * n - 2))
    # A kernel naming C_out (as the registry's maker takes it) needs no mapping.
    assert work("conv2d_nchw", "forward", "8x3x32x32", "16x3x3") == forward
    # One image, one channel: the single-channel conv's figures.
    for measurement in ("forward", "backward", "forward+backward"):
        assert (work("conv2d_nchw", measurement, "1x1x64x64", "1x5x5")
                == work("conv2d", measurement, "64x64", "5x5"))


def test_the_suites_output_channels_are_the_ones_the_report_uses():
    from benchmarks.bench_conv2d_nchw import OUTPUT_CHANNELS
    from scipy_layers.reports.limits import SUITE_OUTPUT_CHANNELS
    assert SUITE_OUTPUT_CHANNELS == OUTPUT_CHANNELS


def test_fft_layer_8x256x256():
    bins, pixels = 8 * 256 * 129, 8 * 256 * 256
    # the DFT as matrices: 256 x 256 by 256 x 258 real, then 256 x 256 by 256 x 129 complex
    matrices = 8 * (2 * 256 * 256 * 258 + 8 * 256 * 256 * 129)
    forward = work("fft_abs", "forward", "8x256x256", None)
    assert forward == Work(elements=pixels + bins, direct_flops=matrices + 4 * bins,
                           transforms=8, points=65536, bin_flops=4 * bins)
    backward = work("fft_abs", "backward", "8x256x256", None)
    assert backward == Work(elements=bins + 2 * pixels, direct_flops=matrices + 3 * bins,
                            transforms=8, points=65536, bin_flops=6 * bins)
    assert work("fft_abs", "forward", "256x256", None).transforms == 1


@pytest.mark.parametrize("batch", [(2 ** 32, 2 ** 32), (3037000500, 3037000500), (7, 2 ** 62)])
def test_fft_layer_batches_past_int64_are_counted_exactly(batch):
    """The images of a batch whose count passes int64, as a hand-made results file may
    hold: np.prod in int64 wrapped them to 0 or a negative count, so the bound came out 0
    or negative (helper 139)."""
    size = "x".join(map(str, (*batch, 2, 2)))
    images = batch[0] * batch[1]
    assert parse_case("fft_abs", size, None)[1].batch == images
    forward = work("fft_abs", "forward", size, None)
    assert forward.transforms == images and forward.elements == images * (4 + 2 * 2)
    assert calibration().bound(forward, "float64") >= images * 8 * 8 / 10e9 > 0


@pytest.mark.parametrize("layer, size, kernel", [
    ("conv2d", "16x16", "31x31"),             # kernel larger than the input
    ("conv2d", "8x16x16", "3x3"),             # not a single-channel size
    ("conv2d", "16x16", None),
    ("conv2d", "sixteen", "3x3"),
    ("conv2d_nchw", "2x3x32x32", "3x3"),      # not a suite size: C_out unknown
    ("fft_abs", "256x256", "3x3"),
    ("fft_abs", "256", None),
    ("unknown_layer", "16x16", "3x3"),
])
def test_cases_without_a_formula_get_none(layer, size, kernel):
    assert parse_case(layer, size, kernel) is None
    assert work(layer, "forward", size, kernel) is None


def test_every_layer_formula_covers_both_passes():
    assert {key: set(passes) for key, passes in FORMULAS.items()} == {
        "conv": {"forward", "backward"}, "fft_abs": {"forward", "backward"}}


def calibration(rates=RATES):
    return Calibration(Path("c.json"), MACHINE, "2026-12-01", {},
                       {k: {"median": v} for k, v in rates.items()})


def test_bound_takes_the_memory_term_or_the_cheaper_arithmetic():
    cal = calibration()
    # Memory bound: 1024x1024 k3 float32 forward+backward moves 5,235,318 floats (20.9
    # MB, 2.09 ms at 10 GB/s); the direct arithmetic takes 6 x 9,400,356 flops at 80
    # GFLOP/s (0.705 ms), the FFT 324 MFLOP at 8 GFLOP/s.
    item = work("conv2d", "forward+backward", "1024x1024", "3x3")
    outputs = 1022 * 1022
    assert item.elements == 3 * 1024 * 1024 + 2 * outputs + 3 * 9
    assert cal.bound(item, "float32") == pytest.approx(item.elements * 4 / 10e9)
    # Direct bound: 127x127 k15 float64 (15 x 15 taps): the direct method's time beats the FFT's.
    item = work("conv2d", "forward", "127x127", "15x15")
    direct, fft = item.direct_flops / 40e9, item.fft_flops / 5e9
    assert item.direct_flops == 2 * 113 * 113 * 225 and direct < fft
    assert cal.bound(item, "float64") == pytest.approx(direct)
    # FFT bound: with a slow GEMM, the same case goes to the spectral method.
    slow = calibration({**RATES, "gemm_float64": 1e8})
    assert slow.bound(item, "float64") == pytest.approx(fft)
    # The FFT layer's matrices lose at 1024 (O(N^3) against N^2 log N) ...
    item = work("fft_abs", "forward", "1024x1024", None)
    assert item.direct_flops / 40e9 > item.fft_flops / 5e9
    assert cal.bound(item, "float64") == pytest.approx(max(item.elements * 8 / 10e9,
                                                           item.fft_flops / 5e9))
    # ... and bound the tiny transforms, where a GEMM's rate makes up for its flops.
    item = work("fft_abs", "forward", "8x8", None)
    assert item.direct_flops / 40e9 < item.fft_flops / 5e9
    assert cal.bound(item, "float64") == pytest.approx(max(item.elements * 8 / 10e9,
                                                           item.direct_flops / 40e9))


# --- the columns on the real results ------------------------------------------------------

def test_timings_gain_the_bound_and_fraction_of_every_timed_cpu_case(table):
    timed = table["measurement"].isin(["forward", "backward", "forward+backward"])
    # (the one case the suite cannot run, a kernel larger than the input, has no bound)
    impossible = (table["size"] == "16x16") & (table["kernel"] == "31x31")
    on_cpu = table["device"].isna() | (table["device"] == "cpu")  # no device parameter: the CPU
    single = timed & (table["threads"] == "1") & on_cpu & ~impossible
    assert (single & table["device"].isna()).sum() > 0            # Conv2dMethods
    assert (timed & (table["device"] == "cuda")).any() and (timed & (table["threads"] == "all")).any()
    assert single.sum() > 0 and (table.loc[timed & impossible, "status"] == "skipped").all()
    assert table.loc[single, "bound_time"].gt(0).all()     # skipped cases too: it is the case's
    assert table.loc[~single, "bound_time"].isna().all()   # memory, errors, threads "all"
    ok = single & (table["status"] == "ok")
    assert table.loc[ok, "limit_fraction"].notna().all()
    assert table.loc[~ok, "limit_fraction"].isna().all()
    assert (table.loc[ok, "limit_fraction"] == table.loc[ok, "bound_time"] / table.loc[ok, "value"]).all()
    at = list(table.columns).index("repeat")
    assert list(table.columns[at + 1:at + 3]) == ["bound_time", "limit_fraction"]


def pick(frame, benchmark, **case):
    rows = frame[frame["benchmark"] == benchmark]
    for column, value in case.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, case
    return rows.iloc[0]


def test_a_memory_bound_case_by_hand(table):
    case = dict(implementation="native", size="1024x1024", kernel="3x3", dtype="float32", device="cpu")
    row = pick(table, FB, **case)
    elements = (1024 * 1024 + 9 + 1022 ** 2) + (1022 ** 2 + 2 * 1024 * 1024 + 2 * 9)
    assert row["bound_time"] == pytest.approx(elements * 4 / 10e9)
    assert row["limit_fraction"] == pytest.approx(row["bound_time"] / raw_value(RAW, FB, **case))


def test_speedup_carries_both_fractions(table):
    speedup = speedup_table(table)
    row = pick(speedup, FFT_FB, implementation="scipy", size="8x256x256", dtype="float64", device="cpu")
    timing = pick(table, FFT_FB, implementation="scipy", size="8x256x256", dtype="float64", device="cpu")
    assert row["bound_time"] == timing["bound_time"] > 0
    assert row["limit_fraction"] == pytest.approx(row["bound_time"] / row["time"])
    assert row["native_limit_fraction"] == pytest.approx(row["bound_time"] / row["native_time"])
    ran = speedup[speedup["ratio"].notna() & speedup["bound_time"].notna()]
    assert len(ran) > 0
    assert (ran["native_limit_fraction"] / ran["limit_fraction"]).to_numpy() == pytest.approx(
        ran["ratio"].to_numpy())


def test_summary_names_the_calibration_and_shows_the_fractions(calibrated, tmp_path):
    build_report(calibrated, tmp_path / "out", with_plots=False)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert (f"Limits of machine `{MACHINE}` from its calibration of 2026-12-01T10:00:00+00:00 "
            "(one thread; BLAS scipy: openblas 0.3.30 Haswell (1 thr); numpy: openblas "
            "0.3.31.188.0 Haswell (1 thr)): copy 10 GB/s, GEMM 80 (float32) / 40 (float64) "
            "GFLOP/s, FFT 8 / 5 GFLOP/s") in summary
    fft = summary[summary.index("## fft_abs"):]
    table_start = fft.index("| size | dtype | bound | native | scipy | numpy-tutorial |")
    timings = read_results(calibrated)
    row = pick(timings, FFT_FB, implementation="native", size="1024x1024", dtype="float64", device="cpu")
    line = next(x for x in fft[table_start:].splitlines() if x.startswith("| 1024x1024 | float64 |"))
    assert line.split(" | ")[3] == f"{row['limit_fraction']:.2g}"
    timings_csv = pd.read_csv(tmp_path / "out" / "timings.csv")
    assert timings_csv["limit_fraction"].notna().sum() == timings["limit_fraction"].notna().sum() > 0


def test_without_a_calibration_the_columns_are_blank_and_summary_says_so(tmp_path):
    report = build_report(FIXTURE, tmp_path / "out", with_plots=False)
    assert report.timings["bound_time"].isna().all() and report.speedup["limit_fraction"].isna().all()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert f"No calibration for machine `{MACHINE}`" in summary
    assert "Fraction of the machine's limit" not in summary


def test_a_calibration_of_a_machine_without_results_is_not_read(tmp_path):
    results = copy_results(tmp_path / "results")
    path = calibration_file(results, "another-machine")
    path.parent.mkdir(parents=True)
    path.write_text("{")
    assert read_results(results)["bound_time"].isna().all()


def spoil(change):
    def apply(data):
        change(data)
        return data
    return apply


MALFORMED = {
    "not JSON": (None, "is not valid JSON"),
    "version 2": (spoil(lambda d: d.__setitem__("version", 2)), "calibration version 2"),
    # (hostile pass 145: true == 1 and 1.0 == 1, so both read as version 1)
    "version true": (spoil(lambda d: d.__setitem__("version", True)), "calibration version True"),
    "version 1.0": (spoil(lambda d: d.__setitem__("version", 1.0)), "calibration version 1.0"),
    "another machine's": (spoil(lambda d: d.__setitem__("machine", "other")), "'machine'"),
    "recorded_at not a time": (spoil(lambda d: d.__setitem__("recorded_at", "yesterday")), "'recorded_at'"),
    "figure missing": (spoil(lambda d: d["figures"].pop("fft_float32")), "'figures.fft_float32'"),
    "median negative": (spoil(lambda d: d["figures"]["gemm_float64"].__setitem__("median", -1.0)),
                        "'figures.gemm_float64.median' is not a positive number"),
    "median a string": (spoil(lambda d: d["figures"]["memory_bandwidth"].__setitem__("median", "9e9")),
                        "'figures.memory_bandwidth.median'"),
    "median a bool": (spoil(lambda d: d["figures"]["memory_bandwidth"].__setitem__("median", True)),
                      "'figures.memory_bandwidth.median'"),
    "wrong unit": (spoil(lambda d: d["figures"]["gemm_float32"].__setitem__("unit", "GFLOP/s")),
                   "'figures.gemm_float32.unit' is not 'flop/s'"),
    "no repeats": (spoil(lambda d: d["figures"]["fft_float64"].__setitem__("repeats", 0)),
                   "'figures.fft_float64.repeats'"),
    "environment blas not a list": (spoil(lambda d: d["environment"].__setitem__("blas", {})),
                                    "'environment.blas'"),
    "environment cpus a string": (spoil(lambda d: d["environment"]["cpu"].__setitem__("num_cpu", "2")),
                                  "'environment.cpu.num_cpu'"),
    "a list": (lambda d: [d], "is not a JSON object"),
    # (hostile pass 145) an integer no float holds was a traceback (OverflowError) ...
    "median an integer past float": (
        spoil(lambda d: d["figures"]["gemm_float32"].__setitem__("median", 10 ** 400)),
        "'figures.gemm_float32.median' is not a positive number"),
    # ... and rates no core has gave bounds of inf (a fraction of inf) or of ~0
    "bandwidth subnormal": (
        spoil(lambda d: d["figures"]["memory_bandwidth"].__setitem__("median", 5e-324)),
        "'figures.memory_bandwidth.median' is not a one-core rate (1e+06 to 1e+14 bytes/s)"),
    "FFT rate astronomical": (
        spoil(lambda d: d["figures"]["fft_float64"].__setitem__("q75", 1e300)),
        "'figures.fft_float64.q75' is not a one-core rate (1e+06 to 1e+14 flop/s)"),
    "quartiles around no median": (
        spoil(lambda d: d["figures"]["gemm_float64"].__setitem__("q25", 2 * RATES["gemm_float64"])),
        "'figures.gemm_float64': q25, median, q75 are not in order"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_calibration_is_one_error_naming_the_file_and_field(tmp_path, case):
    change, words = MALFORMED[case]
    results = copy_results(tmp_path / "results")
    path = write_calibration(results)
    if change is None:
        path.write_text("{")
    else:
        path.write_text(json.dumps(change(calibration_data())))
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert error.value.path == path and words in str(error.value) and "\n" not in str(error.value)


def test_the_command_reports_a_malformed_calibration_in_one_line(tmp_path):
    results = copy_results(tmp_path / "results")
    path = write_calibration(results, spoil(lambda d: d["figures"].pop("gemm_float32"))(calibration_data()))
    run = subprocess.run([sys.executable, "-m", "scipy_layers.reports", str(results),
                          str(tmp_path / "out"), "--no-plots"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and str(path) in run.stderr and "'figures.gemm_float32'" in run.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_read_calibration_keeps_the_figures_and_compacts_the_environment(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration_data()))
    cal = read_calibration(path, MACHINE)
    assert cal.rate("fft_float64") == 5e9 and cal.recorded_at == "2026-12-01T10:00:00+00:00"
    assert cal.environment["thread_limits"] == ("torch=1 MKL_NUM_THREADS=1 OMP_NUM_THREADS=1 "
                                                "OPENBLAS_NUM_THREADS=1")


def dft_matrix(n, rows=None):
    k = np.arange(n if rows is None else rows)[:, None]
    return np.exp(-2j * np.pi * k * np.arange(n)[None, :] / n)


@pytest.mark.parametrize("h, w", [(64, 16), (16, 64), (24, 24), (9, 4)])
def test_the_fft_layers_matrices_may_take_either_axis_first(h, w):
    """|rfft2| by DFT matrices, W first (a real product keeping W//2+1 columns, then a
    complex one along H) or H first (H//2+1 rows, then along W, the other rows by
    Hermitian symmetry): both give rfft2, and the direct term is the cheaper (hostile
    pass 145: it took W first always, 1.6x the flops of H first at 64x16)."""
    x = np.random.default_rng(0).standard_normal((h, w))
    half_w, half_h = w // 2 + 1, h // 2 + 1
    real_flops = lambda m, k, n: 2 * m * k * n            # an m x k by k x n real product
    # W first: x (h x w) by [cos | sin] (w x 2 half_w), then h x h complex on half_w columns
    w_first = (dft_matrix(h) @ (x @ dft_matrix(w, half_w).T))
    w_first_flops = real_flops(h, w, 2 * half_w) + 4 * real_flops(h, h, half_w)
    # H first: [cos; sin] (2 half_h x h) by x, then half_h x w complex by w x w
    top = (dft_matrix(h, half_h) @ x) @ dft_matrix(w).T              # rows 0 .. h//2
    rows = np.arange(h)
    mirrored = np.conj(top[(-rows[half_h:]) % h][:, (-np.arange(w)) % w])
    h_first = np.concatenate([top, mirrored])[:, :half_w]
    h_first_flops = real_flops(2 * half_h, h, w) + 4 * real_flops(half_h, w, w)
    expected = np.fft.rfft2(x)
    assert np.allclose(w_first, expected) and np.allclose(h_first, expected)
    bins = h * half_w
    forward = work("fft_abs", "forward", f"3x{h}x{w}", None)
    assert forward.direct_flops == 3 * min(w_first_flops, h_first_flops) + 4 * 3 * bins
    backward = work("fft_abs", "backward", f"3x{h}x{w}", None)
    assert backward.direct_flops == 3 * min(w_first_flops, h_first_flops) + 3 * 3 * bins


FIXTURE_COMMIT = RAW["commit_hash"]


def write_record(results: Path, change=lambda record: None) -> None:
    """An environment record of the fixture's commit: the calibration's environment
    (a real record's), changed by ``change``."""
    record = {**calibration_data()["environment"], "version": 1, "machine": MACHINE,
              "commit": FIXTURE_COMMIT, "recorded_at": "2026-11-27T08:00:00+00:00"}
    change(record)
    path = results.parent / "environments" / MACHINE / f"{FIXTURE_COMMIT}.json"
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("field, change, shown", [
    ("overrides", lambda r: r["overrides"].__setitem__("OPENBLAS_CORETYPE", "SkylakeX"),
     "overrides: (none) -> OPENBLAS_CORETYPE=SkylakeX"),
    ("blas", lambda r: r["blas"][0].__setitem__("architecture", "SkylakeX"), "blas: scipy: openblas"),
    ("cpu", lambda r: r["cpu"].__setitem__("model", "17"), "cpu: AMD EPYC fam 25 model 1 "),
])
def test_runs_recorded_in_another_environment_than_the_calibrations_get_no_bound(
        tmp_path, field, change, shown):
    """A calibration of another BLAS kernel, library or CPU than the run's (make results
    drops the kernel overrides make bench keeps, under one machine name) gave the run
    bounds from rates it did not have, silently (hostile pass 145): blank, and said."""
    results = copy_results(tmp_path / "results")
    write_calibration(results)
    write_record(results)                                    # the same environment: bounds
    assert read_results(results)["bound_time"].notna().sum() > 0
    write_record(results, change)
    report = build_report(results, tmp_path / "out", with_plots=False)
    assert report.timings["bound_time"].isna().all() and report.speedup["limit_fraction"].isna().all()
    summary = (tmp_path / "out" / "summary.md").read_text()
    line = next(x for x in summary.splitlines() if x.startswith("Limits of machine"))
    assert (f"Commit `{FIXTURE_COMMIT[:8]}` ran in another environment than the calibration "
            f"({shown}") in line and line.endswith("its limit columns are blank.")
    assert "Fraction of the machine's limit" not in summary
