"""Drift: has the model's output moved (PSI, large and unlikely by chance), and which
feature columns drifted (Evidently's effect size large and the shift significant)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cycleml.config import MonitorParams
from cycleml.data.schema import Schema
from cycleml.monitor.statistics import category_psi, column_p_value, psi, psi_p_value

__all__ = ["column_drift", "output_column", "prediction_drift"]


def output_column(schema: Schema) -> str:
    """The one column that summarises the model's output: P(positive) or the value."""
    if schema.task == "regression" or not schema.is_binary:
        return "prediction"
    return f"probability_{schema.classes[1]}"


def prediction_drift(
    schema: Schema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    limit: float | None,
    alpha: float,
) -> dict[str, Any]:
    """The PSI of the model's output: drifted when above ``limit`` and unlikely by chance
    (p below ``alpha``) for the window's size."""
    column = output_column(schema)
    if column == "prediction" and schema.task == "classification":
        value = category_psi(reference[column], current[column])
    else:
        value = psi(
            reference[column].to_numpy(dtype="float64"), current[column].to_numpy(dtype="float64")
        )
    n, m = current[column].notna().sum(), reference[column].notna().sum()
    p_value = psi_p_value(value, n, m)
    out = {
        "column": column,
        "psi": value,
        "limit": limit,
        "p_value": p_value,
        "drifted": bool(limit is not None and value == value and value > limit and p_value < alpha),
        "reference_mean": _mean(reference, column, schema),
        "current_mean": _mean(current, column, schema),
    }
    return out


def _mean(frame: pd.DataFrame, column: str, schema: Schema) -> float | None:
    if schema.task == "classification" and column == "prediction":
        return None
    return float(pd.to_numeric(frame[column], errors="coerce").mean())


def column_drift(
    columns: dict[str, Any],
    schema: Schema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: MonitorParams,
) -> dict[str, Any]:
    """The drifted feature columns and their share, from Evidently's per-column effect
    sizes (``columns``, judged in place) on the sampled ``reference`` and ``current``."""
    _judge_columns(columns, schema, reference, current, cfg.significance)
    drifted = sorted(c for c, i in columns.items() if i["drifted"])
    share = len(drifted) / max(len(schema.features), 1)
    return {
        "share": share,
        "limit": cfg.drift_share,
        "dataset_drift": share >= cfg.drift_share,
        "drifted": drifted,
        "drifted_columns_limit": cfg.drifted_columns,
        "columns": columns,
    }


def _judge_columns(
    columns: dict[str, Any],
    schema: Schema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    alpha: float,
) -> None:
    """A column drifted when the shift is large (Evidently's effect-size test) and real
    (significant at ``alpha``): large samples make tiny shifts significant, small samples
    make large-looking shifts by chance; either alone raises false alarms."""
    for col, info in columns.items():
        if info["large"]:
            info["p_value"] = column_p_value(
                reference[col], current[col], col in schema.categorical
            )
            info["drifted"] = info["p_value"] < alpha
        else:
            info["drifted"] = False
