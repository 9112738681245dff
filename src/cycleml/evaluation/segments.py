"""Metrics per slice of the test data, the slicing rule, and tables made JSON-able.

Pure functions of a table and scores: no files, no MLflow. Tables come back as DataFrames
(``to_records`` makes any of them JSON-able: NaN becomes None, NumPy scalars become Python
ones).

Slicing rule (``slice_labels``), shared by ``segment_metrics`` and ``fairness``: a
categorical column (or a numeric one with at most ``_MAX_LEVELS`` distinct values, such as
a 0/1 flag) is sliced by value; any other numeric column is cut into quartiles. Missing
values form their own slice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from cycleml.config import GoalsParams
from cycleml.data.schema import Schema, label_key
from cycleml.evaluation.business import task_kpis
from cycleml.model.decision import decide

__all__ = ["is_numeric", "plain", "segment_metrics", "slice_labels", "to_records"]

# A numeric column with at most this many distinct values is sliced by value (flags, counts
# of children), not by quartile: quartile edges of a 0/1 column collapse into one bin.
_MAX_LEVELS = 10
_QUARTILES = 4
_MISSING = "(missing)"


# --- helpers ---------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-able Python value: NaN/NaT -> None, NumPy scalars -> Python, dates -> ISO."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` as JSON-able dicts (NaN -> None, NumPy -> Python)."""
    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _none_for_nan(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns holding NaN become object columns holding None (undefined, not a number)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].isna().any():
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def is_numeric(values: pd.Series) -> bool:
    """Numbers that can be cut or shifted: numeric dtype, booleans excluded."""
    return bool(pd.api.types.is_numeric_dtype(values)) and not pd.api.types.is_bool_dtype(values)


def slice_labels(values: pd.Series) -> pd.Series:
    """Each row's slice label (see the module docstring), as an ordered categorical."""
    present = values.dropna()
    if is_numeric(values) and present.nunique() > _MAX_LEVELS:
        numbers = values.astype("float64")
        edges = np.unique(np.quantile(present.astype("float64"), np.linspace(0, 1, _QUARTILES + 1)))
        names = [
            f"{'[' if i == 0 else '('}{lo:.4g}, {hi:.4g}]"
            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
        ]
        codes = np.clip(np.searchsorted(edges, numbers.to_numpy(), side="left") - 1, 0, None)
        labels = pd.Series(np.asarray(names, dtype=object)[np.minimum(codes, len(names) - 1)])
        labels.index = values.index
    else:
        labels = values.map(label_key, na_action="ignore").astype(object)
        names = sorted(labels.dropna().unique(), key=str)
    labels = labels.where(values.notna(), _MISSING)
    order = [*names, _MISSING] if values.isna().any() else list(names)
    return pd.Series(pd.Categorical(labels, categories=order, ordered=True), index=values.index)


# --- segments --------------------------------------------------------------------------


def _slice_metrics(
    schema: Schema, y: np.ndarray, scores: np.ndarray, threshold: float, goals: GoalsParams
) -> dict[str, Any]:
    if schema.task == "regression":
        error = y - scores
        kpi = task_kpis(schema, y, scores, goals)
        return {
            "mean_target": float(y.mean()),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mae": float(np.mean(np.abs(error))),
            "error_cost": kpi["error_cost"],
        }
    if not schema.is_binary:
        return {"accuracy": float((decide(scores) == y).mean())}
    pos = scores[:, 1]
    decided = decide(scores, threshold)
    both = len(np.unique(y)) == 2
    return {
        "positive_rate": float(y.mean()),
        "accuracy": float((decided == y).mean()),
        "precision": _number(skm.precision_score(y, decided, zero_division=np.nan)),
        "recall": _number(skm.recall_score(y, decided, zero_division=np.nan)),
        "roc_auc": float(skm.roc_auc_score(y, pos)) if both else None,
        "profit": task_kpis(schema, y, decided, goals)["profit"],
    }


def segment_metrics(
    frame: pd.DataFrame,
    schema: Schema,
    scores: np.ndarray,
    threshold: float,
    columns: list[str],
    goals: GoalsParams,
) -> tuple[pd.DataFrame, list[str]]:
    """Test metrics per slice of each column: where does the model do worse?

    ``scores`` are ``predict_scores`` of ``frame``. One row per (column, segment) with
    ``rows`` and, binary: ``positive_rate accuracy precision recall roc_auc profit``
    (precision/recall None when undefined in the slice, roc_auc None for a one-class
    slice); regression: ``mean_target rmse mae error_cost``; multiclass: ``accuracy``.
    Columns absent from ``frame`` are skipped and named in the returned notes.
    """
    y = schema.encode_target(frame[schema.target])
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    for column in columns:
        if column not in frame.columns:
            notes.append(f"segments: column {column!r} absent, skipped")
            continue
        labels = slice_labels(frame[column])
        for segment, index in labels.groupby(labels, observed=True).indices.items():
            metrics = _slice_metrics(schema, y[index], scores[index], threshold, goals)
            records.append(
                {"column": column, "segment": str(segment), "rows": len(index), **metrics}
            )
    table = (
        pd.DataFrame.from_records(records)
        if records
        else pd.DataFrame(columns=["column", "segment", "rows"])
    )
    return _none_for_nan(table), notes
