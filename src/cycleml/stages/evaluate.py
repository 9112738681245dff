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

from cycleml.config import Params
from cycleml.data.schema import Schema
from cycleml.evaluation.business import kpi_name
from cycleml.evaluation.evaluator import (
    baseline_summary,
    choose_threshold,
    evaluate,
    in_depth,
    score_baselines,
)
from cycleml.files import read_json, write_csv, write_json
from cycleml.model.loading import load_local_model
from cycleml.names import TAG_BASELINE_VERDICT, TAG_BEHAVIOUR_FAILED
from cycleml.paths import Paths

__all__ = ["run"]


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import mlflow

    from cycleml.model.tracking import configure

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
    baselines = baseline_summary(
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
        mlflow.set_tag(TAG_BASELINE_VERDICT, baselines["verdict"])
        mlflow.set_tag(TAG_BEHAVIOUR_FAILED, ",".join(failed) or "none")
        mlflow.log_artifacts(str(paths.plot("evaluate")), artifact_path="evaluate")
        mlflow.log_artifacts(str(paths.report("evaluate")), artifact_path="evaluate")
        mlflow.log_artifact(str(paths.metrics("fairness")), artifact_path="evaluate")
    return {"metrics": metrics, "baselines": baselines, "reports": reports}
