"""One trial: fit with the trial's values, score on validation data, log a nested MLflow run.

Hopeless trials are pruned (median pruner) on XGBoost's per-round validation loss; the test
split is never read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from cycleml.config import Params, TrainParams
from cycleml.data.schema import Schema
from cycleml.tuning.space import direction, problem, suggest

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

__all__ = [
    "REPORT_EVERY_ROUNDS",
    "LossReport",
    "TrialData",
    "make_objective",
    "now_ms",
    "score",
]

# Report the validation loss to the study every this many rounds: each report is a storage
# write (~5 ms on SQLite), so reporting all 600 rounds would cost more than the fit.
REPORT_EVERY_ROUNDS = 10
# XGBoost's per-round validation metric (see model.pipeline._estimator); lower is better
# for all.
_EVAL_METRIC = {"binary": "logloss", "multiclass": "mlogloss", "regression": "rmse"}


@dataclass
class TrialData:
    """What every trial fits and scores on: the schema, the train and valid splits."""

    schema: Schema
    train: pd.DataFrame
    valid: pd.DataFrame


def now_ms() -> int:
    """MLflow's timestamp: milliseconds since the epoch."""
    return int(time.time() * 1000)


def score(
    params: Params,
    train_params: TrainParams,
    data: TrialData,
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
    return f"validation_1-{_EVAL_METRIC[problem(schema)]}"


class LossReport:
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


def _start_trial_run(
    client: MlflowClient, parent: Any, trial: optuna.Trial, values: dict[str, Any]
) -> str:
    """The trial's nested run under ``parent``, with its values as params; its id."""
    from mlflow.entities import Param

    run = client.create_run(
        parent.info.experiment_id,
        run_name=f"trial-{trial.number}",
        tags={
            "mlflow.parentRunId": parent.info.run_id,
            "optuna.study": trial.study.study_name,
            "optuna.trial_number": str(trial.number),
        },
    )
    run_id: str = run.info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])
    return run_id


def _end_pruned_run(client: MlflowClient, run_id: str, step: int) -> None:
    from mlflow.entities import Metric, RunTag

    client.log_batch(
        run_id,
        metrics=[Metric("pruned_at_round", float(step), now_ms(), 0)],
        tags=[RunTag("optuna.trial_state", "PRUNED"), RunTag("optuna.pruned", "true")],
    )
    client.set_terminated(run_id, "FINISHED")  # pruning is a decision, not a failure


def _end_scored_run(
    client: MlflowClient, run_id: str, metrics: dict[str, float], value: float
) -> None:
    from mlflow.entities import Metric, RunTag

    state = "COMPLETE" if math.isfinite(value) else "FAIL"  # Optuna fails a NaN value
    finite = {f"valid_{k}": v for k, v in metrics.items() if math.isfinite(v)}
    if state == "COMPLETE":
        finite["objective_value"] = value
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now_ms(), 0) for k, v in finite.items()],
        tags=[RunTag("optuna.trial_state", state), RunTag("optuna.pruned", "false")],
    )
    client.set_terminated(run_id, "FINISHED" if state == "COMPLETE" else "FAILED")


def make_objective(
    params: Params,
    data: TrialData,
    objective: str,
    client: MlflowClient,
    parent: Any,
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: one trial = one nested MLflow run, made with the client.

    Trials may run in threads, and MLflow's fluent API keeps its active run per thread,
    so each trial's run is created, logged and ended explicitly.
    """
    import optuna
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
        run_id = _start_trial_run(client, parent, trial, values)
        reporter = LossReport(trial, sign, REPORT_EVERY_ROUNDS)
        # the callback only reports and asks should_prune: the signed view suffices
        callback = XGBoostPruningCallback(cast("optuna.Trial", reporter), key)
        try:
            metrics = score(params, train_params, data, [callback])
        except optuna.TrialPruned:
            _end_pruned_run(client, run_id, reporter.last_step)
            raise
        except BaseException:
            client.set_tag(run_id, "optuna.trial_state", "FAIL")
            client.set_terminated(run_id, "FAILED")
            raise
        value = metrics[objective]
        _end_scored_run(client, run_id, metrics, value)
        return value

    return trial_objective
