"""gradients.csv: per layer, implementation, shape and dtype, the max abs and rel error
of the output and each gradient against the native twin, and a verdict against
``scipy_layers.agreement.TOLERANCE`` (the same rule the tests apply: max_rel <= tol)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from scipy_layers import LAYERS
from scipy_layers.agreement import TOLERANCE

from .naming import ERROR_MEASUREMENTS
from .reader import method_of
from .tables import RUN_KEYS, param_columns, with_blank_params

# "float64" -> 1e-10: the benchmark's dtype parameter is torch's dtype name.
TOLERANCE_BY_NAME = {str(dtype).removeprefix("torch."): tol for dtype, tol in TOLERANCE.items()}
QUANTITY_ORDER = ["output", "grad_input", "grad_filter", "grad_bias"]


def gradient_is_exact(layer: str, implementation: str) -> bool:
    """The registry's word; an implementation it does not know is held to the tolerance."""
    spec = LAYERS.get(layer)
    impl = spec.implementations.get(implementation) if spec else None
    return True if impl is None else impl.gradient_is_exact


def gradients_table(timings: pd.DataFrame) -> pd.DataFrame:
    errors = with_blank_params(timings[timings["kind"] == "gradients"])
    case = ["layer", *[c for c in param_columns(errors) if c not in ("quantity", "threads")],
            *RUN_KEYS]
    method = method_of(errors)
    errors = errors.assign(statistic=method.map(ERROR_MEASUREMENTS)).dropna(subset=["statistic"])
    wide = (errors.assign(column=errors["quantity"] + "_" + errors["statistic"])
            .pivot_table(index=case, columns="column", values="value", aggfunc="first",
                         dropna=False, sort=False))
    quantities = sorted(errors["quantity"].unique(),
                        key=lambda q: (QUANTITY_ORDER.index(q) if q in QUANTITY_ORDER else 99, q))
    value_columns = [f"{q}_{s}" for q in quantities for s in ("max_abs", "max_rel")]
    wide = wide.reindex(columns=value_columns)
    # pivot_table drops all-NaN groups however asked: the statuses below keep every case.
    statuses = errors.groupby(case, sort=False)["status"].agg(
        lambda s: "+".join(sorted(set(s))))
    table = statuses.to_frame().join(wide, how="left").reset_index()
    rel_ok = errors[(errors["statistic"] == "max_rel") & (errors["status"] == "ok")]
    worst = (rel_ok.sort_values("value", ascending=False, kind="stable")
             .drop_duplicates(case)[case + ["value", "quantity"]]
             .rename(columns={"value": "worst_rel_error", "quantity": "worst_quantity"}))
    table = table.merge(worst, on=case, how="left")
    table["tolerance"] = table["dtype"].map(TOLERANCE_BY_NAME)
    table["gradient_is_exact"] = [gradient_is_exact(layer, impl) for layer, impl
                                  in zip(table["layer"], table["implementation"])]
    table["verdict"] = _verdicts(table)
    order = ["layer", *[c for c in case if c not in ("layer", *RUN_KEYS)], *value_columns,
             "worst_rel_error", "worst_quantity", "tolerance", "gradient_is_exact",
             "verdict", "status", *RUN_KEYS]
    return table[order]


def _verdicts(table: pd.DataFrame) -> np.ndarray:
    """pass / fail against the tolerance on the ok results; an implementation whose
    registry entry says its gradient is knowingly wrong gets "expected failure" (or
    "unexpected pass") instead. Cases with nothing ok say why (failed, outdated, ...)."""
    status = table["status"]
    measured = table["worst_rel_error"].notna()
    within = table["worst_rel_error"] <= table["tolerance"]
    exact = table["gradient_is_exact"].astype(bool)
    return np.select(
        [status.str.contains("failed"), ~measured & status.str.contains("outdated"),
         ~measured, table["tolerance"].isna(),
         within & exact, ~within & exact, ~within, within],
        ["failed", "outdated", "skipped", "no tolerance",
         "pass", "fail", "expected failure", "unexpected pass"],
        "skipped")
