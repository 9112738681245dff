"""Group fairness of binary decisions (fairlearn), with the limits of ``evaluate.fairness``.

A pure function of a table and its decisions: no files, no MLflow. Groups follow the
slicing rule of :mod:`cycleml.evaluation.segments`. The violations it reports are register
gates (:func:`cycleml.evaluation.gate.check_fairness`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from cycleml.config import FairnessParams
from cycleml.data.schema import Schema
from cycleml.evaluation.segments import slice_labels, to_records

__all__ = ["fairness"]


def fairness(
    frame: pd.DataFrame,
    schema: Schema,
    y: np.ndarray,
    decisions: np.ndarray,
    sensitive: list[str],
    params: FairnessParams,
) -> dict[str, Any]:
    """Group fairness of binary decisions (fairlearn), with the params' limits checked.

    Per sensitive column: by group ``rows positives selection_rate true_positive_rate
    false_positive_rate``, and ``demographic_parity_difference`` (largest gap in selection
    rate between groups) and ``equalized_odds_difference`` (largest gap in TPR or FPR).
    ``violations`` lists each difference above its limit (a None limit is not checked).
    With no sensitive column to measure, ``skipped`` says why: nothing was checked.
    A group without positives (or negatives) has no real TPR (FPR): fairlearn counts it as
    0, so a note warns that equalized odds is then unreliable.
    """
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    if not schema.is_binary:
        return {"skipped": "fairness metrics need a binary classification task"}
    y, decisions = np.asarray(y, "int64"), np.asarray(decisions, "int64")
    limits = {
        "demographic_parity_difference": params.max_demographic_parity_difference,
        "equalized_odds_difference": params.max_equalized_odds_difference,
    }
    measures = {
        "rows": count,
        "positives": lambda yt, yp: int(np.sum(yt)),
        "selection_rate": selection_rate,
        "true_positive_rate": partial(true_positive_rate, pos_label=1),
        "false_positive_rate": partial(false_positive_rate, pos_label=1),
    }
    columns: dict[str, Any] = {}
    violations: list[dict[str, Any]] = []
    notes: list[str] = []
    for column in sensitive:
        if column not in frame.columns:
            notes.append(f"fairness: column {column!r} absent, skipped")
            continue
        slices = slice_labels(frame[column])
        groups = slices.astype(str).to_numpy()
        by_group = MetricFrame(
            metrics=measures, y_true=y, y_pred=decisions, sensitive_features=groups
        ).by_group
        by_group = by_group.reindex([g for g in slices.cat.categories if g in by_group.index])
        by_group.index.name = "group"
        table = by_group.reset_index()
        table[["rows", "positives"]] = table[["rows", "positives"]].astype("int64")
        differences = {
            "demographic_parity_difference": float(
                demographic_parity_difference(y, decisions, sensitive_features=groups)
            ),
            "equalized_odds_difference": float(
                equalized_odds_difference(y, decisions, sensitive_features=groups)
            ),
        }
        if ((table["positives"] == 0) | (table["positives"] == table["rows"])).any():
            notes.append(
                f"fairness: a group of {column!r} has only one outcome class; its TPR or FPR "
                "is undefined, so equalized_odds_difference is unreliable"
            )
        columns[column] = {"groups": to_records(table), **differences}
        for metric, value in differences.items():
            limit = limits[metric]
            if limit is not None and value > limit:
                violations.append(
                    {"column": column, "metric": metric, "value": value, "limit": limit}
                )
    if not columns:  # nothing was measured: say so, never "within limits"
        absent = ", ".join(repr(c) for c in sensitive)
        why = (
            f"none of evaluate.fairness.sensitive ({absent}) is a column of the test set"
            if sensitive
            else "evaluate.fairness.sensitive names no column"
        )
        return {"skipped": why, "violations": [], "notes": notes}
    return {"columns": columns, "violations": violations, "notes": notes}
