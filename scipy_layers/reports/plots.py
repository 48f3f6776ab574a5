"""PNG plots of the latest commit on each machine: forward+backward time against size
(log-log, one line per implementation) and a heat map of time / native over size x
kernel. matplotlib's object API with the Agg canvas: no pyplot, no display, no global
state."""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .errors import ReportError
from .naming import DEFAULT_THREADS, NATIVE, PLAIN_KIND
from .runs import latest_runs, of_run, split_runs, varying
from .summary import SUMMARY_MEASUREMENT, size_key
from .tables import with_blank_params

PANEL_KEYS = ["kernel", "dtype", "device"]
_PLAIN_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Between a plot's layer and its machine (and env): a character no file_token holds, so
# layer "conv2d" on machine "nchw_m" and "conv2d_nchw" on "m" never share a name.
RUN_SEPARATOR = "@"


def file_token(name: str) -> str:
    """``name`` as part of a file name, distinct for distinct names: itself when it is
    plain lower-case text, else a slug plus a hash of the name ("box a" and "box/a" ->
    "box_a-<hash>", each its own; "Box" and "box" differ on a case-blind filesystem too)."""
    if _PLAIN_TOKEN.fullmatch(name):
        return name
    slug = re.sub(r"[^a-z0-9_.-]+", "_", name.lower()).strip("._-")[:40] or "x"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug}-{digest}"


def _figure(panels: int, width=4.2, height=3.4, right=0.98, left=0.9,
            wspace=0.45) -> tuple[Figure, list]:
    columns = min(panels, 4)
    rows = -(-panels // columns)
    figure = Figure(figsize=(width * columns, height * rows + 0.5))
    FigureCanvasAgg(figure)
    # Fixed margins: matplotlib's constrained/tight layouts took most of the report's time.
    axes = figure.subplots(rows, columns, squeeze=False, gridspec_kw=dict(
        left=left / (width * columns), right=right, bottom=0.6 / (height * rows + 0.5),
        top=1 - 0.75 / (height * rows + 0.5), wspace=wspace, hspace=0.5)).ravel()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, list(axes[:panels])


def _title(keys, values) -> str:
    return ", ".join(f"{k} {v}" for k, v in zip(keys, values) if v != "")


def _panel_order(item) -> tuple:
    """Panels by kernel size (3x3 before 15x15), then the other keys."""
    values = item[0]
    return tuple(size_key(v) if k in ("kernel", "size") else str(v)
                 for k, v in zip(PANEL_KEYS, values))


def time_vs_size(timings: pd.DataFrame, layer: str, where: str) -> Figure | None:
    """``timings``: one run's rows (one machine and env); ``where`` names it in the title."""
    data = timings[(timings["layer"] == layer) & (timings["kind"] == PLAIN_KIND)
                   & (timings["measurement"] == SUMMARY_MEASUREMENT)
                   & (timings["threads"] == DEFAULT_THREADS) & (timings["status"] == "ok")
                   & (timings["value"] > 0)]  # a log axis has no place for 0
    if data.empty:
        return None
    data = data.assign(elements=data["size"].map(size_key)).sort_values("elements")
    # (sizes past a float's range, from a hand-made file, have no place on the axis)
    data = data[data["elements"].map(lambda n: 0 < n < 2 ** 1000)]
    if data.empty:
        return None
    groups = sorted(data.groupby(PANEL_KEYS), key=_panel_order)
    figure, axes = _figure(len(groups))
    implementations = [NATIVE] + sorted(set(data["implementation"]) - {NATIVE})
    # One colour per implementation in every panel, whatever ran there.
    colours = {impl: f"C{i % 10}" for i, impl in enumerate(implementations)}
    for ax, (values, panel) in zip(axes, groups):
        for implementation in implementations:
            line = panel[panel["implementation"] == implementation]
            if line.empty:
                continue
            # Error bars span the quartiles asv recorded (absent for a single sample).
            spread = np.vstack([line["value"] - line["q25"], line["q75"] - line["value"]])
            ax.errorbar(line["elements"], line["value"], yerr=np.nan_to_num(spread.clip(0)),
                        marker="o", capsize=2, label=implementation, color=colours[implementation])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()  # log-axis minor ticks cost more than the rest of the report
        ax.set_xlabel("input elements")
        ax.set_ylabel(f"{SUMMARY_MEASUREMENT} time (s)")
        ax.set_title(_title(PANEL_KEYS, values), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(f"{layer}: {SUMMARY_MEASUREMENT} time vs size ({where}, one thread)")
    return figure


def speedup_heatmap(speedup: pd.DataFrame, layer: str, where: str) -> Figure | None:
    """``speedup``: one run's rows (one machine and env); ``where`` names it in the title."""
    data = speedup[(speedup["layer"] == layer) & (speedup["kind"] == PLAIN_KIND)
                   & (speedup["measurement"] == SUMMARY_MEASUREMENT)
                   & (speedup["threads"] == DEFAULT_THREADS)
                   & np.isfinite(speedup["ratio"]) & (speedup["ratio"] > 0)]  # log colour scale
    if data.empty:
        return None
    keys = ["implementation", "dtype", "device"]
    groups = list(data.groupby(keys, sort=True))
    # One colour scale for every panel, centred on 1 (as fast as native).
    reach = max(float(np.abs(np.log2(data["ratio"])).max()), 0.1)
    norm = LogNorm(vmin=2 ** -reach, vmax=2 ** reach)
    figure, axes = _figure(len(groups), width=3.6, height=3.4, right=0.86, left=1.3, wspace=0.7)
    image = None
    for ax, (values, panel) in zip(axes, groups):
        grid = panel.pivot_table(index="size", columns="kernel", values="ratio", aggfunc="first")
        grid = grid.sort_index(key=lambda i: i.map(size_key))
        grid = grid[sorted(grid.columns, key=size_key)]
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", norm=norm, aspect="auto")
        for (row, column), ratio in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(ratio):  # white on the darkest cells, to stay readable
                dark = abs(np.log2(ratio)) > 0.6 * reach
                ax.text(column, row, f"{ratio:.2g}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        ax.set_xticks(range(grid.shape[1]), [k or "-" for k in grid.columns])
        ax.set_yticks(range(grid.shape[0]), list(grid.index))
        ax.set_xlabel("kernel")
        ax.set_ylabel("size")
        ax.set_title(" ".join(v for v in values if v != "") + " / native", fontsize=9)
    bar = figure.colorbar(image, cax=figure.add_axes((0.9, 0.15, 0.015, 0.7)),
                          label="time / native (< 1: faster than native)")
    bar.ax.minorticks_off()
    steps = int(np.ceil(reach))
    ticks = [2.0 ** k for k in range(-steps, steps + 1) if abs(k) <= reach]
    bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
    figure.suptitle(f"{layer}: {SUMMARY_MEASUREMENT} time / native ({where})")
    return figure


def plot_name(prefix: str, layer: str, run: dict, keys: list[str]) -> str:
    """'time_vs_size_conv2d.png' for one machine and env (the committed reports' names);
    '@<machine>' and then '@<env>' appended for the run columns in ``keys``."""
    return (f"{prefix}_{file_token(layer)}"
            + "".join(RUN_SEPARATOR + file_token(run[key]) for key in keys) + ".png")


def plots(timings: pd.DataFrame, speedup: pd.DataFrame,
          latest: pd.DataFrame) -> dict[str, Figure]:
    """File name -> figure, per layer and run (machine and env at its latest commit,
    ``latest``: runs.latest_commits, as summary.md's):
    the machine is in the name only when there are several, the env likewise. Two plots
    that would share a name (a hash collision of file_token) stop the report rather
    than lose one."""
    with rc_context({"text.parse_math": False}):  # (names from results files are text:
        return _plots(timings, speedup, latest)   # "m$x$" is no formula, "m$\frac$" no error)


def _plots(timings: pd.DataFrame, speedup: pd.DataFrame,
           latest: pd.DataFrame) -> dict[str, Figure]:
    latest_t = with_blank_params(latest_runs(timings, latest))
    latest_s = latest_runs(speedup, latest)
    keys = varying(latest_t)
    figures = {}
    for run, run_t in split_runs(latest_t):
        run_s = of_run(latest_s, run)
        where = run["machine"] + (f", env {run['env']}" if "env" in keys else "")
        for layer in sorted(run_t["layer"].unique()):
            for prefix, make, data in (("time_vs_size", time_vs_size, run_t),
                                       ("speedup", speedup_heatmap, run_s)):
                figure = make(data, layer, where)
                if figure is None:
                    continue
                name = plot_name(prefix, layer, run, keys)
                if name in figures:
                    raise ReportError(f"two plots would be written as {name} (layer {layer!r}, "
                                      f"{where}); rename the machine, env or layer")
                figures[name] = figure
    return figures
