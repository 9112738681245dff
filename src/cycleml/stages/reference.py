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

from cycleml.config import Params
from cycleml.data.schema import Schema
from cycleml.files import read_json, write_parquet
from cycleml.model.decision import DEFAULT_THRESHOLD
from cycleml.model.loading import load_local_model
from cycleml.monitor.reference import profile
from cycleml.paths import Paths
from cycleml.scoring.loaded import LoadedModel

__all__ = ["run"]


def run(params: Params, paths: Paths) -> dict[str, Any]:
    from cycleml.model.tracking import configure

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
        threshold=float(threshold or DEFAULT_THRESHOLD),
    )
    reference = profile(held_out, model)
    write_parquet(paths.reference, reference)
    run_id = read_json(paths.train_run)["run_id"]
    configure(params.tracking, paths).log_artifact(run_id, str(paths.reference))
    return {"rows": len(reference), "columns": reference.shape[1], "run_id": run_id}
