"""Issue-3 behaviour through the real stages: reports, planted PII and leakage, the KPI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cycleml.data.demo import generate_churn
from cycleml.files import read_json
from tests.conftest import Project, small_params

pytestmark = pytest.mark.integration


def planted_csv(tmp_path: Path) -> Path:
    table = generate_churn(2500, seed=5)
    rng = np.random.default_rng(5)
    table["email"] = [f"customer{i}@example.com" for i in range(len(table))]
    # recorded after the outcome: a cancellation fee only churners pay
    table["cancellation_fee"] = np.where(table["churn"] == "Yes", 35.0, 0.0) + rng.normal(
        0, 1, len(table)
    )
    path = tmp_path / "crm_export.csv"
    table.to_csv(path, index=False)
    return path


def test_pipeline_reports_and_planted_columns_never_reach_the_model(
    project: Project, tmp_path: Path
) -> None:
    raw = small_params()
    raw["data"]["source"] = {"kind": "file", "path": str(planted_csv(tmp_path))}
    params = project.write_params(raw)
    project.run_stages(params)

    schema = read_json(project.paths.schema)
    assert schema["excluded"]["email"].startswith("PII")
    assert schema["excluded"]["cancellation_fee"].startswith("leakage")
    assert (project.root / "contracts" / "crm_export.yaml").exists()
    for report in ("validate.json", "validate.html", "frame.json", "frame.md", "explore.html"):
        assert project.paths.report(report).stat().st_size > 200, report

    validate_report = read_json(project.paths.report("validate.json"))
    assert validate_report["missing"]["support_calls"] > 0  # missing values are counted
    assert validate_report["leakage_scores"]["cancellation_fee"] > 0.99

    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(project.paths.model_dir))
    used = set(model.named_steps["preprocess"].feature_names_in_)
    assert not used & {"email", "cancellation_fee", "customer_id"}

    framing = read_json(project.paths.report("frame.json"))
    assert framing["problem"] == "binary" and framing["kpi"] == "profit"
    names = {b["name"] for b in framing["baselines"]}
    assert {"contact_none", "contact_all", "month_to_month", "auto_rule"} <= names
    beside = read_json(project.paths.metrics("baselines"))
    assert set(beside["test"]) == names and "verdict" in beside
    assert beside["model"] == read_json(project.paths.metrics("evaluate"))["profit"]


def test_the_goals_block_changes_the_kpi(project: Project) -> None:
    raw = small_params()
    first = project.run_stages(project.write_params(raw))["evaluate"]["metrics"]
    raw["goals"]["classification"]["offer_cost"] = 120.0
    params = project.write_params(raw)
    second = project.run_stages(params, "frame", "evaluate")["evaluate"]["metrics"]
    assert second["profit"] < first["profit"]
    assert second["profit_contact_all"] < first["profit_contact_all"]
    # a dearer offer is worth making to fewer customers: the threshold rises
    assert second["decision_threshold"] > first["decision_threshold"]


def test_a_model_that_cannot_beat_a_rule_is_not_registered(project: Project) -> None:
    raw = small_params(rows=1500)
    raw["train"]["xgboost"].update(n_estimators=2, max_depth=1, learning_rate=0.01)
    raw["register"]["criteria"] = {}
    raw["register"]["beat_baseline_by"] = 0.5
    decision = project.run_stages(project.write_params(raw))["register"]
    assert not decision.registered
    assert any("best baseline" in reason for reason in decision.reasons)


def test_threshold_is_chosen_on_validation_data_only(project: Project) -> None:
    import pandas as pd

    params = project.write_params(small_params())
    first = project.run_stages(params)["evaluate"]["metrics"]
    test_file = project.paths.split("test")
    test = pd.read_parquet(test_file)
    test["churn"] = test["churn"].map({"Yes": "No", "No": "Yes"})  # wreck the test labels
    test.to_parquet(test_file, index=False)
    again = project.run_stages(params, "evaluate")["evaluate"]["metrics"]
    assert again["decision_threshold"] == first["decision_threshold"]
    assert again["roc_auc"] < 0.5 < first["roc_auc"]


def test_a_model_breaking_a_fairness_limit_is_not_registered(project: Project) -> None:
    raw = small_params()
    # contract type drives churn in the demo: selection rates differ a lot between groups
    raw["evaluate"]["fairness"] = {
        "sensitive": ["contract"],
        "max_demographic_parity_difference": 0.05,
        "max_equalized_odds_difference": None,
    }
    decision = project.run_stages(project.write_params(raw))["register"]
    assert not decision.registered
    assert any(r.startswith("fairness: demographic_parity_difference") for r in decision.reasons)
    fairness = read_json(project.paths.metrics("fairness"))
    assert fairness["violations"][0]["column"] == "contract"
