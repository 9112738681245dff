"""Stage `tune`: search ``train.xgboost`` with Optuna, judged on the validation data.

Each trial fits the whole pipeline with the trial's values over ``train.xgboost`` and
scores it on the validation split with ``tune.objective`` (``auto`` = the business KPI,
for a binary problem ``profit`` at the threshold evaluate would choose). The test split is
never read: it stays the untouched judge of the model train fits afterwards.

The study lives in ``tune.storage`` (SQLite by default) under the name
``<study_name>-<fingerprint>``: a rerun with the same inputs *resumes* it and runs only the
trials still missing to reach ``n_trials``, while changed inputs start a fresh study (see
:mod:`cycleml.tuning.study`).

Hopeless trials are pruned (median pruner) on XGBoost's per-round validation loss. Every
trial is a nested MLflow run under one ``tune`` run. Outputs: ``models/best_params.json``
(read by train), ``metrics/tune.json`` and ``plots/tune/history.csv``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cycleml.config import Params
from cycleml.data.schema import Schema
from cycleml.files import read_json, write_csv, write_json
from cycleml.paths import Paths
from cycleml.tuning.objective import TrialData
from cycleml.tuning.result import TuneResult
from cycleml.tuning.search import search
from cycleml.tuning.space import check_space, resolve_objective
from cycleml.tuning.study import fingerprint

__all__ = ["run"]

_HISTORY_COLUMNS = ["trial", "value", "best_so_far", "state"]


def run(params: Params, paths: Paths) -> TuneResult:
    """Run (or resume) the study; write the best params for train."""
    if not params.tune.enabled:
        return _disabled(params, paths)

    schema = Schema.model_validate(read_json(paths.schema))
    objective = resolve_objective(params.tune.objective, schema, params.goals)
    check_space(params.tune.search_space, params.train.xgboost)
    data = TrialData(
        schema, pd.read_parquet(paths.split("train")), pd.read_parquet(paths.split("valid"))
    )
    name = f"{params.tune.study_name}-{fingerprint(params, schema, objective, paths)}"
    result, history = search(params, paths, data, objective, name)
    _write_outputs(paths, result, history)
    return result


def _disabled(params: Params, paths: Paths) -> TuneResult:
    note = "tune.enabled is false: train uses train.xgboost as it is"
    write_json(
        paths.best_params,
        {"xgboost": {}, "objective": params.tune.objective, "note": note},
    )
    write_json(paths.metrics("tune"), {"enabled": 0})
    write_csv(paths.plot("tune/history.csv"), pd.DataFrame(columns=_HISTORY_COLUMNS))
    return TuneResult(enabled=False, objective=params.tune.objective, direction="", note=note)


def _write_outputs(paths: Paths, result: TuneResult, history: list[dict[str, Any]]) -> None:
    best = {
        "xgboost": result.best,
        "objective": result.objective,
        "direction": result.direction,
        "value": result.value,
        "untuned_value": result.untuned_value,
        "study": result.study,
        "trials": {"complete": result.complete, "pruned": result.pruned},
    }
    if result.note:
        best["note"] = result.note
    write_json(paths.best_params, best)
    write_json(
        paths.metrics("tune"),
        {
            "best_value": result.value,
            "untuned_value": result.untuned_value,
            "improvement": result.improvement,
            "trials_complete": result.complete,
            "trials_pruned": result.pruned,
        },
    )
    write_csv(paths.plot("tune/history.csv"), pd.DataFrame(history, columns=_HISTORY_COLUMNS))
