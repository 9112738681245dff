"""Stage `train`: fit the pipeline, track the run in MLflow, save the model.

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
from cycleml.io import read_json, write_csv, write_json
from cycleml.modeling import fit_pipeline, predict_scores
from cycleml.paths import Paths
from cycleml.schema import Schema

__all__ = ["SAFE_TYPE_PREFIXES", "flat_params", "run", "trusted_types"]

# Types skops may load from a model file besides its built-in safe set. Anything else in a
# pipeline is refused at save time instead of being trusted blindly at load time.
SAFE_TYPE_PREFIXES = ("numpy.", "xgboost.", "sklearn.")


def trusted_types(pipeline: Pipeline) -> list[str]:
    """The non-default types skops must trust to load ``pipeline``; refuses unknown ones."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=sio.dumps(pipeline))
    unsafe = [t for t in untrusted if not t.startswith(SAFE_TYPE_PREFIXES)]
    if unsafe:
        raise TypeError(f"the pipeline holds types skops cannot load safely: {unsafe}")
    return list(untrusted)


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


def _save_model_dir(
    pipeline: Pipeline, target: Path, signature: Any, example: Any, schema: Schema
) -> list[str]:
    """Save the MLflow model directory atomically (temp dir, then swap)."""
    import mlflow.sklearn

    types = trusted_types(pipeline)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model.", dir=target.parent))
    staged = tmp / "model"
    mlflow.sklearn.save_model(
        pipeline,
        staged,
        serialization_format="skops",
        skops_trusted_types=types,
        pip_requirements=model_requirements(),
        signature=signature,
        input_example=example,
        pyfunc_predict_fn="predict_proba" if schema.task == "classification" else "predict",
    )
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return types


def run(params: Params, paths: Paths) -> dict[str, Any]:
    """Fit on train (early stopping on valid), log everything to MLflow, save the model."""
    import mlflow
    from mlflow.models import infer_signature

    from cycleml.tracking import configure, lineage_tags

    schema = Schema.model_validate(read_json(paths.schema))
    train = pd.read_parquet(paths.split("train"))
    valid = pd.read_parquet(paths.split("valid"))
    pipeline, curves = fit_pipeline(schema, params.train, train, valid)

    # the signature is inferred from many rows, so a column that happens to be missing in
    # the first few still gets its real type; the example stays small
    sample = schema.feature_frame(train).head(2000)
    signature = infer_signature(sample, predict_scores(pipeline, schema, sample))
    example = sample.head(5)

    configure(params.tracking, paths)
    tags = lineage_tags(params, paths)
    best = getattr(pipeline.named_steps["model"], "best_iteration", None)
    last = len(curves["valid"]) - 1 if best is None else int(best)
    fit_metrics = {
        "best_iteration": last,
        "train_loss": curves["train"][last],
        "valid_loss": curves["valid"][last],
    }
    with mlflow.start_run(run_name="train", tags=tags) as active:
        mlflow.log_params(flat_params(params))
        mlflow.log_metrics(fit_metrics)
        for name, values in curves.items():
            for step, value in enumerate(values):
                mlflow.log_metric(f"learning_curve_{name}", value, step=step)
        mlflow.log_dict(schema.model_dump(), "schema.json")
        types = _save_model_dir(pipeline, paths.model_dir, signature, example, schema)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=types,
            pip_requirements=model_requirements(),
            signature=signature,
            input_example=example,
            pyfunc_predict_fn="predict_proba" if schema.task == "classification" else "predict",
        )
        run_id = active.info.run_id

    curve_frame = pd.DataFrame(
        {"round": range(len(curves["train"])), "train": curves["train"], "valid": curves["valid"]}
    )
    write_csv(paths.plot("train/learning_curve.csv"), curve_frame)
    write_json(paths.metrics("train"), fit_metrics)
    summary = {
        "run_id": run_id,
        "model_uri": info.model_uri,
        "experiment": params.tracking.experiment,
        **fit_metrics,
    }
    write_json(paths.train_run, summary)
    return summary
