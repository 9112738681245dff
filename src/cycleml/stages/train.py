"""Stage `train`: fit the pipeline, track the run in MLflow, save the model.

The XGBoost settings are ``train.xgboost`` with the tuned values of
``models/best_params.json`` (stage `tune`) laid over them.

Outputs: ``models/model/`` (an MLflow model directory: the whole sklearn Pipeline, stored
with skops, never pickle), ``models/train_run.json`` (the MLflow run and logged model),
``metrics/train.json`` (validation metrics) and ``plots/learning_curve.csv``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from cycleml.config import Params
from cycleml.data.schema import Schema, row_keys
from cycleml.evaluation.curves import learning_verdict
from cycleml.files import read_json, write_csv, write_json
from cycleml.model.loading import untrusted_types
from cycleml.model.pipeline import fit_pipeline, iteration_range, predict_scores, with_overrides
from cycleml.names import SCHEMA_ARTIFACT, SEEN_ROWS
from cycleml.paths import Paths

__all__ = ["flat_params", "run"]

# keys of the rows the model trained and early-stopped on (see schema.row_keys)


def model_requirements() -> list[str]:
    """Pinned requirements of a saved pipeline, read from the installed distributions.

    MLflow would otherwise infer them by re-loading the model in a subprocess (about ten
    seconds per save); the pipeline's needs are known, so name them.
    """
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for names in (
        ("scikit-learn",),
        ("xgboost-cpu", "xgboost"),
        ("skops",),
        ("pandas",),
        ("numpy",),
        ("scipy",),
    ):
        for name in names:
            try:
                pins.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
    return pins


def flat_params(params: Params) -> dict[str, Any]:
    """The params a training run depends on, as flat MLflow params."""
    out: dict[str, Any] = {"task": params.task, "data.target": params.data.target}
    source = params.data.source.model_dump()
    out.update({f"data.source.{k}": v for k, v in source.items() if k not in {"url", "query"}})
    out.update({f"split.{k}": v for k, v in params.split.model_dump().items()})

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = value

    walk("train", params.train.model_dump())
    return out


def _model_kwargs(pipeline: Pipeline, schema: Schema, sample: pd.DataFrame) -> dict[str, Any]:
    """How the pipeline is saved: skops (never pickle), pinned requirements, signature.

    Saving refuses a pipeline holding a type outside cycleml's trusted list, so what is
    registered always loads; the types written to MLmodel are for MLflow's own loader only
    (cycleml never reads them back).

    The signature is inferred from many rows, so a column that happens to be missing in the
    first few still gets its real type; the input example stays small.
    """
    from mlflow.models import infer_signature

    return {
        "serialization_format": "skops",
        "skops_trusted_types": untrusted_types(pipeline),
        "pip_requirements": model_requirements(),
        "signature": infer_signature(sample, predict_scores(pipeline, schema, sample)),
        "input_example": sample.head(5),
        "pyfunc_predict_fn": "predict_proba" if schema.task == "classification" else "predict",
    }


def _save_model_dir(pipeline: Pipeline, target: Path, kwargs: dict[str, Any]) -> None:
    """Save the MLflow model directory atomically (temp dir, then swap)."""
    import mlflow.sklearn

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model.", dir=target.parent))
    staged = tmp / "model"
    mlflow.sklearn.save_model(pipeline, staged, **kwargs)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def _log_seen_rows(schema: Schema, seen: pd.DataFrame) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / SEEN_ROWS
        pd.DataFrame({"key": row_keys(seen, schema)}).to_parquet(file, index=False)
        mlflow.log_artifact(str(file))


def _log_curves(run_id: str, curves: dict[str, list[float]]) -> None:
    """Learning curves as step-indexed metrics, in one batch per curve."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client = MlflowClient()
    for name, values in curves.items():
        metrics = [Metric(f"learning_curve_{name}", v, now, i) for i, v in enumerate(values)]
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=metrics[start : start + 1000])


def run(params: Params, paths: Paths) -> dict[str, Any]:
    """Fit on train (early stopping on valid), log everything to MLflow, save the model."""
    import mlflow

    from cycleml.model.tracking import configure, lineage_tags

    schema = Schema.model_validate(read_json(paths.schema))
    train = pd.read_parquet(paths.split("train"))
    valid = pd.read_parquet(paths.split("valid"))
    tuned = read_json(paths.best_params)["xgboost"] if paths.best_params.exists() else {}
    pipeline, curves = fit_pipeline(schema, with_overrides(params.train, tuned), train, valid)

    model_kwargs = _model_kwargs(pipeline, schema, schema.feature_frame(train).head(2000))

    configure(params.tracking, paths)
    tags = lineage_tags(params, paths)
    _, used = iteration_range(pipeline.named_steps["model"])
    last = used - 1 if used else len(curves["valid"]) - 1
    fit_metrics = {
        "best_iteration": last,
        "train_loss": curves["train"][last],
        "valid_loss": curves["valid"][last],
    }
    with mlflow.start_run(run_name="train", tags=tags) as active:
        mlflow.log_params(flat_params(params))
        mlflow.log_params({f"tuned.{k}": v for k, v in tuned.items()})
        mlflow.log_metrics(fit_metrics)
        mlflow.log_dict(schema.model_dump(), SCHEMA_ARTIFACT)
        _log_seen_rows(schema, pd.concat([train, valid]))
        _log_curves(active.info.run_id, curves)
        _save_model_dir(pipeline, paths.model_dir, model_kwargs)
        info = mlflow.sklearn.log_model(pipeline, name="model", **model_kwargs)
        run_id = active.info.run_id

    curve_frame = pd.DataFrame(
        {"round": range(len(curves["train"])), "train": curves["train"], "valid": curves["valid"]}
    )
    write_csv(paths.plot("train/learning_curve.csv"), curve_frame)
    write_json(paths.metrics("train"), fit_metrics)
    verdict = learning_verdict(curves, used - 1 if used else None)
    write_json(paths.report("learning.json"), verdict)
    summary = {
        "run_id": run_id,
        "model_uri": info.model_uri,
        "experiment": params.tracking.experiment,
        **fit_metrics,
        "fit": verdict,
    }
    write_json(paths.train_run, summary)
    return summary
