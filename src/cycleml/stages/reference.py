"""Stage `reference`: the profile that monitoring compares production traffic with.

Held-out rows (validation and test: scores on the training rows are overconfident and
would make every production window look drifted) with the trained model's predictions,
written as ``models/reference.parquet`` and logged on the training run as
``reference.parquet``, so monitoring any registered version compares like with like: the
same columns, the same cleaning, the same model.

Columns: the model's inputs, the target (canonical labels), ``prediction`` and, for
classification, ``probability_<class>`` per class: the very columns ``cycleml predict``
writes and the service logs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cycleml.batch import LoadedModel, score_table
from cycleml.config import Params
from cycleml.io import read_json, write_parquet
from cycleml.paths import Paths
from cycleml.schema import Schema

__all__ = ["ARTIFACT", "canonical_target", "profile", "run", "with_predictions"]

ARTIFACT = "reference.parquet"


def canonical_target(schema: Schema, values: pd.Series) -> pd.Series:
    """Labels as the model's class names (``1``, ``1.0`` and ``True`` are one class)."""
    if schema.task == "regression":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    present = values.notna()
    out = pd.Series(None, index=values.index, dtype="object")
    if present.any():
        out[present] = schema.decode_target(schema.encode_target(values[present]))
    return out


def with_predictions(
    frame: pd.DataFrame, model: LoadedModel, na_values: list[str] | None = None
) -> pd.DataFrame:
    """``frame``'s model inputs beside ``model``'s ``prediction`` and probabilities: the
    shape of a reference profile and of a monitored window."""
    scored = score_table(frame, model, na_values).to_pandas()
    out = frame[model.schema.inputs].reset_index(drop=True).copy()
    for col in scored.columns:
        if col not in ("model_name", "model_version"):
            out[col] = scored[col].to_numpy()
    return out


def profile(frame: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """``frame``'s inputs and target beside ``model``'s predictions for them."""
    out = with_predictions(frame, model)
    out[model.schema.target] = canonical_target(model.schema, frame[model.schema.target]).to_numpy()
    return out


def run(params: Params, paths: Paths) -> dict[str, Any]:
    from cycleml.stages.evaluate import _DEFAULT_THRESHOLD, load_local_model
    from cycleml.tracking import configure

    schema = Schema.model_validate(read_json(paths.schema))
    held_out = pd.concat(
        [pd.read_parquet(paths.split("valid")), pd.read_parquet(paths.split("test"))],
        ignore_index=True,
    )
    limit = params.monitor.reference_rows
    if len(held_out) > limit:
        held_out = held_out.sample(limit, random_state=params.split.seed)
    threshold = read_json(paths.metrics("evaluate")).get("decision_threshold")
    model = LoadedModel(
        name=params.register_.model_name,
        version="local",
        pipeline=load_local_model(paths),
        schema=schema,
        threshold=float(threshold or _DEFAULT_THRESHOLD),
    )
    reference = profile(held_out, model)
    write_parquet(paths.reference, reference)
    run_id = read_json(paths.train_run)["run_id"]
    configure(params.tracking, paths).log_artifact(run_id, str(paths.reference))
    return {"rows": len(reference), "columns": reference.shape[1], "run_id": run_id}
