"""Stage `evaluate`: test-set metrics and plot data for the trained model.

Outputs: ``metrics/evaluate.json`` (a DVC metric; names are a promise to users:
classification ``accuracy precision recall f1 roc_auc pr_auc log_loss``, regression
``rmse mae r2 mape``), and for ``dvc plots``: ``plots/confusion.csv`` and
``plots/roc.csv`` (classification) or ``plots/residuals.csv`` (regression). Test metrics
are also logged to the training run in MLflow as ``test_<name>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve
from sklearn.pipeline import Pipeline

from cycleml.config import Params
from cycleml.io import read_json, write_csv, write_json
from cycleml.metrics import task_metrics
from cycleml.modeling import predict_scores
from cycleml.paths import Paths
from cycleml.schema import Schema

__all__ = ["evaluate", "load_local_model", "run"]

_ROC_POINTS = 200


def load_local_model(paths: Paths) -> Pipeline:
    import mlflow.sklearn

    model: Pipeline = mlflow.sklearn.load_model(str(paths.model_dir))
    return model


def _plots(
    schema: Schema, y: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, pd.DataFrame]:
    if schema.task == "regression":
        return {
            "residuals.csv": pd.DataFrame(
                {"actual": y, "predicted": scores, "residual": y - scores}
            )
        }
    pred = (scores[:, 1] >= threshold).astype(int) if schema.is_binary else scores.argmax(axis=1)
    plots = {
        "confusion.csv": pd.DataFrame(
            {"actual": schema.decode_target(y), "predicted": schema.decode_target(pred)}
        )
    }
    if schema.is_binary:
        fpr, tpr, _ = roc_curve(y, scores[:, 1])
        keep = np.unique(np.linspace(0, len(fpr) - 1, _ROC_POINTS).round().astype(int))
        plots["roc.csv"] = pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]})
    return plots


def evaluate(
    pipeline: Pipeline, schema: Schema, test: pd.DataFrame, threshold: float
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Metrics and plot tables of ``pipeline`` on ``test``."""
    y = schema.encode_target(test[schema.target])
    scores = predict_scores(pipeline, schema, test)
    return task_metrics(schema.task, y, scores, threshold), _plots(schema, y, scores, threshold)


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import mlflow

    from cycleml.tracking import configure

    schema = Schema.model_validate(read_json(paths.schema))
    model = load_local_model(paths)
    threshold = params.evaluate.threshold
    valid_metrics, _ = evaluate(model, schema, pd.read_parquet(paths.split("valid")), threshold)
    metrics, plots = evaluate(model, schema, pd.read_parquet(paths.split("test")), threshold)
    for name, frame in plots.items():
        write_csv(paths.plot(f"evaluate/{name}"), frame)
    write_json(paths.metrics("evaluate"), metrics)

    configure(params.tracking, paths)
    run_id = read_json(paths.train_run)["run_id"]
    logged = {f"test_{k}": v for k, v in metrics.items()}
    logged.update({f"valid_{k}": v for k, v in valid_metrics.items()})
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k: v for k, v in logged.items() if np.isfinite(v)})
    return metrics
