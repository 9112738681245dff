"""Behavioural checks of a fitted Pipeline: does the score move the way it should?

``evaluate.behaviour`` lists directional expectations (charge 20 more a month, churn risk
must not fall); each is checked on the test rows and reported. A pure function of a
Pipeline and a table: no files, no MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from cycleml.config import BehaviourCheck
from cycleml.data.schema import Schema
from cycleml.evaluation.segments import is_numeric
from cycleml.model.pipeline import predict_scores

__all__ = ["behaviour_checks"]


def behaviour_checks(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame, checks: list[BehaviourCheck]
) -> list[dict[str, Any]]:
    """Directional expectations: add ``change`` to a column, does the score move as expected?

    The score is the positive-class probability (binary) or the prediction (regression).
    A row complies when ``new - old >= -tolerance`` (increase), ``<= tolerance``
    (decrease) or ``|new - old| <= tolerance`` (no_change); the check passes when the share
    of complying rows reaches ``min_share``. Multiclass problems, absent and non-numeric
    columns are skipped with the reason.
    """
    results: list[dict[str, Any]] = []
    old: np.ndarray | None = None
    for check in checks:
        if schema.task == "classification" and not schema.is_binary:
            results.append({"name": check.name, "skipped": "multiclass scores have no direction"})
            continue
        if check.column not in frame.columns:
            results.append({"name": check.name, "skipped": "column absent"})
            continue
        if not is_numeric(frame[check.column]):
            results.append({"name": check.name, "skipped": "column not numeric"})
            continue
        if old is None:
            old = _score(pipeline, schema, frame)
        changed = frame.assign(**{check.column: frame[check.column] + check.change})
        delta = _score(pipeline, schema, changed) - old
        if check.expect == "increase":
            ok = delta >= -check.tolerance
        elif check.expect == "decrease":
            ok = delta <= check.tolerance
        else:
            ok = np.abs(delta) <= check.tolerance
        share = float(ok.mean()) if len(ok) else 0.0
        results.append(
            {
                "name": check.name,
                "column": check.column,
                "change": check.change,
                "expect": check.expect,
                "tolerance": check.tolerance,
                "rows": len(ok),
                "share_ok": share,
                "min_share": check.min_share,
                "passed": bool(len(ok)) and share >= check.min_share,
                "mean_delta": float(delta.mean()) if len(delta) else 0.0,
            }
        )
    return results


def _score(pipeline: Pipeline, schema: Schema, frame: pd.DataFrame) -> np.ndarray:
    scores = predict_scores(pipeline, schema, frame)
    return scores[:, 1] if schema.is_binary else scores
