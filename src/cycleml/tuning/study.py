"""The Optuna study in its storage: its name, opening (or resuming) it, reading its trials.

The study lives in ``tune.storage`` (SQLite by default) under the name
``<study_name>-<fingerprint>``. The fingerprint covers everything a trial's value depends
on — objective, search space, the train and valid files' md5, the schema, the other train
params, the goals and the threshold rule — so a rerun with the same inputs *resumes* the
study and runs only the trials still missing to reach ``n_trials`` (complete + pruned),
while changed inputs start a fresh study instead of mixing incomparable values.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from cycleml.config import Params
from cycleml.data.schema import Schema
from cycleml.paths import Paths
from cycleml.tuning.space import TuneError, direction

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PRUNER_STARTUP_TRIALS",
    "PRUNER_WARMUP_ROUNDS",
    "count_finished",
    "fingerprint",
    "open_study",
    "stop_at_n_trials",
    "storage_url",
    "trial_history",
]

# Median pruner: judge no trial before this many have finished, nor before this round.
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_ROUNDS = 10


def storage_url(storage: str, paths: Paths) -> str:
    """``tune.storage`` with a relative SQLite path made absolute under the project root."""
    return paths.database_url(storage)


def fingerprint(params: Params, schema: Schema, objective: str, paths: Paths) -> str:
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


def open_study(
    params: Params, name: str, study_direction: str, paths: Paths, worker: int = 0
) -> optuna.Study:
    """The study in its storage; ``worker`` > 0 samples from its own seed (workers with one
    seed would propose the same first trials)."""
    import optuna

    from cycleml.model.tracking import redact, store_setup_lock

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
            f"change tune.study_name or delete it from {redact(params.tune.storage)}"
        )
    return study


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: complete and pruned."""
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=finished))


def stop_at_n_trials(n_trials: int) -> optuna.study.MaxTrialsCallback:
    """Stops every worker on the shared storage at ``n_trials`` finished in total."""
    import optuna
    from optuna.trial import TrialState

    return optuna.study.MaxTrialsCallback(n_trials, (TrialState.COMPLETE, TrialState.PRUNED))


def trial_history(study: optuna.Study) -> list[dict[str, Any]]:
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
