"""One search: open (or resume) the study, run its missing trials here and in worker
processes under one MLflow ``tune`` run (each trial a nested run), log the summary there."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cycleml.config import Params
from cycleml.paths import Paths
from cycleml.tuning.objective import TrialData, make_objective, now_ms, score
from cycleml.tuning.result import TuneResult, summarise
from cycleml.tuning.space import direction
from cycleml.tuning.study import count_finished, open_study, stop_at_n_trials, trial_history
from cycleml.tuning.workers import (
    WorkerJob,
    join_workers,
    one_thread_each,
    shares,
    start_workers,
    stop_workers,
)

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

__all__ = ["search"]

_MLFLOW_BATCH = 1000


def search(
    params: Params, paths: Paths, data: TrialData, objective: str, name: str
) -> tuple[TuneResult, list[dict[str, Any]]]:
    """Run (or resume) study ``name`` up to ``tune.n_trials``; the result and its history.

    ``objective`` is resolved (:func:`~cycleml.tuning.space.resolve_objective`) and the
    search space checked before this is called.
    """
    import mlflow
    import optuna

    from cycleml.model.tracking import configure, lineage_tags

    study_direction = direction(objective)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = open_study(params, name, study_direction, paths)
        resumed = count_finished(study)
        missing = max(params.tune.n_trials - resumed, 0)

        client = configure(params.tracking, paths)
        tags = {**lineage_tags(params, paths), "optuna.study": name}
        with mlflow.start_run(run_name="tune", tags=tags) as parent:
            job = WorkerJob(
                params,
                str(paths.root),
                name,
                study_direction,
                objective,
                parent.info.experiment_id,
                parent.info.run_id,
            )
            untuned = _run_trials(study, job, missing, data, client, parent)
            result = summarise(study, objective, study_direction, untuned, resumed)
            result.run_id = parent.info.run_id
            history = trial_history(study)
            _log_parent(client, parent.info.run_id, params, result, history)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return result, history


def _run_trials(
    study: optuna.Study,
    job: WorkerJob,
    missing: int,
    data: TrialData,
    client: MlflowClient,
    parent: Any,
) -> float:
    """The ``missing`` trials, shared out between this process and the workers; the
    untuned params' objective value, scored here while the workers start (a few seconds of
    imports)."""
    params = job.params
    mine, *theirs = shares(missing, params.tune.n_jobs)
    helpers = start_workers(job, theirs)
    try:
        untuned = score(params, params.train, data)[job.objective]
        if mine:
            one_thread_each(params.tune.n_jobs)
            study.optimize(
                make_objective(params, data, job.objective, client, parent),
                n_trials=mine,
                timeout=params.tune.timeout,
                # every worker on the shared storage stops at n_trials in total
                callbacks=[stop_at_n_trials(params.tune.n_trials)],
                show_progress_bar=True,
            )
        join_workers(helpers)
    finally:
        stop_workers(helpers)
    return untuned


def _log_parent(
    client: MlflowClient,
    run_id: str,
    params: Params,
    result: TuneResult,
    history: list[dict[str, Any]],
) -> None:
    """Summary, best params and the optimisation history (step = trial number)."""
    from mlflow.entities import Metric, Param

    now = now_ms()
    summary = {
        "n_complete": result.complete,
        "n_pruned": result.pruned,
        "n_ran": result.ran,
        "best_value": result.value,
        "untuned_value": result.untuned_value,
        "improvement": result.improvement,
    }
    metrics = [
        Metric(k, float(v), now, 0)
        for k, v in summary.items()
        if v is not None and math.isfinite(v)
    ]
    for row in history:
        for key, metric in (("value", "trial_value"), ("best_so_far", "best_so_far")):
            if row[key] is not None:
                metrics.append(Metric(metric, float(row[key]), now, row["trial"]))
    for start in range(0, len(metrics), _MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _MLFLOW_BATCH])
    # never the storage URL: a team's PostgreSQL URL may hold a password
    settings = {"n_trials", "n_jobs", "timeout", "seed", "pruning", "study_name"}
    logged = {f"tune.{k}": v for k, v in params.tune.model_dump().items() if k in settings}
    logged.update({f"best.{k}": v for k, v in result.best.items()})
    logged.update(objective=result.objective, direction=result.direction, study=result.study)
    logged["resumed_trials"] = result.resumed
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in logged.items()])
    space = {k: v.model_dump() for k, v in params.tune.search_space.items()}
    client.log_dict(run_id, space, "search_space.json")
