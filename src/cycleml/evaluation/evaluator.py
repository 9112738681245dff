"""Evaluation of a fitted Pipeline: metrics, business KPIs, baselines and the in-depth
analyses (curves, segments, fairness, explanations, behaviour).

Pure functions of a model and frames; the ``evaluate`` stage does the files and MLflow,
``tune`` and ``register`` call :func:`evaluate` to judge candidates the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve
from sklearn.pipeline import Pipeline

from cycleml.config import EvaluateParams, GoalsParams, Params
from cycleml.data.schema import Schema
from cycleml.evaluation import baselines as bl
from cycleml.evaluation.business import best_threshold, task_kpis
from cycleml.evaluation.metrics import advantage, task_metrics
from cycleml.model.decision import DEFAULT_THRESHOLD, decide
from cycleml.model.pipeline import predict_scores

__all__ = ["baseline_summary", "choose_threshold", "evaluate", "in_depth", "score_baselines"]

_ROC_POINTS = 200


def choose_threshold(
    pipeline: Pipeline, schema: Schema, valid: pd.DataFrame, cfg: EvaluateParams, goals: GoalsParams
) -> float:
    """The binary decision threshold: from params, or the KPI-maximising one on ``valid``."""
    if cfg.threshold != "auto":
        return float(cfg.threshold)
    if not schema.is_binary:
        return DEFAULT_THRESHOLD
    scores = predict_scores(pipeline, schema, valid)[:, 1]
    return best_threshold(schema.encode_target(valid[schema.target]), scores, goals.classification)


def _plots(
    schema: Schema, y: np.ndarray, scores: np.ndarray, decided: np.ndarray
) -> dict[str, pd.DataFrame]:
    if schema.task == "regression":
        return {
            "residuals.csv": pd.DataFrame(
                {"actual": y, "predicted": scores, "residual": y - scores}
            )
        }
    plots = {
        "confusion.csv": pd.DataFrame(
            {"actual": schema.decode_target(y), "predicted": schema.decode_target(decided)}
        )
    }
    if schema.is_binary:
        fpr, tpr, _ = roc_curve(y, scores[:, 1])
        keep = np.unique(np.linspace(0, len(fpr) - 1, _ROC_POINTS).round().astype(int))
        plots["roc.csv"] = pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]})
    return plots


def evaluate(
    pipeline: Pipeline,
    schema: Schema,
    frame: pd.DataFrame,
    threshold: float,
    goals: GoalsParams,
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Technical metrics, business KPIs and plot tables of ``pipeline`` on ``frame``."""
    y = schema.encode_target(frame[schema.target])
    scores = predict_scores(pipeline, schema, frame)
    decided = decide(scores, threshold)
    metrics = task_metrics(schema.task, y, scores, threshold)
    metrics.update(task_kpis(schema, y, decided, goals))
    if schema.is_binary:
        metrics["decision_threshold"] = threshold
    return metrics, _plots(schema, y, scores, decided)


def score_baselines(
    schema: Schema, frame: pd.DataFrame, goals: GoalsParams, stored: dict[str, Any]
) -> dict[str, float]:
    """Each stored baseline's KPI on ``frame``."""
    kpi = stored["kpi"]
    return {
        b["name"]: bl.score(bl.Baseline(**b), frame, schema, goals, stored["fallback"])[kpi]
        for b in stored["baselines"]
    }


def baseline_summary(
    model_kpi: float, kpi: str, best: str, on_test: dict[str, float]
) -> dict[str, Any]:
    margin = advantage(kpi, model_kpi, on_test[best])
    return {
        "kpi": kpi,
        "model": model_kpi,
        "best_baseline": best,
        "best_baseline_kpi": on_test[best],
        "model_margin": margin,
        "test": on_test,
        "verdict": (
            f"the model beats the best baseline ({best}) on {kpi} by {margin:,.2f}"
            if margin > 0
            else f"the baseline '{best}' is as good as the model on {kpi}: ML is not worth it "
            "here unless it improves"
        ),
    }


def in_depth(
    model: Pipeline,
    schema: Schema,
    test: pd.DataFrame,
    threshold: float,
    params: Params,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Calibration, gains, segments, fairness, explanations and behaviour on ``test``.

    Returns the tables for ``dvc plots`` and the JSON reports (fairness limits are
    register gates; behaviour checks are reported).
    """
    from cycleml.evaluation.behaviour import behaviour_checks
    from cycleml.evaluation.curves import brier_score, calibration, gains
    from cycleml.evaluation.explanations import explanations
    from cycleml.evaluation.fairness import fairness
    from cycleml.evaluation.segments import segment_metrics, to_records

    cfg = params.evaluate
    y = schema.encode_target(test[schema.target])
    scores = predict_scores(model, schema, test)
    decided = decide(scores, threshold)
    tables: dict[str, pd.DataFrame] = {}
    reports: dict[str, Any] = {}
    if schema.is_binary:
        tables["calibration.csv"] = calibration(y, scores[:, 1])
        reports["brier_score"] = brier_score(y, scores[:, 1])
        if y.any():
            tables["gains.csv"] = gains(y, scores[:, 1])
    segments, notes = segment_metrics(
        test, schema, scores, threshold, list(cfg.segments), params.goals
    )
    reports["segments"] = {"rows": to_records(segments), "notes": notes}
    reports["fairness"] = fairness(
        test, schema, y, decided, list(cfg.fairness.sensitive), cfg.fairness
    )
    importance, per_row = explanations(model, schema, test, cfg.explain_rows)
    tables["importance.csv"] = importance
    reports["explanations"] = to_records(per_row)
    reports["behaviour"] = behaviour_checks(model, schema, test, list(cfg.behaviour))
    return tables, reports
