"""The registry's approval workflow and lineage, against a real MLflow store."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from cycleml.model import registry
from cycleml.model.lineage import trace
from cycleml.model.tracking import tracking_uri
from tests.conftest import Project, small_params

pytestmark = pytest.mark.integration
NAME = "cycleml-churn"


def weak(raw: dict) -> dict:  # type: ignore[type-arg]
    raw["train"]["xgboost"].update(n_estimators=3, max_depth=1)
    raw["register"]["beat_baseline_by"] = None
    raw["register"]["criteria"] = {}
    return raw


def client_of(project: Project) -> MlflowClient:
    params = project.write_params(small_params())
    return MlflowClient(tracking_uri(params.tracking, project.paths))


def test_manual_approval_end_to_end(project: Project) -> None:
    raw = small_params()
    raw["register"]["approval"] = "manual"
    first = project.run_stages(project.write_params(raw))["register"]
    assert first.status == "pending" and first.alias == "challenger"
    client = client_of(project)
    assert registry.champion_version(client, NAME) is None  # nothing serves unapproved work

    with pytest.raises(registry.RegistryError, match="not approved"):
        registry.promote(client, NAME, "1")
    number, promoted = registry.approve(client, NAME, "1", "reviewed the report", by="ana")
    assert (number, promoted) == ("1", True)
    version = client.get_model_version(NAME, "1")
    assert version.tags["cycleml.status"] == "approved"
    assert version.tags["cycleml.status_by"] == "ana"
    assert version.tags["cycleml.status_reason"] == "reviewed the report"
    assert registry.champion_version(client, NAME) == "1"

    second = project.run_stages(project.write_params(weak(raw)), "train", "evaluate", "register")
    assert second["register"].version == "2" and second["register"].status == "pending"
    registry.reject(client, NAME, "2", "worse on every metric", by="ana")
    with pytest.raises(registry.RegistryError, match="rejected"):
        registry.promote(client, NAME, "2")
    with pytest.raises(registry.RegistryError, match="is the champion"):
        registry.reject(client, NAME, "@champion", "oops")
    rows = {r.version: r for r in registry.list_versions(client, NAME)}
    assert rows["1"].status == "approved" and rows["1"].aliases == ["champion"]
    assert rows["2"].status == "rejected" and rows["2"].reason == "worse on every metric"


def test_auto_approval_promotion_and_rollback(project: Project) -> None:
    raw = weak(small_params())
    first = project.run_stages(project.write_params(raw))["register"]
    assert first.status == "approved" and first.alias == "champion"

    better = small_params()
    better["register"]["beat_baseline_by"] = None
    second = project.run_stages(project.write_params(better), "train", "evaluate", "register")
    assert second["register"].alias == "champion" and second["register"].version == "2"

    worse = project.run_stages(project.write_params(raw), "train", "evaluate", "register")
    decision = worse["register"]
    assert decision.alias == "challenger" and decision.status == "approved"
    client = client_of(project)
    assert registry.champion_version(client, NAME) == "2"  # a worse model never takes over

    assert registry.rollback(client, NAME) == "1"
    assert registry.champion_version(client, NAME) == "1"
    assert registry.promote(client, NAME, "2") == "2"


def test_lineage_of_the_champion_matches_the_workspace(project: Project) -> None:
    params = project.write_params(small_params())
    project.run_stages(params)
    client = client_of(project)
    found = trace(client, NAME, "@champion", params, project.paths)
    assert found.version == "1" and "champion" in found.aliases
    assert {c.what for c in found.checks} >= {
        "data/split/train.parquet md5",
        "data/split/test.parquet md5",
        "params hash",
    }
    assert found.workspace_matches, [c for c in found.checks if not c.matches]
    assert found.metrics["test_roc_auc"] > 0.7

    project.paths.split("train").write_bytes(b"changed")
    stale = trace(client, NAME, "1", params, project.paths)
    assert not stale.workspace_matches


def test_champion_is_not_flattered_by_its_own_training_rows(project: Project) -> None:
    raw = small_params()
    project.run_stages(project.write_params(raw))
    raw["split"]["seed"] = 7  # a new split of the same rows: most of test trained the champion
    resplit = project.run_stages(
        project.write_params(raw), "split", "frame", "train", "evaluate", "register"
    )
    decision = resplit["register"]
    assert "unseen by the champion v1: not comparable" in decision.reasons[0]
    assert decision.alias == "challenger"  # not comparable: the champion is kept
    assert registry.champion_version(client_of(project), NAME) == "1"


def test_an_unusable_primary_metric_is_a_clear_params_error(project: Project) -> None:
    from cycleml.config import ConfigError

    raw = small_params()
    raw["register"]["primary_metric"]["classification"] = "profit"
    params = project.write_params(raw)
    project.run_stages(params)
    raw["register"]["primary_metric"]["regression"] = "within_band"  # no error_band set
    raw["data"] = {"source": raw["data"]["source"], "target": "tenure_months"}
    raw["task"] = "regression"
    params = project.write_params(raw)
    with pytest.raises(ConfigError, match="register.primary_metric.regression"):
        project.run_stages(params)
