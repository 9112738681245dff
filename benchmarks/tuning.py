"""Tuning: trials per minute with 1 and 2 workers, and with and without pruning.

One worker is measured twice: as a user runs it (``tune.n_jobs: 1``, XGBoost on both
cores inside each trial) and at one XGBoost thread per trial, which is what each of two
workers gets; the first comparison is what a user gains, the second how workers scale.

Each configuration is a real `cycleml tune` on the benchmark project's data (its own
study, so nothing resumes), with the same seed and number of trials. Trials per minute
are finished trials over the span from the first trial's start to the last one's end,
read back from the Optuna storage. Pruning is compared at equal best value: the time
each run took to first reach the lower of the two runs' best values.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import BIN, Size, median_of, run


def _study(project: Path, prefix: str) -> Any:
    import optuna

    storage = f"sqlite:///{project / 'optuna.db'}"
    names = [n for n in optuna.get_all_study_names(storage) if n.startswith(prefix + "-")]
    if len(names) != 1:
        raise RuntimeError(f"expected one study named {prefix}-*, found {names}")
    return optuna.load_study(study_name=names[0], storage=storage)


def _tune(
    project: Path, size: Size, label: str, workers: int, pruning: bool, threads: int | None = None
) -> dict[str, Any]:
    from optuna.trial import TrialState

    raw = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    study_name = f"bench-{label}-{dt.datetime.now():%H%M%S%f}"
    raw["tune"].update(
        enabled=True,
        n_trials=size.tune_trials,
        n_jobs=workers,
        pruning=pruning,
        study_name=study_name,
        timeout=None,
    )
    params = project / f"params-{label}.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    run([str(BIN / "cycleml"), "tune", "-p", str(params)], project)
    study = _study(project, study_name)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    start = min(t.datetime_start for t in trials)
    span = (max(t.datetime_complete for t in trials) - start).total_seconds()
    maximize = study.direction.name == "MAXIMIZE"
    finished = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.datetime_complete
    )
    return {
        "trials": len(trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "trials_per_min": len(trials) / (span / 60),
        "best_value": study.best_value,
        "maximize": maximize,
        "curve": [((t.datetime_complete - start).total_seconds(), t.value) for t in finished],
    }


def _time_to(curve: list[tuple[float, float]], target: float, maximize: bool) -> float | None:
    for seconds, value in curve:
        if (value >= target) if maximize else (value <= target):
            return seconds
    return None


def measure(project: Path, size: Size) -> dict[str, Any]:
    # one worker as a user runs it (XGBoost on every core), one worker at the two-worker
    # setting's one thread per trial, two workers, and one worker without pruning
    configs = {
        "one_worker": (1, True, None),
        "one_worker_one_thread": (1, True, 1),
        "two_workers": (2, True, None),
        "no_pruning": (1, False, None),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for i in range(size.repeats):
        for name, (workers, pruning, threads) in configs.items():
            runs[name].append(_tune(project, size, f"{name}-{i}", workers, pruning, threads))
    # pruning at equal best value: per repeat, the time to the lower of the two bests
    equal = []
    for pruned, plain in zip(runs["one_worker"], runs["no_pruning"], strict=True):
        maximize = pruned["maximize"]
        pick = min if maximize else max
        target = pick(pruned["best_value"], plain["best_value"])
        equal.append(
            {
                "target": target,
                "pruning_s": _time_to(pruned["curve"], target, maximize),
                "no_pruning_s": _time_to(plain["curve"], target, maximize),
            }
        )
    out: dict[str, Any] = {}
    for name, results in runs.items():
        out[name] = median_of([{k: v for k, v in r.items() if k != "curve"} for r in results])
    out["speedup_two_workers"] = (
        out["two_workers"]["trials_per_min"] / out["one_worker"]["trials_per_min"]
    )
    out["speedup_at_equal_threads"] = (
        out["two_workers"]["trials_per_min"] / out["one_worker_one_thread"]["trials_per_min"]
    )
    out["equal_best"] = (
        median_of(equal) if all(e["pruning_s"] is not None for e in equal) else equal[0]
    )
    out["trials_per_run"] = size.tune_trials
    return out
