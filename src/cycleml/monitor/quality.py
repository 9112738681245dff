"""Quality: of the incoming data (missing values, categories the reference never had)
and of the model on the rows whose labels arrived and that it did not train on (the
task's metrics against the reference's; a worsening beyond its limit and unlikely by
chance is degradation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cycleml.config import MonitorParams
from cycleml.data.schema import Schema, row_keys
from cycleml.evaluation.metrics import advantage, task_metrics
from cycleml.monitor.statistics import worse_by_chance
from cycleml.names import SEEN_ROWS

__all__ = [
    "change_words",
    "data_quality",
    "labelled_rows",
    "model_quality",
    "select_rows",
    "unseen_rows",
]


def data_quality(schema: Schema, reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Per feature: missing share now and in the reference; categories never seen."""
    columns: dict[str, Any] = {}
    for col in schema.features:
        info: dict[str, Any] = {
            "missing_share": float(current[col].isna().mean()),
            "reference_missing_share": float(reference[col].isna().mean()),
        }
        if col in schema.categorical:
            known = {str(v) for v in reference[col].dropna().unique()}
            counts = current[col].value_counts()  # once per category, not per row
            new = counts[~counts.index.astype(str).isin(known)]
            if len(new):
                info["new_categories"] = {str(k): int(v) for k, v in new.head(5).items()}
                info["new_category_share"] = float(new.sum() / max(len(current), 1))
        columns[col] = info
    all_missing = [c for c, i in columns.items() if i["missing_share"] == 1.0]
    return {"columns": columns, "all_missing": all_missing}


def _quality_columns(schema: Schema) -> list[str]:
    outputs = ["prediction"] if schema.task == "regression" else []
    return [schema.target, *outputs, *(f"probability_{c}" for c in schema.classes)]


def select_rows(
    frame: pd.DataFrame, keep: pd.Series, columns: list[str] | None = None
) -> pd.DataFrame:
    """``frame``'s ``keep`` rows (``columns`` of them, or all): no copy of a million-row
    window when every row is kept."""
    if columns is None:
        return frame if keep.all() else frame[keep]
    present = [c for c in columns if c in frame.columns]
    return frame[present] if keep.all() else frame.loc[keep, present]


def labelled_rows(schema: Schema, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s rows whose label arrived, in the columns model quality reads (id
    columns, target, outputs): a narrow copy, not one of a million-row window."""
    outputs = ["prediction", *(f"probability_{c}" for c in schema.classes)]
    return select_rows(
        frame, frame[schema.target].notna(), [*schema.id_columns, schema.target, *outputs]
    )


def unseen_rows(
    schema: Schema, labelled: pd.DataFrame, seen: np.ndarray | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``labelled`` without the rows the model trained or early-stopped on (matched on the
    schema's id columns against ``seen``, the run's keys of them), so a window holding
    training rows does not flatter the model; and what was done, for the report."""
    if not schema.id_columns:
        return labelled, {"not_checked": "not checked (no data.id_columns to match rows on)"}
    missing = [c for c in schema.id_columns if c not in labelled.columns]
    if missing:
        why = f"the window lacks the id column(s) {', '.join(missing)}"
        return labelled, {"not_checked": f"not checked ({why})"}
    if seen is None:
        return labelled, {"not_checked": f"not checked (the training run kept no {SEEN_ROWS})"}
    trained = pd.Series(np.isin(row_keys(labelled, schema), seen), index=labelled.index)
    return select_rows(labelled, ~trained), {"left_out": int(trained.sum())}


def change_words(worse: float) -> str:
    """A relative worsening in words, "6.7% worse" or "6.7% better": its sign is already
    the metric's direction (lower-is-better metrics such as rmse or log_loss included)."""
    if abs(worse) < 0.0005:
        return "unchanged"
    return f"{abs(worse):.1%} {'worse' if worse > 0 else 'better'}"


def model_quality(
    schema: Schema,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    threshold: float,
    cfg: MonitorParams,
) -> dict[str, Any]:
    """The task's metrics on labelled current rows against the same on the reference."""

    def scores(frame: pd.DataFrame) -> np.ndarray:
        if schema.task == "regression":
            return frame["prediction"].to_numpy(dtype="float64")
        proba = frame[[f"probability_{c}" for c in schema.classes]].to_numpy(dtype="float64")
        return np.asarray(proba / proba.sum(axis=1, keepdims=True))  # float32 rounding

    y_now = schema.encode_target(labelled[schema.target])
    y_ref = schema.encode_target(reference[schema.target].dropna())
    ref_rows = select_rows(reference, reference[schema.target].notna(), _quality_columns(schema))
    if schema.task == "classification" and len(np.unique(y_now)) < 2:
        return {"skipped": "not checked (the labelled rows hold a single class: no ranking metric)"}
    now = task_metrics(schema.task, y_now, scores(labelled), threshold)
    ref = task_metrics(schema.task, y_ref, scores(ref_rows), threshold)
    metrics: dict[str, Any] = {}
    for name, limit in cfg.max_quality_drop.items():
        if name not in now or now[name] != now[name] or not ref.get(name):
            continue
        worse = -advantage(name, now[name], ref[name]) / abs(ref[name])
        p_value = worse_by_chance(
            name, schema, (y_ref, scores(ref_rows)), (y_now, scores(labelled))
        )
        metrics[name] = {
            "reference": ref[name],
            "current": now[name],
            "relative_worsening": worse,
            "change": change_words(worse),
            "limit": limit,
            "p_value": p_value,
            "degraded": bool(worse > limit and (p_value is None or p_value < cfg.significance)),
        }
    return {
        "rows": len(labelled),
        "metrics": metrics,
        "degraded": [m for m, i in metrics.items() if i["degraded"]],
        "labels": _label_shift(schema, y_ref, y_now),
    }


def _label_shift(schema: Schema, y_ref: np.ndarray, y_now: np.ndarray) -> dict[str, Any]:
    """Each class's share of the labels (the labels' mean for regression), then and now."""
    if schema.task == "classification":
        k = len(schema.classes)
        rate_now = np.bincount(y_now, minlength=k) / len(y_now)
        rate_ref = np.bincount(y_ref, minlength=k) / len(y_ref)
        return {
            c: {"reference": float(rate_ref[i]), "current": float(rate_now[i])}
            for i, c in enumerate(schema.classes)
        }
    return {"mean": {"reference": float(np.mean(y_ref)), "current": float(np.mean(y_now))}}
