"""gradients.csv: per layer, implementation, shape, dtype, layout and values, the max abs
and rel error of the output and each gradient against the native twin, and a verdict
against ``scipy_layers.agreement.TOLERANCE`` (the same rule the tests apply: max_rel <=
tol).

A broken gradient is never a pass: asv writes NaN both for a skipped case and for a NaN
the benchmark returned, so in a case where some figures were measured, an expected figure
that is NaN or absent makes the verdict ``error``; a non-finite pattern that differs from
native's (``track_nonfinite_mismatches`` > 0, or +inf from older suites) counts as an
infinite error, so ``fail``. The one NaN that is not an error: the suite's errors are
over the entries finite on both sides and NaN where there is none, so a quantity whose
errors are NaN beside a measured mismatch count compared nothing: ``fail`` with
mismatches (e.g. all NaN where native is finite), else ``not_compared`` (native is
non-finite there too), and a case that compared nothing at all is ``n/a``, never a
pass."""
from __future__ import annotations

import functools
import types

import numpy as np
import pandas as pd

from .naming import ERROR_MEASUREMENTS, REQUIRED_ERROR_STATISTICS, VERDICT_STATISTIC
from .reader import method_of
from .tables import RUN_KEYS, param_columns, with_blank_params

QUANTITY_ORDER = ["output", "grad_input", "grad_filter", "grad_bias"]


def layer_spec(layer: str):
    """The registry's entry for ``layer``, None for a layer it does not know. The
    registry (and agreement's tolerances) load on first use: they import torch and
    scipy.signal, ~4 s that a report run stopping at a bad results directory should
    not pay."""
    from scipy_layers import LAYERS
    return LAYERS.get(layer)


@functools.lru_cache(maxsize=None)
def tolerance_by_name() -> types.MappingProxyType:
    """"float64" -> 1e-10: agreement.TOLERANCE by the benchmark's dtype parameter (torch's
    dtype name)."""
    from scipy_layers.agreement import TOLERANCE
    return types.MappingProxyType(
        {str(dtype).removeprefix("torch."): tol for dtype, tol in TOLERANCE.items()})


def gradient_is_exact(layer: str, implementation: str) -> bool:
    """The registry's word; an implementation it does not know is held to the tolerance."""
    spec = layer_spec(layer)
    impl = spec.implementations.get(implementation) if spec else None
    return True if impl is None else impl.gradient_is_exact


def expected_quantities(layer: str) -> list[str]:
    """The output and the gradient of every input the registry gives the layer (what
    ``agreement.compare_with_native`` measures); none for a layer it does not know."""
    spec = layer_spec(layer)
    return ["output", *(f"grad_{name}" for name in spec.input_names)] if spec else []


def _known_nan(errors: pd.DataFrame, case: list[str]) -> pd.Series:
    """Per row: a max_abs/max_rel figure that is NaN while its quantity's mismatch count
    was measured (``ok``): the suite's mark for "no entry finite on both sides", not a
    figure gone missing (the count says whether the two sides agree on it)."""
    counted = errors[(errors["statistic"] == "nonfinite_mismatches") & (errors["status"] == "ok")]
    nan = (errors["statistic"].isin(REQUIRED_ERROR_STATISTICS)
           & (errors["status"] == "skipped"))
    if counted.empty or not nan.any():
        return pd.Series(False, index=errors.index)
    keys = pd.MultiIndex.from_frame(counted[[*case, "quantity"]])
    return nan & pd.MultiIndex.from_frame(errors[[*case, "quantity"]]).isin(keys)


def _not_compared(errors: pd.DataFrame, case: list[str], known: pd.Series) -> pd.Series:
    """Per case, the quantities (``+``-joined) with no entry finite on both sides and no
    mismatch: native is non-finite wherever the implementation is, nothing to compare."""
    agreeing = errors[(errors["statistic"] == "nonfinite_mismatches")
                      & (errors["status"] == "ok") & (errors["value"] == 0)]
    rows = errors[known & (errors["statistic"] == VERDICT_STATISTIC)]
    if rows.empty or agreeing.empty:
        return pd.Series(dtype=object)
    keys = pd.MultiIndex.from_frame(agreeing[[*case, "quantity"]])
    rows = rows[pd.MultiIndex.from_frame(rows[[*case, "quantity"]]).isin(keys)]
    if rows.empty:
        return pd.Series(dtype=object)
    return rows.groupby(case, sort=False)["quantity"].agg(
        lambda q: "+".join(sorted(set(q), key=_quantity_order)))


def _quantity_order(quantity: str) -> tuple:
    return (QUANTITY_ORDER.index(quantity) if quantity in QUANTITY_ORDER else 99, quantity)


def _unmeasured(errors: pd.DataFrame, case: list[str], run: list[str],
                known: pd.Series | None = None) -> pd.Series:
    """Per case, the figures (``<quantity>_<statistic>``) that should be there and are
    not: NaN (asv status skipped) or absent. Expected: the registry's quantities and any
    quantity measured in another case of the same layer and run, each with the max rel
    error (the verdict's figure) and the max abs error where the run measured it for
    the layer (make compare runs the max rel tracks alone: every verdict read "error").
    Blank for cases where nothing was measured (those are skipped, outdated or failed as
    a whole). ``known``: NaN figures that compared nothing (``_known_nan``), not missing."""
    measured = errors[(errors["status"] != "skipped")
                      | (False if known is None else known)]
    by_layer_run = measured.groupby(["layer", *run], sort=False)
    quantities_of, statistics_of = (by_layer_run[c].agg(set).to_dict()
                                    for c in ("quantity", "statistic"))
    present = measured.groupby(case, sort=False)["column"].agg(set)
    out = {}
    for key, cells in present.items():
        row = dict(zip(case, key))
        layer_run = (row["layer"], *(row[c] for c in run))
        wanted = set(expected_quantities(row["layer"])) | quantities_of.get(layer_run, set())
        statistics = {VERDICT_STATISTIC} | (statistics_of.get(layer_run, set())
                                            & set(REQUIRED_ERROR_STATISTICS))
        missing = {f"{q}_{s}" for q in wanted for s in statistics} - cells
        out[key] = "+".join(sorted(missing, key=_cell_order))
    return pd.Series(out, dtype=object)


def _cell_order(cell: str) -> tuple:
    quantity, _, statistic = cell.rpartition("_max_")
    return (QUANTITY_ORDER.index(quantity) if quantity in QUANTITY_ORDER else 99, quantity,
            statistic)


def gradients_table(timings: pd.DataFrame) -> pd.DataFrame:
    errors = with_blank_params(timings[timings["kind"] == "gradients"])
    case = ["layer", *[c for c in param_columns(errors) if c not in ("quantity", "threads")],
            *RUN_KEYS]
    method = method_of(errors)
    errors = errors.assign(statistic=method.map(ERROR_MEASUREMENTS)).dropna(subset=["statistic"])
    if errors.empty:  # no gradient benchmark ran (asv run -b time_, a GPU session's slices):
        # the string and comparison steps below fail on all-NA columns under pyarrow strings
        return pd.DataFrame(columns=_table_columns(case, []))
    errors = errors.assign(column=errors["quantity"] + "_" + errors["statistic"])
    wide = (errors
            .pivot_table(index=case, columns="column", values="value", aggfunc="first",
                         dropna=False, sort=False))
    quantities = sorted(errors["quantity"].unique(),
                        key=lambda q: (QUANTITY_ORDER.index(q) if q in QUANTITY_ORDER else 99, q))
    statistics = [*REQUIRED_ERROR_STATISTICS, *(
        ["nonfinite_mismatches"] if (errors["statistic"] == "nonfinite_mismatches").any() else [])]
    value_columns = [f"{q}_{s}" for q in quantities for s in statistics]
    wide = wide.reindex(columns=value_columns)
    # pivot_table drops all-NaN groups however asked: the statuses below keep every case.
    statuses = errors.groupby(case, sort=False)["status"].agg(
        lambda s: "+".join(sorted(set(s))))
    known = _known_nan(errors, case)
    unmeasured = _unmeasured(errors, case, RUN_KEYS, known)
    not_compared = _not_compared(errors, case, known)
    table = statuses.to_frame().join(wide, how="left")
    table["unmeasured"] = unmeasured.reindex(table.index).fillna("") if len(unmeasured) else ""
    table["not_compared"] = (not_compared.reindex(table.index).fillna("")
                             if len(not_compared) else "")
    table = table.reset_index()
    rel_ok = _rel_errors_with_mismatches_as_inf(errors, case, known)
    worst = (rel_ok.sort_values("value", ascending=False, kind="stable")
             .drop_duplicates(case)[case + ["value", "quantity"]]
             .rename(columns={"value": "worst_rel_error", "quantity": "worst_quantity"}))
    table = table.merge(worst, on=case, how="left")
    table["tolerance"] = table["dtype"].map(tolerance_by_name())
    table["gradient_is_exact"] = [gradient_is_exact(layer, impl) for layer, impl
                                  in zip(table["layer"], table["implementation"])]
    held = (errors[errors["statistic"] == VERDICT_STATISTIC]
            .groupby(case, sort=False)["quantity"].agg(frozenset))
    table["_rel_quantities"] = [held.get(key, frozenset())  # (dropped by _table_columns)
                                for key in table[case].itertuples(index=False, name=None)]
    table["verdict"] = _verdicts(table)
    return table[_table_columns(case, value_columns)]


def _table_columns(case: list[str], value_columns: list[str]) -> list[str]:
    return ["layer", *[c for c in case if c not in ("layer", *RUN_KEYS)], *value_columns,
            "worst_rel_error", "worst_quantity", "unmeasured", "not_compared", "tolerance",
            "gradient_is_exact", "verdict", "status", *RUN_KEYS]


def _rel_errors_with_mismatches_as_inf(errors: pd.DataFrame, case: list[str],
                                       known: pd.Series) -> pd.DataFrame:
    """The ok max_rel rows, +inf where the same quantity has non-finite entries unlike
    native's (the suite records errors over the finite entries and counts those apart),
    including a NaN one (``known``: nothing finite on both sides, e.g. all NaN where
    native is finite) and an outdated or skipped one (the current count alone shows an
    infinite error); a NaN one without mismatches compared nothing and is left out."""
    ok = errors[errors["status"] == "ok"]
    usable = (errors["status"] == "ok") | known
    rel = errors[errors["statistic"] == "max_rel"].assign(_usable=usable)
    mismatched = ok[(ok["statistic"] == "nonfinite_mismatches") & (ok["value"] > 0)]
    if not mismatched.empty:
        keys = mismatched[[*case, "quantity"]].drop_duplicates().assign(_mismatch=True)
        rel = rel.merge(keys, on=[*case, "quantity"], how="left")
        mismatch = rel["_mismatch"].eq(True) & (rel["status"] != "failed")
        rel = rel.assign(value=rel["value"].mask(mismatch, np.inf),
                         _usable=rel["_usable"] | mismatch).drop(columns="_mismatch")
    rel = rel[rel["_usable"]].drop(columns="_usable")
    return rel[rel["value"].notna()]


def _verdicts(table: pd.DataFrame) -> np.ndarray:
    """pass / fail against the tolerance on the ok results; an implementation whose
    registry entry says its gradient is knowingly wrong gets "expected failure" (or
    "unexpected pass") instead. A case that ran but lacks an expected figure is "error"
    whatever the others say; one that ran and compared nothing (every quantity it holds
    and the registry expects ``not_compared``) is "n/a". One with no relative error to
    judge otherwise is "outdated" where a result of it is (its error tracks' version
    is not benchmarks.json's), else "error": never "n/a", never a pass (a current
    mismatch count above 0 is an infinite error already: "fail"). Cases with nothing ok
    say why (failed, outdated, ...)."""
    statuses = table["status"].str.split("+")
    ran = statuses.map(lambda s: "ok" in s)
    outdated = statuses.map(lambda s: "outdated" in s)
    within = table["worst_rel_error"] <= table["tolerance"]
    exact = table["gradient_is_exact"].astype(bool)
    nothing = table["worst_rel_error"].isna()
    return np.select(
        [statuses.map(lambda s: "failed" in s), ~ran & outdated,
         ~ran, table["unmeasured"] != "", nothing & _compared_nothing(table),
         nothing & outdated, nothing, table["tolerance"].isna(),
         within & exact, ~within & exact, ~within, within],
        ["failed", "outdated", "skipped", "error", "n/a", "outdated", "error", "no tolerance",
         "pass", "fail", "expected failure", "unexpected pass"],
        "skipped")


def _compared_nothing(table: pd.DataFrame) -> pd.Series:
    """Per case: every quantity it holds a max rel figure for, and every one the registry
    expects of its layer, is in ``not_compared`` (a case whose verdict figures are
    outdated, say, compared nothing current but is no "n/a")."""
    return pd.Series([
        bool(not_compared) and set(not_compared.split("+")) >= (set(held) | set(
            expected_quantities(layer)))
        for layer, held, not_compared in zip(table["layer"], table["_rel_quantities"],
                                             table["not_compared"])], index=table.index,
        dtype=bool)
