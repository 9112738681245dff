"""The stages in-process against a real MLflow store (SQLite) in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from cycleml.files import read_json
from cycleml.model.tracking import file_md5, tracking_uri
from tests.conftest import Project, houses_csv, small_params

pytestmark = pytest.mark.integration


def client_for(project: Project) -> MlflowClient:
    params = project.write_params(small_params())
    return MlflowClient(tracking_uri(params.tracking, project.paths))


def test_first_model_becomes_champion_with_lineage(project: Project) -> None:
    params = project.write_params(small_params())
    results = project.run_stages(params)

    metrics = read_json(project.paths.metrics("evaluate"))
    promised = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"}
    kpis = {"profit", "profit_contact_all", "profit_contact_none", "profit_uplift"}
    assert set(metrics) == promised | kpis | {"decision_threshold"}
    assert metrics["roc_auc"] > 0.7
    decision = results["register"]
    assert decision.registered and decision.alias == "champion" and decision.version == "1"

    client = client_for(project)
    version = client.get_model_version_by_alias("cycleml-churn", "champion")
    tags = version.tags
    assert tags["cycleml.data.train.md5"] == file_md5(project.paths.split("train"))
    assert tags["cycleml.data.test.md5"] == file_md5(project.paths.split("test"))
    assert len(tags["cycleml.params_hash"]) == 16
    assert tags["cycleml.gate"] == "passed" and tags["cycleml.decision"] == "champion"
    assert float(tags["test_roc_auc"]) == pytest.approx(metrics["roc_auc"], rel=1e-5)

    run = client.get_run(version.run_id)
    assert run.data.tags["cycleml.data.train.md5"] == tags["cycleml.data.train.md5"]
    assert run.data.metrics["test_roc_auc"] == pytest.approx(metrics["roc_auc"])
    assert "valid_roc_auc" in run.data.metrics and "best_iteration" in run.data.metrics
    assert run.data.params["train.xgboost.n_estimators"] == "60"
    history = client.get_metric_history(run.info.run_id, "learning_curve_valid")
    assert len(history) > 5

    # the registered model is the whole pipeline: raw rows in, probabilities out
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model("models:/cycleml-churn@champion")
    test = pd.read_parquet(project.paths.split("test"))
    proba = np.asarray(model.predict(test.drop(columns=["churn"]).head(10)))
    assert proba.shape == (10, 2) and np.allclose(proba.sum(axis=1), 1)
    assert model.metadata.get_input_schema() is not None


def test_weaker_model_becomes_challenger_and_champion_stays(project: Project) -> None:
    project.run_stages(project.write_params(small_params()))
    weak = small_params(train__xgboost={"n_estimators": 1, "max_depth": 1})
    weak["register"]["beat_baseline_by"] = None  # this test is about the champion gate
    decision = project.run_stages(project.write_params(weak), "train", "evaluate", "register")[
        "register"
    ]
    assert decision.registered and decision.alias == "challenger"
    assert decision.champion_version == "1"
    assert decision.champion_score is not None and decision.champion_score > decision.candidate
    client = client_for(project)
    assert str(client.get_model_version_by_alias("cycleml-churn", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("cycleml-churn", "challenger").version) == "2"


def test_model_missing_the_gate_is_not_registered(project: Project) -> None:
    raw = small_params()
    raw["register"]["criteria"]["classification"] = {"roc_auc": {"min": 0.999}}
    decision = project.run_stages(project.write_params(raw))["register"]
    assert not decision.registered
    assert decision.reasons and "below the minimum 0.999" in decision.reasons[0]
    written = read_json(project.paths.report("register.json"))
    assert written["registered"] is False and written["reasons"] == decision.reasons
    assert client_for(project).search_registered_models() == []


def test_regression_from_a_messy_csv(project: Project, tmp_path: Path) -> None:
    """A public-data-like regression file: ';'-separated, '?' markers, numbers as text."""
    raw = small_params()
    raw["data"] = {
        "source": {"kind": "file", "path": str(houses_csv(tmp_path / "houses.csv"))},
        "target": "price",
    }
    raw["split"]["strategy"] = "random"
    decision = project.run_stages(project.write_params(raw))["register"]

    schema = read_json(project.paths.schema)
    assert schema["task"] == "regression" and "size m2" in schema["numeric"]
    metrics = read_json(project.paths.metrics("evaluate"))
    assert set(metrics) == {"rmse", "mae", "r2", "mape", "error_cost"}
    assert metrics["r2"] > 0.8
    assert decision.registered and decision.alias == "champion"
    assert project.paths.plot("evaluate/residuals.csv").exists()


def test_rerunning_register_does_not_register_the_same_model_twice(project: Project) -> None:
    params = project.write_params(small_params())
    project.run_stages(params)
    again = project.run_stages(params, "register")["register"]
    assert again.version == "1" and again.alias == "champion"
    assert "already the champion" in again.reasons[-1]
    versions = client_for(project).search_model_versions("name = 'cycleml-churn'")
    assert len(versions) == 1
