from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from cycleml.config import BehaviourCheck, FairnessParams, GoalsParams, TrainParams, XGBoostParams
from cycleml.data.schema import Schema
from cycleml.evaluation.behaviour import behaviour_checks
from cycleml.evaluation.curves import brier_score, calibration, gains, learning_verdict
from cycleml.evaluation.explanations import explanations, feature_sources
from cycleml.evaluation.fairness import fairness
from cycleml.evaluation.segments import segment_metrics, to_records
from cycleml.model.pipeline import fit_pipeline

pytestmark = pytest.mark.unit

GOALS = GoalsParams()  # 500 per retained churner, 50 per offer, 30% accept
BINARY = Schema(
    task="classification", target="y", classes=["No", "Yes"], numeric=["x"], categorical=["c"]
)
REGRESSION = Schema(task="regression", target="y", numeric=["x"], categorical=[])


# --- calibration and gains -------------------------------------------------------------


def test_calibration_of_a_perfectly_calibrated_score() -> None:
    score = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    table = calibration(y, score, bins=2)
    assert table["mean_predicted"].tolist() == [0.25, 0.75]
    assert table["observed_rate"].tolist() == [0.25, 0.75]
    assert table["rows"].tolist() == [4, 4]
    # each row is off by 0.25 (6 rows) or 0.75 (2 rows): (6 * 0.0625 + 2 * 0.5625) / 8
    assert brier_score(y, score) == pytest.approx(0.1875)


def test_calibration_bins_hold_equal_rows_and_ties_stay_together() -> None:
    score = np.linspace(0.01, 0.99, 100)
    table = calibration(np.zeros(100, dtype=int), score, bins=10)
    assert table["rows"].tolist() == [10] * 10
    assert calibration(np.array([0, 1, 1]), np.full(3, 0.5), bins=10)["rows"].tolist() == [3]


def test_gains_of_a_perfect_ranker() -> None:
    y = np.array([1, 1] + [0] * 8)
    table = gains(y, np.linspace(1, 0, 10), points=5)
    assert table["share_contacted"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert table["share_of_positives_found"].tolist() == [1.0] * 5
    assert table["lift"].tolist() == pytest.approx([5, 2.5, 5 / 3, 1.25, 1])


def test_gains_of_the_worst_ranker_and_no_positives() -> None:
    y = np.array([1, 1] + [0] * 8)
    worst = gains(y, np.linspace(0, 1, 10), points=5)
    assert worst["share_of_positives_found"].tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="positive"):
        gains(np.zeros(4), np.ones(4))


# --- segments --------------------------------------------------------------------------


def test_segment_metrics_of_a_known_split() -> None:
    frame = pd.DataFrame(
        {
            "c": ["a"] * 4 + ["b"] * 4,
            "flag": [0, 1] * 4,
            "y": ["Yes", "No", "Yes", "No", "No", "No", "No", "No"],
        }
    )
    positive = np.array([0.9, 0.1, 0.8, 0.2, 0.6, 0.1, 0.2, 0.3])
    scores = np.column_stack([1 - positive, positive])
    table, notes = segment_metrics(frame, BINARY, scores, 0.5, ["c", "absent"], GOALS)
    assert notes == ["segments: column 'absent' absent, skipped"]
    a, b = (row for row in to_records(table))
    # a: a perfect ranking; two churners contacted: 2 * 0.3 * 500 - 2 * 50
    assert a == {
        "column": "c",
        "segment": "a",
        "rows": 4,
        "positive_rate": 0.5,
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "roc_auc": 1.0,
        "profit": 200.0,
    }
    # b: no churner, one wasted offer; recall and AUC are undefined with one class
    assert b["positive_rate"] == 0 and b["accuracy"] == 0.75 and b["precision"] == 0
    assert b["recall"] is None and b["roc_auc"] is None and b["profit"] == -50
    assert table["roc_auc"].tolist() == [1.0, None]
    json.dumps(to_records(table), allow_nan=False)

    by_flag, _ = segment_metrics(frame, BINARY, scores, 0.5, ["flag"], GOALS)
    assert by_flag["segment"].tolist() == ["0", "1"]  # a 0/1 column is sliced by value
    assert by_flag["rows"].tolist() == [4, 4]


def test_segment_metrics_regression_quartiles_and_missing() -> None:
    x = np.arange(100.0)
    frame = pd.DataFrame({"x": x, "y": x})
    table, _ = segment_metrics(frame, REGRESSION, x + 1, 0.5, ["x"], GOALS)
    assert table["rows"].tolist() == [25] * 4
    assert table["segment"].tolist() == [
        "[0, 24.75]",
        "(24.75, 49.5]",
        "(49.5, 74.25]",
        "(74.25, 99]",
    ]
    assert table["rmse"].tolist() == [1.0] * 4 and table["mae"].tolist() == [1.0] * 4
    assert table["mean_target"].tolist() == [12.0, 37.0, 62.0, 87.0]

    frame.loc[:9, "x"] = np.nan
    with_missing, _ = segment_metrics(frame, REGRESSION, x + 1, 0.5, ["x"], GOALS)
    assert with_missing["segment"].iloc[-1] == "(missing)"
    assert with_missing["rows"].iloc[-1] == 10 and with_missing["rows"].sum() == 100


# --- fairness --------------------------------------------------------------------------

FAIR_FRAME = pd.DataFrame({"g": ["A"] * 4 + ["B"] * 4, "senior": [0, 1] * 4})
FAIR_Y = np.array([1, 1, 0, 0, 1, 1, 0, 0])


def test_fairness_known_demographic_parity_difference_violates_limit() -> None:
    # A: selection 3/4, TPR 1, FPR 1/2; B: selection 1/4, TPR 1/2, FPR 0
    decisions = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    result = fairness(FAIR_FRAME, BINARY, FAIR_Y, decisions, ["g", "zip"], FairnessParams())
    g = result["columns"]["g"]
    assert g["demographic_parity_difference"] == pytest.approx(0.5)
    assert g["equalized_odds_difference"] == pytest.approx(0.5)
    assert g["groups"] == [
        {
            "group": "A",
            "rows": 4,
            "positives": 2,
            "selection_rate": 0.75,
            "true_positive_rate": 1.0,
            "false_positive_rate": 0.5,
        },
        {
            "group": "B",
            "rows": 4,
            "positives": 2,
            "selection_rate": 0.25,
            "true_positive_rate": 0.5,
            "false_positive_rate": 0.0,
        },
    ]
    assert result["violations"] == [
        {"column": "g", "metric": "demographic_parity_difference", "value": 0.5, "limit": 0.2},
        {"column": "g", "metric": "equalized_odds_difference", "value": 0.5, "limit": 0.2},
    ]
    assert result["notes"] == ["fairness: column 'zip' absent, skipped"]
    json.dumps(result, allow_nan=False)

    unchecked = FairnessParams(
        max_demographic_parity_difference=0.6, max_equalized_odds_difference=None
    )
    assert fairness(FAIR_FRAME, BINARY, FAIR_Y, decisions, ["g"], unchecked)["violations"] == []


def test_fairness_equal_treatment_passes_and_flags_stay_groups() -> None:
    decisions = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    result = fairness(FAIR_FRAME, BINARY, FAIR_Y, decisions, ["g", "senior"], FairnessParams())
    assert result["columns"]["g"]["demographic_parity_difference"] == 0
    # but every even row is picked: senior 0 always, senior 1 never
    assert [grp["group"] for grp in result["columns"]["senior"]["groups"]] == ["0", "1"]
    assert [(v["column"], v["metric"], v["value"]) for v in result["violations"]] == [
        ("senior", "demographic_parity_difference", 1.0),
        ("senior", "equalized_odds_difference", 1.0),
    ]


def test_fairness_skipped_unless_binary() -> None:
    result = fairness(FAIR_FRAME, REGRESSION, FAIR_Y, FAIR_Y, ["g"], FairnessParams())
    assert "binary" in result["skipped"]


def test_fairness_with_no_sensitive_column_is_not_checked_rather_than_within_limits() -> None:
    from cycleml.cli.render import in_depth_lines

    for sensitive in ([], ["gender"]):  # none configured; configured but not in the data
        decisions = np.array([1, 0, 1, 0, 1, 0, 1, 0])
        result = fairness(FAIR_FRAME, BINARY, FAIR_Y, decisions, sensitive, FairnessParams())
        assert "columns" not in result and result["violations"] == []
        assert "evaluate.fairness.sensitive" in result["skipped"]
        lines = in_depth_lines({"fairness": result, "behaviour": []})
        assert lines[0].startswith("fairness: not checked (") and "within limits" not in lines[0]


# --- a tiny fitted pipeline: behaviour and explanations --------------------------------

TINY = Schema(
    task="classification",
    target="y",
    classes=["No", "Yes"],
    numeric=["x"],
    categorical=["c"],
    # "c_x" starts with "c_": its one-hot columns must still map to c_x, not c
    derived=[
        {"name": "c_x", "kind": "interaction", "columns": ["c", "d"]},
        {"name": "x_per_z", "kind": "ratio", "columns": ["x", "z"]},
    ],
)


@pytest.fixture(scope="module")
def tiny() -> tuple[Pipeline, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 400
    x = rng.uniform(0, 10, n)
    frame = pd.DataFrame(
        {
            "x": x,
            "c": rng.choice(["a", "b"], n),
            "d": rng.choice(["p", "q"], n),
            "z": rng.uniform(1, 2, n),
            "noise": rng.normal(size=n),
            "y": np.where(x > 5, "Yes", "No"),
        }
    )
    params = TrainParams(
        early_stopping_rounds=None, xgboost=XGBoostParams(n_estimators=20, n_jobs=1)
    )
    pipeline, _ = fit_pipeline(TINY, params, frame.iloc[:300], frame.iloc[300:])
    return pipeline, frame.iloc[300:]


def test_behaviour_checks_on_a_tiny_pipeline(tiny: tuple[Pipeline, pd.DataFrame]) -> None:
    pipeline, test = tiny
    checks = [
        BehaviourCheck(name="up", column="x", change=3, expect="increase"),
        BehaviourCheck(name="down", column="x", change=3, expect="decrease"),
        BehaviourCheck(name="inert", column="noise", change=5, expect="no_change", min_share=1),
        BehaviourCheck(name="gone", column="missing", change=1, expect="increase"),
        BehaviourCheck(name="text", column="c", change=1, expect="increase"),
    ]
    up, down, inert, gone, text = behaviour_checks(pipeline, TINY, test, checks)
    assert up["passed"] and up["share_ok"] >= 0.95 and up["mean_delta"] > 0
    # x + 3 pushes the rows with 2 < x <= 5 over the x > 5 boundary: about 30% move up
    assert not down["passed"] and down["share_ok"] < 0.9
    assert inert == {
        "name": "inert",
        "column": "noise",
        "change": 5.0,
        "expect": "no_change",
        "tolerance": 0.01,
        "rows": 100,
        "share_ok": 1.0,
        "min_share": 1.0,
        "passed": True,
        "mean_delta": 0.0,
    }
    assert gone == {"name": "gone", "skipped": "column absent"}
    assert text == {"name": "text", "skipped": "column not numeric"}
    json.dumps(up)


def test_explanations_map_one_hot_back_and_add_up(tiny: tuple[Pipeline, pd.DataFrame]) -> None:
    pipeline, test = tiny
    preprocess, model = pipeline.named_steps["preprocess"], pipeline.named_steps["model"]
    sources = feature_sources(preprocess)
    assert sorted(set(sources)) == ["c", "c_x", "x", "x_per_z"]
    assert sources.count("c") == 2 and sources.count("c_x") == 4

    importance, rows = explanations(pipeline, TINY, test, rows=3)
    assert importance["feature"].iloc[0] == "x"  # the only feature the label depends on
    assert importance["mean_abs_shap"].is_monotonic_decreasing
    assert list(rows.columns) == ["row", "feature", "value", "contribution"]
    assert rows["row"].unique().tolist() == [0, 1, 2]
    first = rows[rows["row"] == 0]
    assert first["feature"].iloc[0] == "(base value)"
    assert first["feature"].iloc[-1] == "(other features)"
    assert first.loc[first["feature"] == "x", "value"].item() == pytest.approx(test["x"].iloc[0])

    matrix = preprocess.transform(pipeline.named_steps["derive"].transform(test))
    margin = model.predict(matrix[:3], output_margin=True)
    np.testing.assert_allclose(rows.groupby("row")["contribution"].sum(), margin, atol=1e-4)
    json.dumps(to_records(rows), allow_nan=False)

    _, none = explanations(pipeline, TINY, test, rows=0)
    assert none.empty and list(none.columns) == ["row", "feature", "value", "contribution"]


def test_explanations_use_only_the_trees_up_to_best_iteration() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["a", "b"], 300)})
    frame["y"] = np.where(rng.random(300) < 0.5, "Yes", "No")  # noise: stops early
    params = TrainParams(early_stopping_rounds=5, xgboost=XGBoostParams(n_estimators=200, n_jobs=1))
    pipeline, curves = fit_pipeline(BINARY, params, frame.iloc[:200], frame.iloc[200:])
    model = pipeline.named_steps["model"]
    assert model.best_iteration < len(curves["valid"]) - 1  # trees after the best exist
    _, rows = explanations(pipeline, BINARY, frame, rows=20)
    matrix = pipeline.named_steps["preprocess"].transform(frame.iloc[:20])
    used = model.predict(matrix, output_margin=True)  # predicts with best_iteration
    every = model.predict(matrix, output_margin=True, iteration_range=(0, len(curves["valid"])))
    assert not np.allclose(used, every, atol=1e-4)
    np.testing.assert_allclose(rows.groupby("row")["contribution"].sum(), used, atol=1e-4)


def test_multiclass_explains_the_predicted_class_and_skips_behaviour() -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 3, 300)
    frame = pd.DataFrame({"x": x, "c": rng.choice(["a", "b"], 300)})
    frame["y"] = np.array(["low", "mid", "top"])[x.astype(int)]
    three = BINARY.model_copy(update={"classes": ["low", "mid", "top"]})
    params = TrainParams(
        early_stopping_rounds=None, xgboost=XGBoostParams(n_estimators=10, n_jobs=1)
    )
    pipeline, _ = fit_pipeline(three, params, frame.iloc[:200], frame.iloc[200:])
    importance, rows = explanations(pipeline, three, frame, rows=5)
    assert importance["feature"].tolist() == ["x", "c"]
    matrix = pipeline.named_steps["preprocess"].transform(frame.iloc[:5])
    margins = pipeline.named_steps["model"].predict(matrix, output_margin=True)
    np.testing.assert_allclose(
        rows.groupby("row")["contribution"].sum(), margins.max(axis=1), atol=1e-4
    )
    check = BehaviourCheck(name="up", column="x", change=1, expect="increase")
    assert behaviour_checks(pipeline, three, frame, [check]) == [
        {"name": "up", "skipped": "multiclass scores have no direction"}
    ]
    table, _ = segment_metrics(frame, three, np.eye(3)[x.astype(int)], 0.5, ["c"], GOALS)
    assert table["accuracy"].tolist() == [1.0, 1.0]


# --- learning curves -------------------------------------------------------------------


def test_learning_verdict_good_fit() -> None:
    r = np.arange(100)
    valid = 0.4 + 0.5 * np.exp(-r / 10)
    verdict = learning_verdict({"train": list(valid * 0.95), "valid": list(valid)}, 99)
    assert verdict["verdict"] == "good fit"
    assert verdict["gap_at_best"] == pytest.approx(0.05)


def test_learning_verdict_underfitting_when_still_falling() -> None:
    valid = 1 - 0.005 * np.arange(40)
    verdict = learning_verdict({"train": list(valid - 0.01), "valid": list(valid)}, 39)
    assert verdict["verdict"] == "underfitting"
    assert "n_estimators" in verdict["advice"] and verdict["tail_drop"] > 0.02


def test_learning_verdict_overfitting_by_rise_or_by_gap() -> None:
    r = np.arange(60)
    valid = np.where(r <= 30, 0.7 - 0.01 * r, 0.4 + 0.002 * (r - 30))  # min 0.4, ends 0.458
    train = 0.7 - 0.011 * r
    rising = learning_verdict({"train": list(train), "valid": list(valid)}, None)
    assert rising["verdict"] == "overfitting" and rising["valid_min_round"] == 30
    assert rising["rise_after_min"] == pytest.approx(0.145)
    assert "max_depth" in rising["advice"]

    flat = 0.4 + 0.5 * np.exp(-np.arange(100) / 10)
    gap = learning_verdict({"train": list(flat * 0.5), "valid": list(flat)}, 90)
    assert gap["verdict"] == "overfitting" and gap["gap_at_best"] == pytest.approx(0.5)


def test_learning_verdict_without_curves() -> None:
    assert learning_verdict({}, None)["verdict"] == "unknown"
