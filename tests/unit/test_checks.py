from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cycleml.config import DataParams, DemoSource, FileSource, ValidateParams
from cycleml.data import contract as dc
from cycleml.data.checks import leakage_scores, outlier_counts, pii_columns
from cycleml.data.schema import Schema
from cycleml.data.validation_report import ValidationFailed
from cycleml.stages.validate import validate

pytestmark = pytest.mark.unit


def churn_like(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    tenure = rng.integers(0, 72, n).astype(float)
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(tenure / 20 - 1)), "Yes", "No")
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "tenure": tenure,
            "plan": rng.choice(["basic", "pro"], n),
            "y": churn,
        }
    )


def test_pii_by_declared_list_name_and_value() -> None:
    data = churn_like().assign(
        full_name=[f"Ann Lee {i}" for i in range(600)],
        Street=["Pave", "Grvl"] * 300,  # a housing feature, not an address
        contact=[f"user{i}@example.com" for i in range(600)],
        home_phone=[f"+44 20 7946 {i:04d}" for i in range(600)],
        notes="ok",
        phone_service="Yes",
        card=[f"4111 1111 1111 {i:04d}" for i in range(600)],
    )
    found = pii_columns(data, ["notes"], skip={"customer_id", "y"})
    assert set(found) == {"full_name", "contact", "home_phone", "notes", "card"}
    assert "email" in found["contact"] and "declared" in found["notes"]


def test_planted_leak_is_scored_near_one_and_honest_features_are_not() -> None:
    data = churn_like()
    data["cancellation_fee"] = np.where(data["y"] == "Yes", 35.0, 0.0) + np.random.default_rng(
        0
    ).normal(0, 0.1, len(data))
    schema = Schema(
        task="classification",
        target="y",
        classes=["No", "Yes"],
        numeric=["tenure", "cancellation_fee"],
        categorical=["plan"],
    )
    scores = leakage_scores(data, schema, schema.features)
    assert scores["cancellation_fee"] > 0.99
    assert 0.55 < scores["tenure"] < 0.95 and scores["plan"] < 0.6


def test_regression_leak() -> None:
    rng = np.random.default_rng(4)
    data = pd.DataFrame({"x": rng.normal(size=800), "y": rng.normal(size=800)})
    data["y_copy"] = data["y"] * 2 + 1
    schema = Schema(task="regression", target="y", numeric=["x", "y_copy"], categorical=[])
    scores = leakage_scores(data, schema, ["x", "y_copy"])
    assert scores["y_copy"] > 0.98 and scores["x"] < 0.2


def test_outliers() -> None:
    data = pd.DataFrame({"x": [*range(100), 10_000]})
    assert outlier_counts(data, ["x"], 3.0) == {"x": 1}


def test_validate_drops_pii_and_leaky_columns_before_training() -> None:
    data = churn_like().assign(email=lambda f: f["customer_id"] + "@mail.com")
    data["refund_issued"] = (data["y"] == "Yes").astype(float)
    params = DataParams(source=DemoSource(kind="demo"), target="y", id_columns=["customer_id"])
    schema, report = validate(data, params, "auto", ValidateParams(min_class_rows=3))
    assert "email" not in schema.features and schema.excluded["email"].startswith("PII")
    assert "refund_issued" not in schema.features
    assert schema.excluded["refund_issued"].startswith("leakage")
    assert schema.features == ["tenure", "plan"]
    assert {f.column for f in report.findings if f.severity == "dropped"} >= {
        "email",
        "refund_issued",
    }


def test_contract_inferred_then_enforced(tmp_path: Path) -> None:
    data = churn_like()
    params = DataParams(source=DemoSource(kind="demo"), target="y", id_columns=["customer_id"])
    rules = ValidateParams(min_class_rows=3)
    _, report = validate(data, params, "auto", rules, root=tmp_path)
    path = tmp_path / "contracts" / "demo.yaml"
    assert path.exists() and report.contract == str(path)
    contract = dc.load(path)
    assert contract.columns["plan"].categories == ["basic", "pro"]
    assert contract.columns["tenure"].max == data["tenure"].max()

    validate(data.sample(frac=0.5, random_state=0), params, "auto", rules, root=tmp_path)

    with pytest.raises(ValidationFailed, match=r"column 'plan' breaks required"):
        validate(data.drop(columns="plan"), params, "auto", rules, root=tmp_path)
    broken = data.assign(tenure=lambda f: f["tenure"].where(f.index % 3 > 0))
    with pytest.raises(ValidationFailed, match=r"'tenure' breaks max_missing"):
        validate(broken, params, "auto", rules, root=tmp_path)
    far = data.assign(tenure=data["tenure"] * 10)
    with pytest.raises(ValidationFailed, match=r"'tenure' breaks range"):
        validate(far, params, "auto", rules, root=tmp_path)
    one_new = data.copy()
    one_new.loc[0, "plan"] = "enterprise"  # a new category in 1 of 600 rows: a warning
    _, report = validate(one_new, params, "auto", rules, root=tmp_path)
    assert any(f.rule == "categories" and f.severity == "warning" for f in report.findings)


def test_contract_path_by_source(tmp_path: Path) -> None:
    assert dc.contract_path(None, DemoSource(kind="demo"), tmp_path) is None
    file = FileSource(kind="file", path="s3://bucket/telco churn.csv")
    assert dc.contract_path("auto", file, tmp_path) == tmp_path / "contracts" / "telco churn.yaml"
    assert dc.contract_path("my.yaml", file, tmp_path) == tmp_path / "my.yaml"
