from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cycleml.data.schema import Schema
from cycleml.exploration.associations import association_matrix, cramers_v
from cycleml.exploration.buckets import OTHER
from cycleml.exploration.profile import explore
from cycleml.exploration.report import report_html

pytestmark = pytest.mark.unit


def schema(**overrides: Any) -> Schema:
    base: dict[str, Any] = {
        "task": "classification",
        "target": "y",
        "classes": ["No", "Yes"],
        "numeric": ["x"],
        "categorical": ["plan"],
    }
    return Schema.model_validate(base | overrides)


def rates(exp_rates: pd.DataFrame, feature: str) -> dict[str, float]:
    part = exp_rates[exp_rates["feature"] == feature]
    return dict(zip(part["bucket"], part["target_rate"], strict=True))


def test_missing_counts_are_exact() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, None, 3.0, None],
            "plan": ["a", None, "b", "a"],
            "y": ["No", "Yes", "No", "Yes"],
        }
    )
    missing = explore(frame, schema()).missing.set_index("column")
    assert missing["missing"].to_dict() == {"x": 2, "plan": 1, "y": 0}
    assert missing.loc["x", "missing_share"] == 0.5


def test_summary_covers_every_column() -> None:
    frame = pd.DataFrame(
        {"id": ["a", "b", "c"], "x": [1.0, 2.0, 6.0], "plan": ["a", "a", "b"], "y": ["No"] * 3}
    )
    summary = explore(frame, schema(id_columns=["id"])).summary.set_index("column")
    assert list(summary.index) == ["id", "x", "plan", "y"]
    assert summary.loc["x", ["min", "median", "max", "mean"]].tolist() == [1, 2, 6, 3]
    assert summary.loc["plan", "top"] == "a (67%), b (33%)"
    assert summary.loc["id", "role"] == "id" and summary.loc["y", "role"] == "target"


def test_binary_target_rate_by_category_is_exact() -> None:
    frame = pd.DataFrame(
        {
            "x": range(7),
            "plan": ["a", "a", "a", "a", "b", "b", None],
            "y": ["Yes", "Yes", "Yes", "No", "No", "No", "Yes"],
        }
    )
    exp = explore(frame, schema())
    assert rates(exp.target_rate, "plan") == {"a": 0.75, "b": 0.0, "(missing)": 1.0}
    part = exp.target_rate[exp.target_rate["feature"] == "plan"]
    assert part["rows"].tolist() == [4, 2, 1]
    assert exp.overall_rate == {"Yes": pytest.approx(4 / 7)}
    assert list(exp.target_rate.columns) == ["feature", "bucket", "rows", "target_rate"]


def test_rows_without_target_are_left_out_of_the_rates() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "plan": ["a", "a", "a"], "y": ["Yes", None, "No"]})
    exp = explore(frame, schema())
    assert rates(exp.target_rate, "plan") == {"a": 0.5}


def test_rare_categories_are_pooled_as_other() -> None:
    plan = ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"]
    y = ["Yes"] * 5 + ["No"] * 4 + ["Yes", "No", "No"]
    frame = pd.DataFrame({"x": range(12), "plan": plan, "y": y})
    exp = explore(frame, schema(), max_categories=2)
    part = exp.target_rate[exp.target_rate["feature"] == "plan"]
    assert part["bucket"].tolist() == ["a", "b", OTHER]
    assert part["rows"].tolist() == [5, 4, 3]
    assert rates(exp.target_rate, "plan")[OTHER] == pytest.approx(1 / 3)
    assert any("high-cardinality" in f and "plan" in f for f in exp.findings)


def test_regression_target_mean_by_quantile_bin() -> None:
    x = np.arange(1, 101, dtype=float)
    frame = pd.DataFrame({"x": x, "plan": ["a", "b"] * 50, "y": 2 * x})
    exp = explore(frame, schema(task="regression", classes=[]), bins=4)
    part = exp.target_rate[exp.target_rate["feature"] == "x"]
    assert part["rows"].tolist() == [25, 25, 25, 25]
    # bins (lo, hi], the lowest value in the first: 1-25.75, 25.75-50.5, ...
    assert part["target_rate"].tolist() == pytest.approx([26.0, 76.0, 126.0, 176.0])
    assert exp.rate_label == "mean y"
    assert exp.overall_rate == {"mean": pytest.approx(101.0)}


def test_few_valued_numerics_get_one_bucket_per_value() -> None:
    frame = pd.DataFrame({"x": [0, 0, 1, 1, 1, None], "plan": ["a"] * 6, "y": ["No", "Yes"] * 3})
    exp = explore(frame, schema(), bins=10)
    assert rates(exp.target_rate, "x") == {"0": 0.5, "1": pytest.approx(1 / 3), "(missing)": 1.0}


def test_tied_quantiles_are_merged() -> None:
    frame = pd.DataFrame(
        {"x": [0.0] * 80 + list(np.linspace(1, 2, 20)), "plan": ["a"] * 100, "y": ["No"] * 100}
    )
    part = explore(frame, schema(), bins=10).target_rate
    part = part[part["feature"] == "x"]
    assert part["rows"].sum() == 100
    assert part["bucket"].is_unique and len(part) < 10


def test_multiclass_gives_the_share_of_each_class() -> None:
    frame = pd.DataFrame(
        {"x": range(6), "plan": ["a", "a", "a", "b", "b", "b"], "y": list("ABCAAB")}
    )
    exp = explore(frame, schema(classes=["A", "B", "C"]))
    part = exp.target_rate[exp.target_rate["feature"] == "plan"]
    assert list(part.columns) == ["feature", "bucket", "class", "rows", "target_rate"]
    shares = part.set_index(["bucket", "class"])["target_rate"]
    assert shares[("a", "A")] == pytest.approx(1 / 3)
    assert shares[("b", "A")] == pytest.approx(2 / 3)
    assert shares[("b", "C")] == 0.0
    assert part.groupby("bucket")["target_rate"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert exp.overall_rate == pytest.approx({"A": 0.5, "B": 1 / 3, "C": 1 / 6})


def test_correlation_of_x_and_2x_is_one() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    frame = pd.DataFrame(
        {"x": x, "x2": 2 * x, "noise": rng.normal(size=200), "plan": ["a"] * 200, "y": ["No"] * 200}
    )
    exp = explore(frame, schema(numeric=["x", "x2", "noise"]))
    assert exp.pearson.loc["x", "x2"] == pytest.approx(1.0)
    assert exp.spearman.loc["x", "x2"] == pytest.approx(1.0)
    assert abs(exp.pearson.loc["x", "noise"]) < 0.2
    assert any("x and x2" in f for f in exp.findings)


def test_cramers_v_is_one_for_identical_and_near_zero_for_independent() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=5000)
    b = rng.integers(0, 3, size=5000)
    assert cramers_v(a, a) == pytest.approx(1.0)
    assert cramers_v(a, (a + 1) % 4) == pytest.approx(1.0)  # relabelled
    assert cramers_v(a, b) < 0.03
    assert np.isnan(cramers_v(a, np.zeros_like(a)))  # a constant has no association


def test_cramers_v_leaves_missing_codes_out() -> None:
    a = np.array([0, 0, 1, 1, -1, -1] * 20)
    b = np.array([0, 0, 1, 1, 0, 1] * 20)
    assert cramers_v(a, b) == pytest.approx(1.0)


def test_association_matrix_of_categoricals() -> None:
    rng = np.random.default_rng(1)
    plan = rng.choice(["a", "b", "c"], size=1000)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=1000),
            "plan": plan,
            "copy": pd.Series(plan).map({"a": "x", "b": "y", "c": "z"}),
            "other": rng.choice(["u", "v"], size=1000),
            "y": rng.choice(["No", "Yes"], size=1000),
        }
    )
    v = explore(frame, schema(categorical=["plan", "copy", "other"])).cramers_v
    assert v.loc["plan", "copy"] == pytest.approx(1.0)
    assert v.loc["plan", "other"] < 0.1
    assert np.allclose(v.to_numpy(), v.to_numpy().T)


def test_association_matrix_is_fast() -> None:
    rng = np.random.default_rng(2)
    codes = {f"c{i}": rng.integers(0, 2 + i, size=20_000) for i in range(20)}
    start = time.perf_counter()
    matrix = association_matrix(codes)
    assert time.perf_counter() - start < 1.0
    assert matrix.shape == (20, 20)


def test_findings_name_heavily_missing_columns() -> None:
    frame = pd.DataFrame(
        {"x": [1.0, None, None, 4.0], "plan": ["a", "b", "a", "b"], "y": ["No", "Yes"] * 2}
    )
    exp = explore(frame, schema())
    assert "x: 50% of values are missing" in exp.findings


def test_report_escapes_data_text() -> None:
    frame = pd.DataFrame(
        {"x": [1.0, 2.0], "plan": ["<script>alert(1)</script>", "b"], "y": ["No", "Yes"]}
    )
    page = report_html(explore(frame, schema()), figures=[])
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
