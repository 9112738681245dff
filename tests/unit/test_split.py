from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cycleml.config import SplitParams
from cycleml.data.schema import Schema
from cycleml.stages.split import split

pytestmark = pytest.mark.unit

SCHEMA = Schema(
    task="classification",
    target="y",
    classes=["No", "Yes"],
    numeric=["x"],
    categorical=[],
    id_columns=["id"],
    time_column="t",
)


def frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.normal(size=n),
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n), unit="D"),
            "y": np.where(rng.random(n) < 0.1, "Yes", "No"),
        }
    )


def test_ratios_disjoint_and_complete() -> None:
    parts = split(frame(), SCHEMA, SplitParams(train=0.7, valid=0.2, test=0.1))
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 700, "valid": 200, "test": 100}
    ids = [set(p["id"]) for p in parts.values()]
    assert set().union(*ids) == set(range(1000))
    assert sum(len(i) for i in ids) == 1000


def test_stratified_keeps_the_class_balance() -> None:
    data = frame()
    overall = (data["y"] == "Yes").mean()
    for part in split(data, SCHEMA, SplitParams()).values():
        assert (part["y"] == "Yes").mean() == pytest.approx(overall, abs=0.011)


def test_same_seed_same_split_other_seed_other_split() -> None:
    a = split(frame(), SCHEMA, SplitParams(seed=3))["test"]["id"].tolist()
    b = split(frame(), SCHEMA, SplitParams(seed=3))["test"]["id"].tolist()
    c = split(frame(), SCHEMA, SplitParams(seed=4))["test"]["id"].tolist()
    assert a == b and a != c


def test_time_split_puts_the_future_in_test() -> None:
    parts = split(frame(), SCHEMA, SplitParams(strategy="time"))
    assert parts["train"]["t"].max() < parts["valid"]["t"].min()
    assert parts["valid"]["t"].max() < parts["test"]["t"].min()


def test_rows_without_target_are_dropped() -> None:
    data = frame()
    data.loc[:49, "y"] = None
    parts = split(data, SCHEMA, SplitParams(strategy="random"))
    assert sum(len(p) for p in parts.values()) == 950


def test_regression_stratifies_on_target_deciles() -> None:
    data = frame().assign(y=lambda f: np.random.default_rng(2).exponential(size=len(f)))
    schema = SCHEMA.model_copy(update={"task": "regression", "classes": []})
    parts = split(data, schema, SplitParams())
    assert parts["test"]["y"].max() > data["y"].quantile(0.9)
