"""Stage `tune` against real Optuna (SQLite) and MLflow stores in a temporary project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from cycleml.config import Params
from cycleml.data.schema import Schema
from cycleml.evaluation.evaluator import choose_threshold, evaluate
from cycleml.files import read_json
from cycleml.model.pipeline import fit_pipeline
from cycleml.model.tracking import tracking_uri
from cycleml.stages import tune
from cycleml.tuning.study import PRUNER_WARMUP_ROUNDS, storage_url
from tests.conftest import Project, houses_csv, small_params

pytestmark = pytest.mark.integration

# small and quick: tens of boosting rounds on 1,500 rows, one thread per fit (on a
# shared 2-core machine two OpenMP threads per tiny fit are slower and erratic)
SPACE = {
    "n_estimators": {"type": "int", "low": 20, "high": 80},
    "max_depth": {"type": "int", "low": 2, "high": 5},
    "learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True},
    "subsample": {"type": "categorical", "choices": [0.7, 0.85, 1.0]},
}


def tune_params(project: Project, **tune_block: Any) -> Params:
    raw = small_params(rows=1500, train__xgboost__n_jobs=1)
    raw["tune"].update({"enabled": True, "search_space": SPACE, **tune_block})
    return project.write_params(raw)


def stored_study(project: Project, params: Params, name: str) -> optuna.Study:
    url = storage_url(params.tune.storage, project.paths)
    return optuna.load_study(study_name=name, storage=url)


def children(client: MlflowClient, params: Params, parent_id: str) -> list[Any]:
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    assert experiment is not None
    return list(
        client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    )


def test_tune_writes_best_params_and_resumes_without_test_data(project: Project) -> None:
    params = tune_params(project, n_trials=6)
    project.run_stages(params, "ingest", "validate", "split", "frame")
    project.paths.split("test").unlink()  # tuning must never need the test split

    first = tune.run(params, project.paths)

    assert first.resumed == 0 and first.ran == 6 and first.complete + first.pruned == 6
    best = read_json(project.paths.best_params)
    assert best["objective"] == "profit" and best["direction"] == "maximize"
    assert best["study"] == first.study and best["study"].startswith("cycleml-")
    assert set(best["xgboost"]) == set(SPACE)
    for name, value in best["xgboost"].items():
        dim = SPACE[name]
        if dim["type"] == "categorical":
            assert value in dim["choices"]
        else:
            assert dim["low"] <= value <= dim["high"]
    study = stored_study(project, params, first.study)
    assert best["value"] == study.best_value and best["xgboost"] == study.best_params
    history = pd.read_csv(project.paths.plot("tune/history.csv"))
    assert list(history.columns) == ["trial", "value", "best_so_far", "state"]
    assert history["value"].max() == best["value"] == history["best_so_far"].iloc[-1]

    # the untuned value is a real measurement: train.xgboost as it is, scored on valid
    schema = Schema.model_validate(read_json(project.paths.schema))
    train = pd.read_parquet(project.paths.split("train"))
    valid = pd.read_parquet(project.paths.split("valid"))
    pipeline, _ = fit_pipeline(schema, params.train, train, valid)
    threshold = choose_threshold(pipeline, schema, valid, params.evaluate, params.goals)
    untuned = evaluate(pipeline, schema, valid, threshold, params.goals)[0]["profit"]
    assert best["untuned_value"] == pytest.approx(untuned)
    metrics = read_json(project.paths.metrics("tune"))
    assert metrics["improvement"] == pytest.approx(best["value"] - untuned)
    assert metrics["trials_complete"] == best["trials"]["complete"] == first.complete

    # MLflow: one `tune` run, every trial a finished run nested under it
    client = MlflowClient(tracking_uri(params.tracking, project.paths))
    parent = client.get_run(first.run_id or "")
    assert parent.info.run_name == "tune" and parent.info.status == "FINISHED"
    assert "cycleml.params_hash" in parent.data.tags
    assert parent.data.metrics["best_value"] == best["value"]
    assert parent.data.params["best.max_depth"] == str(best["xgboost"]["max_depth"])
    assert len(client.get_metric_history(first.run_id or "", "trial_value")) == first.complete
    assert len(client.get_metric_history(first.run_id or "", "best_so_far")) == 6
    trials = children(client, params, first.run_id or "")
    assert sorted(r.info.run_name for r in trials) == [f"trial-{n}" for n in range(6)]
    assert {r.info.status for r in trials} == {"FINISHED"}
    assert all("learning_rate" in r.data.params for r in trials)

    # a rerun to 9 trials resumes the same study: 3 more (two at a time), 9 in storage
    more = tune_params(project, n_trials=9, n_jobs=2)
    resumed = tune.run(more, project.paths)
    assert resumed.study == first.study and resumed.resumed == 6 and resumed.ran == 3
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(stored_study(project, more, first.study).get_trials(states=finished)) == 9
    assert len(children(client, more, resumed.run_id or "")) == 3
    assert tune.run(more, project.paths).ran == 0  # nothing missing: no trial runs

    # another objective is another study, never mixed with the profit trials
    other = tune.run(tune_params(project, n_trials=1, objective="roc_auc"), project.paths)
    assert other.study != first.study and other.resumed == 0 and other.ran == 1
    assert read_json(project.paths.best_params)["objective"] == "roc_auc"


def test_hopeless_trials_are_pruned_and_their_runs_finished(project: Project) -> None:
    # learning rates down to 1e-4 cannot catch up within 60 rounds: the median pruner
    # stops them as soon as it may (after 5 trials, from round 10)
    bad_space = {"learning_rate": {"type": "float", "low": 1e-4, "high": 0.5, "log": True}}
    raw = small_params(rows=1500, train__xgboost__n_jobs=1)
    raw["tune"].update(enabled=True, n_trials=12, pruning=True, search_space=bad_space)
    params = project.write_params(raw)
    project.run_stages(params, "ingest", "validate", "split", "frame")

    result = tune.run(params, project.paths)

    assert result.pruned >= 1 and result.complete + result.pruned == 12
    history = pd.read_csv(project.paths.plot("tune/history.csv"))
    assert (history["state"] == "PRUNED").sum() == result.pruned
    client = MlflowClient(tracking_uri(params.tracking, project.paths))
    runs = children(client, params, result.run_id or "")
    pruned = [r for r in runs if r.data.tags["optuna.trial_state"] == "PRUNED"]
    assert len(pruned) == result.pruned
    for run in pruned:
        assert run.info.status == "FINISHED" and run.data.tags["optuna.pruned"] == "true"
        assert run.data.metrics["pruned_at_round"] >= PRUNER_WARMUP_ROUNDS
        assert "valid_profit" not in run.data.metrics
    assert read_json(project.paths.best_params)["trials"]["pruned"] == result.pruned


def test_regression_minimises_the_error_cost(project: Project, tmp_path: Path) -> None:
    raw = small_params(rows=1500, train__xgboost__n_jobs=1)
    raw["data"] = {
        "source": {"kind": "file", "path": str(houses_csv(tmp_path / "houses.csv"))},
        "target": "price",
    }
    raw["split"]["strategy"] = "random"
    raw["tune"].update(enabled=True, n_trials=8, search_space=SPACE)
    params = project.write_params(raw)
    project.run_stages(params, "ingest", "validate", "split", "frame")

    result = tune.run(params, project.paths)  # prunes on validation_1-rmse

    best = read_json(project.paths.best_params)
    assert (best["objective"], best["direction"]) == ("error_cost", "minimize")
    assert result.complete + result.pruned == 8
    history = pd.read_csv(project.paths.plot("tune/history.csv"))
    assert history["value"].min() == best["value"] == history["best_so_far"].iloc[-1]
    assert result.improvement == pytest.approx(best["untuned_value"] - best["value"])


def test_disabled_tune_writes_empty_overrides(project: Project) -> None:
    raw = small_params(rows=1500)
    raw["tune"]["enabled"] = False
    params = project.write_params(raw)

    result = tune.run(params, project.paths)  # needs no data at all

    assert not result.enabled
    best = read_json(project.paths.best_params)
    assert best["xgboost"] == {} and "tune.enabled is false" in best["note"]
    assert project.paths.metrics("tune").exists()
    assert project.paths.plot("tune/history.csv").exists()
