"""Monitoring's pure parts: time windows and the population stability index."""

from __future__ import annotations

import numpy as np
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
