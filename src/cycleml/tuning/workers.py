"""More trials at once: worker processes on the same study (``tune.n_jobs`` - 1 of them).

Processes, not threads: a trial spends much of its time in pandas, sklearn, MLflow and
Optuna code that holds the GIL, so threads barely overlap. Each worker is a fresh
interpreter (spawn) that imports :func:`work` by module path, with its own sampler seed;
they share the study through its storage and the trial runs through the MLflow store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from cycleml.config import Params
from cycleml.data.schema import Schema
from cycleml.files import read_json
from cycleml.tuning.objective import TrialData, make_objective
from cycleml.tuning.space import TuneError
from cycleml.tuning.study import open_study, stop_at_n_trials

__all__ = [
    "WorkerJob",
    "join_workers",
    "one_thread_each",
    "shares",
    "start_workers",
    "stop_workers",
    "work",
]


@dataclass(frozen=True)
class WorkerJob:
    """What a worker process needs to join the study (all picklable)."""

    params: Params
    root: str
    study: str
    direction: str
    objective: str
    experiment_id: str
    parent_run_id: str


def shares(trials: int, workers: int) -> list[int]:
    """``trials`` split over ``workers`` as evenly as possible, so they run exactly that
    many together (a shared cap alone lets every worker start one more)."""
    return [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]


def start_workers(job: WorkerJob, trial_shares: list[int]) -> list[Any]:
    """More worker processes on the same study, each running its share of the trials
    (numbered from 1: this process is worker 0)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = []
    for worker, share in enumerate(trial_shares, start=1):
        if not share:
            continue
        process = context.Process(
            target=work, args=(job, worker, share), name=f"cycleml-tune-{worker}", daemon=True
        )
        process.start()
        workers.append(process)
    return workers


def work(job: WorkerJob, worker: int, trials: int) -> None:
    """A worker process: ``trials`` trials of the shared study."""
    import warnings
    from pathlib import Path
    from types import SimpleNamespace

    import optuna

    from cycleml.model.tracking import configure
    from cycleml.paths import project_paths

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params, paths = job.params, project_paths(Path(job.root))
    one_thread_each(params.tune.n_jobs)
    schema = Schema.model_validate(read_json(paths.schema))
    data = TrialData(
        schema, pd.read_parquet(paths.split("train")), pd.read_parquet(paths.split("valid"))
    )
    study = open_study(params, job.study, job.direction, paths, worker=worker)
    client = configure(params.tracking, paths)
    parent = SimpleNamespace(
        info=SimpleNamespace(experiment_id=job.experiment_id, run_id=job.parent_run_id)
    )
    study.optimize(
        make_objective(params, data, job.objective, client, parent),
        n_trials=trials,
        timeout=params.tune.timeout,
        callbacks=[stop_at_n_trials(params.tune.n_trials)],
    )


def one_thread_each(workers: int) -> None:
    """With several workers, each uses one thread: OpenMP and BLAS pools sized for every
    core would make the workers' threads fight over the cores (measured: a trial ran
    about twice as slow beside a second worker)."""
    if workers > 1:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def join_workers(workers: list[Any]) -> None:
    """Wait for every worker; a failed one fails the search (its trials stay stored)."""
    failed = []
    for process in workers:
        process.join()
        if process.exitcode != 0:
            failed.append(f"{process.name} (exit {process.exitcode})")
    if failed:
        raise TuneError(
            f"tune: worker process(es) {', '.join(failed)} failed; their error is printed "
            "above. Finished trials are kept in the study: a rerun resumes it"
        )


def stop_workers(workers: list[Any]) -> None:
    """After an error or Ctrl-C in this process: end the others, never leave them running."""
    for process in workers:
        if process.is_alive():
            process.terminate()
            process.join(10)
