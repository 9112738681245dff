"""Stage `tune`: search ``train.xgboost`` with Optuna, judged on the validation data.

Each trial fits the whole pipeline with the trial's values over ``train.xgboost`` and
scores it on the validation split with ``tune.objective`` (``auto`` = the business KPI,
for a binary problem ``profit`` at the threshold evaluate would choose). The test split is
never read: it stays the untouched judge of the model train fits afterwards.

The study lives in ``tune.storage`` (SQLite by default) under the name
``<study_name>-<fingerprint>``. The fingerprint covers everything a trial's value depends
on — objective, search space, the train and valid files' md5, the schema, the other train
params, the goals and the threshold rule — so a rerun with the same inputs *resumes* the
study and runs only the trials still missing to reach ``n_trials`` (complete + pruned),
while changed inputs start a fresh study instead of mixing incomparable values.

Hopeless trials are pruned (median pruner) on XGBoost's per-round validation loss. Every
trial is a nested MLflow run under one ``tune`` run. Outputs: ``models/best_params.json``
(read by train), ``metrics/tune.json`` and ``plots/tune/history.csv``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from cycleml.config import (
    CLASSIFICATION_KPIS,
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    GoalsParams,
    Params,
    SearchDimension,
    TrainParams,
    XGBoostParams,
)
from cycleml.data.schema import Schema
from cycleml.evaluation.business import kpi_name
from cycleml.files import read_json, write_csv, write_json
from cycleml.paths import Paths

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

__all__ = [
    "TuneError",
    "TuneResult",
    "check_space",
    "direction",
    "objective_choices",
    "resolve_objective",
    "run",
    "storage_url",
    "suggest",
]

# Median pruner: judge no trial before this many have finished, nor before this round.
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_ROUNDS = 10
# Report the validation loss to the study every this many rounds: each report is a storage
# write (~5 ms on SQLite), so reporting all 600 rounds would cost more than the fit.
REPORT_EVERY_ROUNDS = 10
# XGBoost's per-round validation metric (see modeling._estimator); lower is better for all.
_EVAL_METRIC = {"binary": "logloss", "multiclass": "mlogloss", "regression": "rmse"}
_MLFLOW_BATCH = 1000
_HISTORY_COLUMNS = ["trial", "value", "best_so_far", "state"]
_NO_TRIAL = "no trial completed: train keeps train.xgboost as it is"


class TuneError(ValueError):
    """tune's params cannot work: an unknown objective, a search range train would refuse."""


@dataclass
class TuneResult:
    """What a tune run did; ``resumed`` counts the study's finished trials before this run."""

    enabled: bool
    objective: str
    direction: str
    study: str = ""
    resumed: int = 0
    ran: int = 0
    complete: int = 0
    pruned: int = 0
    value: float | None = None
    untuned_value: float | None = None
    improvement: float | None = None
    best: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    note: str = ""

    def lines(self) -> list[str]:
        """Human-readable summary for the CLI."""
        if not self.enabled:
            return [self.note]
        origin = (
            f"resumed study {self.study} with {self.resumed} finished trials"
            if self.resumed
            else f"new study {self.study}"
        )
        lines = [
            origin,
            f"ran {self.ran} trials; the study has {self.complete} complete, "
            f"{self.pruned} pruned ({self.direction} {self.objective} on validation data)",
        ]
        if self.value is None:
            lines.append(self.note)
        else:
            gain = "" if self.improvement is None else f" (improvement {self.improvement:+,.4f})"
            lines.append(
                f"best {self.objective} {self.value:,.4f} vs untuned "
                f"{_short(self.untuned_value)}{gain}"
            )
            lines.append(", ".join(f"{k}={_short(v)}" for k, v in self.best.items()))
        if self.run_id:
            lines.append(f"MLflow run {self.run_id}")
        return lines


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- the objective ---------------------------------------------------------------------


def _problem(schema: Schema) -> str:
    if schema.task == "regression":
        return "regression"
    return "binary" if schema.is_binary else "multiclass"


def objective_choices(schema: Schema, goals: GoalsParams) -> tuple[str, ...]:
    """Every name ``evaluate.evaluate`` reports for this problem that can rank models."""
    if schema.task == "regression":
        band = ("within_band",) if goals.regression.error_band is not None else ()
        return (*REGRESSION_METRICS, "error_cost", *band)
    if schema.is_binary:
        return (*CLASSIFICATION_METRICS, *CLASSIFICATION_KPIS)
    return CLASSIFICATION_METRICS


def resolve_objective(objective: str, schema: Schema, goals: GoalsParams) -> str:
    """``tune.objective`` as a metric name: ``auto`` is the problem's business KPI."""
    name = kpi_name(schema) if objective == "auto" else objective
    choices = objective_choices(schema, goals)
    if name not in choices:
        raise TuneError(
            f"tune.objective: {objective!r} is not a metric of a {_problem(schema)} model; "
            f"choose auto (= {kpi_name(schema)}) or one of {', '.join(choices)}"
        )
    return name


def direction(objective: str) -> str:
    """Optuna's study direction for a resolved objective name."""
    return "minimize" if objective in LOWER_IS_BETTER else "maximize"


# --- the search space ------------------------------------------------------------------


def check_space(space: dict[str, SearchDimension], base: XGBoostParams) -> None:
    """Refuse a search space whose ends are not valid ``train.xgboost`` values.

    ``with_overrides`` does not re-validate, so a ``subsample`` up to 1.5 would otherwise
    reach XGBoost; this fails first, naming the key.
    """
    from pydantic import ValidationError

    for name, dim in space.items():
        where = f"tune.search_space.{name}"
        if dim.log and dim.type != "categorical" and (dim.low or 0) <= 0:
            raise TuneError(f"{where}: a log-scaled range needs low > 0, got {dim.low}")
        if dim.type == "categorical":
            values: list[Any] = list(dim.choices or [])
        elif dim.type == "int":
            values = [math.ceil(dim.low or 0), math.floor(dim.high or 0)]
        else:
            values = [dim.low, dim.high]
        for value in values:
            try:
                XGBoostParams.model_validate({**base.model_dump(), name: value})
            except ValidationError as err:
                msg = err.errors()[0]["msg"]
                raise TuneError(
                    f"{where}: {value!r} is not a valid train.xgboost.{name}: {msg}"
                ) from None


def suggest(trial: optuna.trial.BaseTrial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """The trial's values for every dimension of ``tune.search_space``."""
    values: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "categorical":
            values[name] = trial.suggest_categorical(name, list(dim.choices or []))
        elif dim.type == "int":
            low, high = math.ceil(dim.low or 0), math.floor(dim.high or 0)
            values[name] = trial.suggest_int(name, low, high, log=dim.log)
        else:
            values[name] = trial.suggest_float(name, dim.low or 0.0, dim.high or 0.0, log=dim.log)
    return values


# --- the study -------------------------------------------------------------------------


def storage_url(storage: str, paths: Paths) -> str:
    """``tune.storage`` with a relative SQLite path made absolute under the project root."""
    return paths.database_url(storage)


def _fingerprint(params: Params, schema: Schema, objective: str, paths: Paths) -> str:
    """8 hex digits over every input a trial's value depends on (see the module docstring)."""
    from cycleml.model.tracking import file_md5

    searched = set(params.tune.search_space)
    train = params.train.model_dump(mode="json")
    train["xgboost"] = {
        k: v for k, v in train["xgboost"].items() if k not in searched and k != "n_jobs"
    }
    inputs = {
        "objective": objective,
        "direction": direction(objective),
        "search_space": {k: v.model_dump(mode="json") for k, v in params.tune.search_space.items()},
        "schema": schema.model_dump(mode="json"),
        "data": {part: file_md5(paths.split(part)) for part in ("train", "valid")},
        "train": train,
        "goals": params.goals.model_dump(mode="json"),
        "threshold": params.evaluate.threshold,
    }
    canonical = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def _open_study(
    params: Params, name: str, study_direction: str, paths: Paths, worker: int = 0
) -> optuna.Study:
    """The study in its storage; ``worker`` > 0 samples from its own seed (workers with one
    seed would propose the same first trials)."""
    import optuna

    from cycleml.model.tracking import store_setup_lock

    url = storage_url(params.tune.storage, paths)
    engine: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        # parallel workers write to one file: wait for the lock instead of failing
        engine = {"connect_args": {"timeout": 60}}
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_ROUNDS
        )
        if params.tune.pruning
        else optuna.pruners.NopPruner()
    )
    # tune workers started together on a new storage file would race creating its schema
    with store_setup_lock(url):
        study = optuna.create_study(
            storage=optuna.storages.RDBStorage(url, engine_kwargs=engine),
            sampler=optuna.samplers.TPESampler(seed=params.tune.seed + worker),
            pruner=pruner,
            study_name=name,
            direction=study_direction,  # type: ignore[arg-type]
            load_if_exists=True,
        )
    if study.direction.name.lower() != study_direction:
        raise TuneError(
            f"tune: the stored study {name!r} maximises/minimises the other way; "
            f"change tune.study_name or delete it from {params.tune.storage}"
        )
    return study


class _LossReport:
    """The trial as XGBoost's pruning callback sees it: signed, every few rounds.

    XGBoost reports a loss (lower is better) each round, but the median pruner reads
    intermediate values in the study's direction, so for a maximised KPI it would prune the
    best trials; reporting ``-loss`` keeps the two in agreement. Only every ``every``-th
    round reaches the storage (and is judged): trials still compare at the same rounds.
    """

    def __init__(self, trial: optuna.Trial, sign: float, every: int) -> None:
        self._trial = trial
        self._sign = sign
        self._every = every
        self._due = False
        self.last_step = 0

    def report(self, value: float, step: int) -> None:
        self.last_step = step
        self._due = step % self._every == 0
        if self._due:
            self._trial.report(self._sign * value, step)

    def should_prune(self) -> bool:
        return self._due and self._trial.should_prune()


# --- scoring ---------------------------------------------------------------------------


@dataclass
class _Data:
    schema: Schema
    train: pd.DataFrame
    valid: pd.DataFrame


def _score(
    params: Params,
    train_params: TrainParams,
    data: _Data,
    callbacks: list[Any] | None = None,
) -> dict[str, float]:
    """Fit with ``train_params`` and score on valid exactly as evaluate would (no test)."""
    from cycleml.evaluation.evaluator import choose_threshold, evaluate
    from cycleml.model.pipeline import fit_pipeline

    pipeline, _ = fit_pipeline(data.schema, train_params, data.train, data.valid, callbacks)
    threshold = choose_threshold(pipeline, data.schema, data.valid, params.evaluate, params.goals)
    metrics, _ = evaluate(pipeline, data.schema, data.valid, threshold, params.goals)
    return metrics


def _eval_key(schema: Schema) -> str:
    # fit_pipeline's eval_set is [train, valid]: valid is validation_1
    return f"validation_1-{_EVAL_METRIC[_problem(schema)]}"


# --- MLflow ----------------------------------------------------------------------------


def _now() -> int:
    return int(time.time() * 1000)


def _log_metrics(client: MlflowClient, run_id: str, metrics: list[Any]) -> None:
    for start in range(0, len(metrics), _MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _MLFLOW_BATCH])


def _make_objective(
    params: Params,
    data: _Data,
    objective: str,
    client: MlflowClient,
    parent: Any,
) -> Any:
    """The Optuna objective: one trial = one nested MLflow run, made with the client.

    Trials may run in threads, and MLflow's fluent API keeps its active run per thread,
    so each trial's run is created, logged and ended explicitly.
    """
    import optuna
    from mlflow.entities import Metric, Param, RunTag
    from optuna_integration.xgboost import XGBoostPruningCallback

    from cycleml.model.pipeline import with_overrides

    space = params.tune.search_space
    sign = 1.0 if direction(objective) == "minimize" else -1.0
    key = _eval_key(data.schema)

    def trial_objective(trial: optuna.Trial) -> float:
        values = suggest(trial, space)
        overrides = dict(values)
        if params.tune.n_jobs > 1:
            overrides["n_jobs"] = 1  # parallel trials: one thread each, no oversubscription
        train_params = with_overrides(params.train, overrides)
        run = client.create_run(
            parent.info.experiment_id,
            run_name=f"trial-{trial.number}",
            tags={
                "mlflow.parentRunId": parent.info.run_id,
                "optuna.study": trial.study.study_name,
                "optuna.trial_number": str(trial.number),
            },
        )
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])
        reporter = _LossReport(trial, sign, REPORT_EVERY_ROUNDS)
        # the callback only reports and asks should_prune: the signed view suffices
        callback = XGBoostPruningCallback(cast("optuna.Trial", reporter), key)
        try:
            metrics = _score(params, train_params, data, [callback])
        except optuna.TrialPruned:
            step = reporter.last_step
            client.log_batch(
                run_id,
                metrics=[Metric("pruned_at_round", float(step), _now(), 0)],
                tags=[RunTag("optuna.trial_state", "PRUNED"), RunTag("optuna.pruned", "true")],
            )
            client.set_terminated(run_id, "FINISHED")  # pruning is a decision, not a failure
            raise
        except BaseException:
            client.set_tag(run_id, "optuna.trial_state", "FAIL")
            client.set_terminated(run_id, "FAILED")
            raise
        value = metrics[objective]
        state = "COMPLETE" if math.isfinite(value) else "FAIL"  # Optuna fails a NaN value
        finite = {f"valid_{k}": v for k, v in metrics.items() if math.isfinite(v)}
        if state == "COMPLETE":
            finite["objective_value"] = value
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, _now(), 0) for k, v in finite.items()],
            tags=[RunTag("optuna.trial_state", state), RunTag("optuna.pruned", "false")],
        )
        client.set_terminated(run_id, "FINISHED" if state == "COMPLETE" else "FAILED")
        return value

    return trial_objective


# --- parallel workers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to join the study (all picklable)."""

    params: Params
    root: str
    study: str
    direction: str
    objective: str
    experiment_id: str
    parent_run_id: str


def _shares(trials: int, workers: int) -> list[int]:
    """``trials`` split over ``workers`` as evenly as possible, so they run exactly that
    many together (a shared cap alone lets every worker start one more)."""
    return [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]


def _start_workers(job: _Job, shares: list[int]) -> list[Any]:
    """More worker processes on the same study (``tune.n_jobs`` - 1), each running its
    share of the trials.

    Processes, not threads: a trial spends much of its time in pandas, sklearn, MLflow and
    Optuna code that holds the GIL, so threads barely overlap. Each worker is a fresh
    interpreter (spawn) with its own sampler seed; they share the study through its
    storage and the trial runs through the MLflow store.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = []
    for worker, share in enumerate(shares, start=1):
        if not share:
            continue
        process = context.Process(
            target=_work, args=(job, worker, share), name=f"cycleml-tune-{worker}", daemon=True
        )
        process.start()
        workers.append(process)
    return workers


def _work(job: _Job, worker: int, trials: int) -> None:
    """A worker process: ``trials`` trials of the shared study."""
    import warnings
    from pathlib import Path
    from types import SimpleNamespace

    import optuna
    from optuna.trial import TrialState

    from cycleml.model.tracking import configure
    from cycleml.paths import project_paths

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params, paths = job.params, project_paths(Path(job.root))
    _one_thread_each(params.tune.n_jobs)
    schema = Schema.model_validate(read_json(paths.schema))
    data = _Data(
        schema, pd.read_parquet(paths.split("train")), pd.read_parquet(paths.split("valid"))
    )
    study = _open_study(params, job.study, job.direction, paths, worker=worker)
    client = configure(params.tracking, paths)
    parent = SimpleNamespace(
        info=SimpleNamespace(experiment_id=job.experiment_id, run_id=job.parent_run_id)
    )
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    study.optimize(
        _make_objective(params, data, job.objective, client, parent),
        n_trials=trials,
        timeout=params.tune.timeout,
        callbacks=[optuna.study.MaxTrialsCallback(params.tune.n_trials, finished)],
    )


def _one_thread_each(workers: int) -> None:
    """With several workers, each uses one thread: OpenMP and BLAS pools sized for every
    core would make the workers' threads fight over the cores (measured: a trial ran
    about twice as slow beside a second worker)."""
    if workers > 1:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def _join_workers(workers: list[Any]) -> None:
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


def _stop_workers(workers: list[Any]) -> None:
    """After an error or Ctrl-C in this process: end the others, never leave them running."""
    for process in workers:
        if process.is_alive():
            process.terminate()
            process.join(10)


# --- outputs ---------------------------------------------------------------------------


def _history(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: its value (complete only), the best so far, its state."""
    from optuna.trial import TrialState

    rows = []
    best: float | None = None
    minimize = study.direction.name == "MINIMIZE"
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        value = t.value if t.state == TrialState.COMPLETE else None
        if value is not None and (best is None or (value < best if minimize else value > best)):
            best = value
        rows.append({"trial": t.number, "value": value, "best_so_far": best, "state": t.state.name})
    return rows


def _disabled(params: Params, paths: Paths) -> TuneResult:
    note = "tune.enabled is false: train uses train.xgboost as it is"
    write_json(
        paths.best_params,
        {"xgboost": {}, "objective": params.tune.objective, "note": note},
    )
    write_json(paths.metrics("tune"), {"enabled": 0})
    write_csv(paths.plot("tune/history.csv"), pd.DataFrame(columns=_HISTORY_COLUMNS))
    return TuneResult(enabled=False, objective=params.tune.objective, direction="", note=note)


def _log_parent(
    client: MlflowClient,
    run_id: str,
    params: Params,
    result: TuneResult,
    history: list[dict[str, Any]],
) -> None:
    """Summary, best params and the optimisation history (step = trial number)."""
    from mlflow.entities import Metric, Param

    now = _now()
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
        for key, name in (("value", "trial_value"), ("best_so_far", "best_so_far")):
            if row[key] is not None:
                metrics.append(Metric(name, float(row[key]), now, row["trial"]))
    _log_metrics(client, run_id, metrics)
    # never the storage URL: a team's PostgreSQL URL may hold a password
    settings = {"n_trials", "n_jobs", "timeout", "seed", "pruning", "study_name"}
    logged = {f"tune.{k}": v for k, v in params.tune.model_dump().items() if k in settings}
    logged.update({f"best.{k}": v for k, v in result.best.items()})
    logged.update(objective=result.objective, direction=result.direction, study=result.study)
    logged["resumed_trials"] = result.resumed
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in logged.items()])
    space = {k: v.model_dump() for k, v in params.tune.search_space.items()}
    client.log_dict(run_id, space, "search_space.json")


def _summarise(
    study: optuna.Study, objective: str, study_direction: str, untuned: float, resumed: int
) -> TuneResult:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    result = TuneResult(
        enabled=True,
        objective=objective,
        direction=study_direction,
        study=study.study_name,
        resumed=resumed,
        ran=complete + pruned - resumed,
        complete=complete,
        pruned=pruned,
        untuned_value=untuned,
    )
    if not complete:
        result.note = _NO_TRIAL
        return result
    best = study.best_trial
    result.value = float(best.value) if best.value is not None else None
    result.best = dict(best.params)
    if result.value is not None and math.isfinite(untuned):
        sign = -1.0 if study_direction == "minimize" else 1.0
        result.improvement = sign * (result.value - untuned)
    return result


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


def run(params: Params, paths: Paths) -> TuneResult:
    """Run (or resume) the study; write the best params for train."""
    if not params.tune.enabled:
        return _disabled(params, paths)

    import mlflow
    import optuna
    from optuna.trial import TrialState

    from cycleml.model.tracking import configure, lineage_tags

    schema = Schema.model_validate(read_json(paths.schema))
    objective = resolve_objective(params.tune.objective, schema, params.goals)
    study_direction = direction(objective)
    check_space(params.tune.search_space, params.train.xgboost)
    data = _Data(
        schema, pd.read_parquet(paths.split("train")), pd.read_parquet(paths.split("valid"))
    )
    name = f"{params.tune.study_name}-{_fingerprint(params, schema, objective, paths)}"
    finished = (TrialState.COMPLETE, TrialState.PRUNED)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _open_study(params, name, study_direction, paths)
        resumed = len(study.get_trials(deepcopy=False, states=finished))
        missing = max(params.tune.n_trials - resumed, 0)

        client = configure(params.tracking, paths)
        tags = {**lineage_tags(params, paths), "optuna.study": name}
        with mlflow.start_run(run_name="tune", tags=tags) as parent:
            job = _Job(
                params,
                str(paths.root),
                name,
                study_direction,
                objective,
                parent.info.experiment_id,
                parent.info.run_id,
            )
            # the missing trials, shared out; the other workers start (a few seconds of
            # imports) while this one scores the untuned baseline
            mine, *theirs = _shares(missing, params.tune.n_jobs)
            helpers = _start_workers(job, theirs)
            try:
                untuned = _score(params, params.train, data)[objective]
                if mine:
                    _one_thread_each(params.tune.n_jobs)
                    study.optimize(
                        _make_objective(params, data, objective, client, parent),
                        n_trials=mine,
                        timeout=params.tune.timeout,
                        # every worker on the shared storage stops at n_trials in total
                        callbacks=[optuna.study.MaxTrialsCallback(params.tune.n_trials, finished)],
                        show_progress_bar=True,
                    )
                _join_workers(helpers)
            finally:
                _stop_workers(helpers)
            result = _summarise(study, objective, study_direction, untuned, resumed)
            result.run_id = parent.info.run_id
            history = _history(study)
            _log_parent(client, parent.info.run_id, params, result, history)
    finally:
        optuna.logging.set_verbosity(verbosity)

    _write_outputs(paths, result, history)
    return result
