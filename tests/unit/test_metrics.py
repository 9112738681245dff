from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cycleml.data.schema import Schema, label_key
from cycleml.evaluation.metrics import better, classification_metrics, regression_metrics

pytestmark = pytest.mark.unit


def test_binary_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    m = classification_metrics(y, proba, threshold=0.5)
    # predictions 0,1,1,0: one TP, one FP, one FN, one TN
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered
    assert set(m) == {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"}
    # the threshold moves the decision
    assert classification_metrics(y, proba, threshold=0.15)["recall"] == 1.0


def test_multiclass_metrics_are_macro() -> None:
    y = np.array([0, 1, 2, 2])
    proba = np.eye(3)[y] * 0.8 + 0.2 / 3
    m = classification_metrics(y, proba)
    assert m["accuracy"] == 1.0 and m["f1"] == 1.0 and m["roc_auc"] == 1.0


def test_regression_metrics() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 0.0]), np.array([2.0, 2.0, 1.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert m["mape"] == pytest.approx(0.5)  # the zero target is skipped


@pytest.mark.parametrize(
    ("metric", "a", "b", "expected"),
    [
        ("roc_auc", 0.8, 0.7, True),
        ("rmse", 0.8, 0.7, False),
        ("rmse", 0.6, 0.7, True),
        ("f1", 0.5, 0.5, False),
    ],
)
def test_better_knows_the_direction(metric: str, a: float, b: float, expected: bool) -> None:
    assert better(metric, a, b) is expected


@pytest.mark.parametrize(
    ("value", "key"), [(1, "1"), (1.0, "1"), (" 1 ", "1"), (True, "True"), (0.5, "0.5")]
)
def test_label_key(value: object, key: str) -> None:
    assert label_key(value) == key


def test_encode_target_rejects_unknown_labels() -> None:
    schema = Schema(
        task="classification", target="churn", classes=["No", "Yes"], numeric=["x"], categorical=[]
    )
    assert schema.encode_target(pd.Series(["Yes", "No"])).tolist() == [1, 0]
    with pytest.raises(ValueError, match="'churn' has label"):
        schema.encode_target(pd.Series(["Yes", "Maybe"]))
    with pytest.raises(KeyError, match="missing feature column"):
        schema.feature_frame(pd.DataFrame({"y": [1]}))


def test_multiclass_auc_ignores_a_class_absent_from_the_split() -> None:
    y = np.array([0, 1, 0, 1])  # class 2 is absent
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    m = classification_metrics(y, proba)
    assert m["roc_auc"] == 1.0 and np.isfinite(m["pr_auc"])
