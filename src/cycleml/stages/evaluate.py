"""Stage `evaluate`: test-set metrics, the business KPI, and the baselines beside the model.

For a binary problem the decision threshold is chosen on the validation data to maximise
the KPI (``evaluate.threshold: auto``) or taken from params; it is reported as
``decision_threshold``. Outputs:

- ``metrics/evaluate.json`` (a DVC metric; names are a promise to users): classification
  ``accuracy precision recall f1 roc_auc pr_auc log_loss``, regression ``rmse mae r2
  mape``, plus the KPIs from ``goals``: binary ``profit profit_contact_all
  profit_contact_none profit_uplift``, regression ``error_cost`` (and ``within_band``);
- ``metrics/baselines.json``: every baseline's KPI on the same test data, the best one
  (chosen on validation) and the model's margin over it;
- for ``dvc plots``: ``plots/evaluate/confusion.csv`` and ``roc.csv`` (classification) or
  ``residuals.csv`` (regression).

Everything is logged to the training run in MLflow (``test_*``, ``valid_*``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve
from sklearn.pipeline import Pipeline

from cycleml import baselines as bl
from cycleml.business import best_threshold, kpi_name, task_kpis
from cycleml.config import EvaluateParams, GoalsParams, Params
from cycleml.io import read_json, write_csv, write_json
from cycleml.metrics import advantage, task_metrics
from cycleml.modeling import predict_scores
from cycleml.paths import Paths
from cycleml.schema import Schema

__all__ = ["choose_threshold", "evaluate", "load_local_model", "run", "score_baselines"]

_ROC_POINTS = 200
_DEFAULT_THRESHOLD = 0.5


def load_local_model(paths: Paths) -> Pipeline:
    import mlflow.sklearn

    model: Pipeline = mlflow.sklearn.load_model(str(paths.model_dir))
    return model


def choose_threshold(
    pipeline: Pipeline, schema: Schema, valid: pd.DataFrame, cfg: EvaluateParams, goals: GoalsParams
) -> float:
    """The binary decision threshold: from params, or the KPI-maximising one on ``valid``."""
    if cfg.threshold != "auto":
        return float(cfg.threshold)
    if not schema.is_binary:
        return _DEFAULT_THRESHOLD
    scores = predict_scores(pipeline, schema, valid)[:, 1]
    return best_threshold(schema.encode_target(valid[schema.target]), scores, goals.classification)


def _decisions(schema: Schema, scores: np.ndarray, threshold: float) -> np.ndarray:
    if schema.task == "regression":
        return scores
    if schema.is_binary:
        return (scores[:, 1] >= threshold).astype("int64")
    return np.asarray(scores.argmax(axis=1))


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
    decided = _decisions(schema, scores, threshold)
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


def _baseline_summary(
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
    from cycleml import analysis

    cfg = params.evaluate
    y = schema.encode_target(test[schema.target])
    scores = predict_scores(model, schema, test)
    decided = _decisions(schema, scores, threshold)
    tables: dict[str, pd.DataFrame] = {}
    reports: dict[str, Any] = {}
    if schema.is_binary:
        tables["calibration.csv"] = analysis.calibration(y, scores[:, 1])
        reports["brier_score"] = analysis.brier_score(y, scores[:, 1])
        if y.any():
            tables["gains.csv"] = analysis.gains(y, scores[:, 1])
    segments, notes = analysis.segment_metrics(
        test, schema, scores, threshold, list(cfg.segments), params.goals
    )
    reports["segments"] = {"rows": analysis.to_records(segments), "notes": notes}
    reports["fairness"] = analysis.fairness(
        test, schema, y, decided, list(cfg.fairness.sensitive), cfg.fairness
    )
    importance, per_row = analysis.explanations(model, schema, test, cfg.explain_rows)
    tables["importance.csv"] = importance
    reports["explanations"] = analysis.to_records(per_row)
    reports["behaviour"] = analysis.behaviour_checks(model, schema, test, list(cfg.behaviour))
    return tables, reports


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import mlflow

    from cycleml.tracking import configure

    schema = Schema.model_validate(read_json(paths.schema))
    model = load_local_model(paths)
    valid = pd.read_parquet(paths.split("valid"))
    test = pd.read_parquet(paths.split("test"))
    threshold = choose_threshold(model, schema, valid, params.evaluate, params.goals)
    valid_metrics, _ = evaluate(model, schema, valid, threshold, params.goals)
    metrics, plots = evaluate(model, schema, test, threshold, params.goals)
    for name, frame in plots.items():
        write_csv(paths.plot(f"evaluate/{name}"), frame)
    write_json(paths.metrics("evaluate"), metrics)

    stored = read_json(paths.baselines)
    kpi = kpi_name(schema)
    baselines = _baseline_summary(
        metrics[kpi], kpi, stored["best"], score_baselines(schema, test, params.goals, stored)
    )
    write_json(paths.metrics("baselines"), baselines)

    tables, reports = in_depth(model, schema, test, threshold, params)
    for name, table in tables.items():
        write_csv(paths.plot(f"evaluate/{name}"), table)
    write_json(paths.metrics("fairness"), reports["fairness"])
    for name in ("segments", "explanations", "behaviour"):
        write_json(paths.report(f"evaluate/{name}.json"), reports[name])

    configure(params.tracking, paths)
    run_id = read_json(paths.train_run)["run_id"]
    logged = {f"test_{k}": v for k, v in metrics.items()}
    logged.update({f"valid_{k}": v for k, v in valid_metrics.items()})
    logged.update({f"baseline_{k}_{kpi}": v for k, v in baselines["test"].items()})
    if "brier_score" in reports:
        logged["test_brier_score"] = reports["brier_score"]
    failed = [c["name"] for c in reports["behaviour"] if c.get("passed") is False]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k: v for k, v in logged.items() if v is not None and np.isfinite(v)})
        mlflow.set_tag("cycleml.baseline_verdict", baselines["verdict"])
        mlflow.set_tag("cycleml.behaviour_failed", ",".join(failed) or "none")
        mlflow.log_artifacts(str(paths.plot("evaluate")), artifact_path="evaluate")
        mlflow.log_artifacts(str(paths.report("evaluate")), artifact_path="evaluate")
        mlflow.log_artifact(str(paths.metrics("fairness")), artifact_path="evaluate")
    return {"metrics": metrics, "baselines": baselines, "reports": reports}
