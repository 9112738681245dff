"""Monitoring's pure parts: time windows, the population stability index, labels typed
as the task's target, quality changes worded by direction, rows the model trained on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cycleml.monitor.result import MonitorError
from cycleml.monitor.statistics import psi
from cycleml.monitor.window import parse_since


def test_since_takes_durations_and_iso_dates() -> None:
    now = 1_800_000_000.0
    assert parse_since("24h", now) == now - 86_400
    assert parse_since("30m", now) == now - 1_800
    assert parse_since("2w", now) == now - 14 * 86_400
    assert parse_since("2027-01-15", now) == 1_799_971_200  # midnight UTC
    assert parse_since("1970-01-02T00:00", now) == 86_400


def test_since_rejects_what_it_cannot_read() -> None:
    with pytest.raises(MonitorError, match="--since 'yesterday'"):
        parse_since("yesterday")


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 5, 20_000)
    assert psi(reference, rng.beta(2, 5, 20_000)) < 0.01
    assert psi(reference, rng.beta(3, 4, 20_000)) > 0.2


def test_psi_ignores_missing_values_and_handles_constant_outputs() -> None:
    reference = np.r_[np.full(500, 0.3), np.nan]
    assert psi(reference, np.full(400, 0.3)) == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(psi(np.array([np.nan]), np.array([0.1])))


def test_a_worse_metric_is_significant_only_when_the_rows_say_so() -> None:
    from cycleml.data.schema import Schema
    from cycleml.monitor.statistics import worse_by_chance

    schema = Schema(
        task="classification", target="y", classes=["0", "1"], numeric=["x"], categorical=[]
    )
    rng = np.random.default_rng(1)

    def rows(n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        p = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, noise, n), 0.01, 0.99)
        return y, np.column_stack([1 - p, p])

    reference = rows(5000, 0.2)
    same = worse_by_chance("log_loss", schema, reference, rows(5000, 0.2))
    worse = worse_by_chance("log_loss", schema, reference, rows(5000, 0.5))
    assert same is not None and same > 0.01
    assert worse is not None and worse < 1e-6
    auc_worse = worse_by_chance("roc_auc", schema, reference, rows(5000, 0.6))
    assert auc_worse is not None and auc_worse < 1e-6
    tiny = worse_by_chance("roc_auc", schema, reference, rows(40, 0.3))
    assert tiny is not None and tiny > 0.01  # 40 rows cannot show a small drop
    assert worse_by_chance("f1", schema, reference, rows(100, 0.2)) is None


def _schema(task: str, classes: list[str] | None = None, ids: list[str] | None = None) -> Any:
    from cycleml.data.schema import Schema

    return Schema(
        task=task,
        target="y",
        classes=classes or [],
        numeric=["x"],
        categorical=[],
        id_columns=ids or [],
    )


def test_regression_labels_become_numbers_whatever_arrived_first() -> None:
    """Labels arrive as Python objects (JSON from /feedback, a file's column); Evidently's
    regression report fails on an object target ('isinf not supported')."""
    from cycleml.monitor.window import prepare_window

    window = pd.DataFrame({"x": [1.0, 2.0, 3.0], "_label": [None, 151.0, "7.5"]})
    out = prepare_window(window, _schema("regression"), None)
    assert out["y"].dtype == "float64"
    assert out["y"].isna().tolist() == [True, False, False]
    assert out["y"].iloc[1:].tolist() == [151.0, 7.5]
    unlabelled = prepare_window(window.drop(columns="_label"), _schema("regression"), None)
    assert unlabelled["y"].dtype == "float64" and unlabelled["y"].isna().all()


def test_a_regression_label_that_is_not_a_number_is_an_error_naming_the_target() -> None:
    from cycleml.monitor.window import prepare_window

    window = pd.DataFrame({"x": [1.0, 2.0], "_label": [3.0, "cheap"]})
    with pytest.raises(MonitorError, match="'y' has 1 label"):
        prepare_window(window, _schema("regression"), None)


def test_class_labels_stay_class_names_with_none_where_missing() -> None:
    from cycleml.monitor.window import prepare_window

    schema = _schema("classification", ["setosa", "versicolor", "virginica"])
    window = pd.DataFrame({"x": [1.0, 2.0, 3.0], "_label": ["virginica", None, " setosa "]})
    out = prepare_window(window, schema, None)
    assert out["y"].tolist() == ["virginica", None, "setosa"]


@pytest.mark.parametrize(
    ("worse", "words"),
    [
        (0.067, "6.7% worse"),
        (-0.067, "6.7% better"),
        (0.0001, "unchanged"),
        (-1.5, "150.0% better"),
    ],
)
def test_a_relative_change_is_worded_by_its_direction(worse: float, words: str) -> None:
    from cycleml.monitor.quality import change_words

    assert change_words(worse) == words


def test_rmse_that_fell_reads_better_and_roc_auc_that_fell_reads_worse() -> None:
    """The relative worsening is signed by the metric's direction (config.LOWER_IS_BETTER)."""
    from cycleml.config import MonitorParams
    from cycleml.monitor.quality import model_quality

    rng = np.random.default_rng(3)
    y = rng.normal(100, 20, 400)
    reference = pd.DataFrame({"y": y, "prediction": y + rng.normal(0, 10, 400)})
    closer = pd.DataFrame({"y": y, "prediction": y + rng.normal(0, 5, 400)})
    cfg = MonitorParams()
    rmse = model_quality(_schema("regression"), reference, closer, 0.5, cfg)["metrics"]["rmse"]
    assert rmse["current"] < rmse["reference"]
    assert rmse["change"].endswith("% better") and not rmse["degraded"]

    schema = _schema("classification", ["0", "1"])
    labels = rng.integers(0, 2, 2000)

    def scored(noise: float) -> pd.DataFrame:
        p = np.clip(0.5 + (labels - 0.5) * 0.6 + rng.normal(0, noise, len(labels)), 0.01, 0.99)
        return pd.DataFrame({"y": labels.astype(str), "probability_0": 1 - p, "probability_1": p})

    auc = model_quality(schema, scored(0.2), scored(0.6), 0.5, cfg)["metrics"]["roc_auc"]
    assert auc["current"] < auc["reference"]
    assert auc["change"].endswith("% worse") and auc["degraded"]


def test_rows_the_model_trained_on_are_left_out_by_their_ids() -> None:
    from cycleml.data.schema import row_keys
    from cycleml.monitor.quality import unseen_rows

    schema = _schema("regression", ids=["id"])
    labelled = pd.DataFrame({"id": ["a", "b", "c", "d"], "x": [1.0, 2, 3, 4], "y": [1.0, 2, 3, 4]})
    seen = row_keys(pd.DataFrame({"id": ["b", "d", "z"]}), schema)
    kept, trained = unseen_rows(schema, labelled, seen)
    assert kept["id"].tolist() == ["a", "c"] and trained == {"left_out": 2}
    _, unknown = unseen_rows(schema, labelled, None)
    assert "not checked" in unknown["not_checked"]
    _, no_ids = unseen_rows(_schema("regression"), labelled, seen)
    assert no_ids["not_checked"].startswith("not checked (no data.id_columns")
    _, lacking = unseen_rows(schema, labelled.drop(columns="id"), seen)
    assert "lacks the id column(s) id" in lacking["not_checked"]


def test_logged_id_columns_keep_their_type_and_mixed_ones_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Clients send an id as text or a number; its type must match training's for the
    rows the model trained on to be found, and one mixing both must not stop monitoring."""
    import pyarrow as pa

    from cycleml.monitor.window import _json_columns

    types = pa.schema([pa.field("x", pa.float64())])
    texts = pd.Series(['{"x": 1, "id": 7, "other": "a"}', '{"x": 2.5, "id": 9}'])
    frame = _json_columns(texts, types, ["id"])
    assert list(frame.columns) == ["x", "id"] and frame["id"].tolist() == [7, 9]
    assert frame["id"].dtype == "int64"
    mixed = pd.Series(['{"x": 1, "id": 7}', '{"x": 2, "id": "C7"}'])
    frame = _json_columns(mixed, types, ["id"])
    assert list(frame.columns) == ["x"] and frame["x"].tolist() == [1.0, 2.0]
    assert any("mix text and numbers" in r.getMessage() for r in caplog.records)
