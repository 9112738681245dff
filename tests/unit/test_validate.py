from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cycleml.config import DataParams, ValidateParams
from cycleml.data.validation import infer_task
from cycleml.data.validation_report import ValidationFailed
from cycleml.stages.validate import validate

pytestmark = pytest.mark.unit
RULES = ValidateParams(min_rows=10, min_class_rows=3)


def data(**overrides: Any) -> DataParams:
    base: dict[str, Any] = {"source": {"kind": "demo"}, "target": "y", "id_columns": ["id"]}
    return DataParams.model_validate(base | overrides)


def table(n: int = 200, labels: tuple[str, ...] = ("No", "Yes")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": [f"C{i:05d}" for i in range(n)],
            "x": rng.normal(size=n),
            "plan": rng.choice(["a", "b", "c"], size=n),
            "note": [f"free text {i}" for i in range(n)],
            "flat": ["same"] * n,
            "y": rng.choice(list(labels), size=n, p=[0.7, 0.3] if len(labels) == 2 else None),
        }
    )


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["Yes", "No"], "classification"),
        ([True, False], "classification"),
        ([0, 1, 1], "classification"),
        ([3.0, 5.0, 6.0, 5.0], "classification"),
        (np.linspace(0, 1, 50), "regression"),
        (list(range(40)), "regression"),
    ],
)
def test_infer_task(values: list[Any], task: str) -> None:
    assert infer_task(pd.Series(values)) == task


def test_schema_features_and_findings() -> None:
    schema, report = validate(table(), data(positive_class="Yes"), "auto", RULES)
    assert schema.task == "classification" and schema.classes == ["No", "Yes"]
    assert schema.numeric == ["x"] and schema.categorical == ["plan"]
    assert schema.excluded.keys() == {"note", "flat"}
    assert "identifier" in schema.excluded["note"] and "constant" in schema.excluded["flat"]
    assert sum(report.class_counts.values()) == 200


def test_positive_class_defaults_to_minority_and_respects_0_1() -> None:
    schema, _ = validate(table(), data(), "auto", RULES)
    assert schema.positive_class == "Yes"  # the minority
    numeric = table().assign(y=lambda f: (f["y"] == "No").astype(int))
    schema, _ = validate(numeric, data(), "auto", RULES)
    assert schema.classes == ["0", "1"]  # 1 is positive even when it is the majority


@pytest.mark.parametrize(
    ("frame", "params", "task", "message"),
    [
        (
            table(),
            data(target="churn"),
            "auto",
            r"data.target: column\(s\) \['churn'\] not in the data",
        ),
        (table(), data(id_columns=["cust"]), "auto", r"data.id_columns: .*'cust'"),
        (
            table(),
            data(positive_class="Maybe"),
            "auto",
            "data.positive_class: 'Maybe' is not a label",
        ),
        (table(5), data(), "auto", "validate.min_rows"),
        (table().assign(y="Yes"), data(), "auto", "only one class"),
        (table(), data(), "regression", "target is not numeric"),
        (table(labels=("a", "b", "c")), data(positive_class="a"), "auto", "binary targets"),
        (table().assign(y=lambda f: f["y"].where(f.index > 100)), data(), "auto", "no target"),
        (table()[["id", "note", "flat", "y"]], data(), "auto", "no feature columns"),
    ],
)
def test_hard_failures_name_the_column(
    frame: pd.DataFrame, params: DataParams, task: str, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        validate(frame, params, task, RULES)


def test_tiny_class_is_refused() -> None:
    frame = table()
    frame.loc[:1, "y"] = "Rare"
    with pytest.raises(ValidationFailed, match="Rare"):
        validate(frame, data(), "auto", RULES)


def test_row_numbers_are_not_features() -> None:
    frame = table().assign(passenger_id=np.arange(1, 201))
    schema, _ = validate(frame, data(), "auto", RULES)
    assert "passenger_id" not in schema.features
    assert "row number" in schema.excluded["passenger_id"]
