from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cycleml.config import CampaignGoals, ErrorGoals, GoalsParams, Rule
from cycleml.data.schema import Schema
from cycleml.evaluation import baselines as bl
from cycleml.evaluation.business import best_threshold, campaign_kpis, error_kpis, profit

pytestmark = pytest.mark.unit
GOALS = CampaignGoals(value_if_retained=500, offer_cost=50, acceptance_rate=0.3)
BINARY = Schema(
    task="classification", target="y", classes=["No", "Yes"], numeric=["x"], categorical=["c"]
)


def test_profit_by_hand() -> None:
    y = np.array([1, 1, 0, 0])
    # contact the first three: 2 churners * 0.3 * 500 - 3 * 50 = 300 - 150
    assert profit(y, np.array([1, 1, 1, 0]), GOALS) == pytest.approx(150)
    kpis = campaign_kpis(y, np.array([1, 1, 0, 0]), GOALS)
    assert kpis["profit"] == pytest.approx(200)
    assert kpis["profit_contact_all"] == pytest.approx(100)
    assert kpis["profit_contact_none"] == 0
    assert kpis["profit_uplift"] == pytest.approx(100)


def test_goals_change_the_kpi() -> None:
    y, act = np.array([1, 0, 0]), np.array([1, 1, 0])
    cheap = CampaignGoals(value_if_retained=500, offer_cost=10, acceptance_rate=0.3)
    assert profit(y, act, cheap) > profit(y, act, GOALS)


def test_best_threshold_maximises_profit_and_handles_ties() -> None:
    rng = np.random.default_rng(0)
    score = rng.random(2000)
    y = (rng.random(2000) < score).astype(int)  # calibrated scores
    cut = best_threshold(y, score, GOALS)
    # contact when p * 0.3 * 500 > 50, i.e. p > 1/3 for calibrated scores
    assert cut == pytest.approx(1 / 3, abs=0.08)
    grid = [profit(y, score >= t, GOALS) for t in np.linspace(0, 1, 101)]
    assert profit(y, score >= cut, GOALS) >= max(grid) - 1e-9
    tied = np.array([0.5, 0.5, 0.5, 0.1])
    assert best_threshold(np.array([1, 1, 0, 0]), tied, GOALS) == 0.5


def test_no_profitable_cut_contacts_nobody() -> None:
    y, score = np.array([0, 0, 1]), np.array([0.9, 0.8, 0.1])
    cut = best_threshold(y, score, CampaignGoals(offer_cost=1000))
    assert (score >= cut).sum() == 0


def test_error_kpis() -> None:
    kpis = error_kpis(
        np.array([10.0, 20.0]),
        np.array([12.0, 14.0]),
        ErrorGoals(cost_per_unit_error=2, error_band=3),
    )
    assert kpis == {"error_cost": pytest.approx(8.0), "within_band": 0.5}


def frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b"], size=n)
    y = np.where((x > 0.5) | (c == "b") & (rng.random(n) < 0.3), "Yes", "No")
    return pd.DataFrame({"x": x, "c": c, "y": y})


def test_auto_rule_finds_the_informative_cut() -> None:
    found = bl.auto_rule(BINARY, frame(), GoalsParams())
    assert found is not None and found.expression.startswith("`x` >")
    assert float(found.expression.split(">")[1]) == pytest.approx(0.5, abs=0.35)


def test_declared_rules_score_and_bad_rules_are_named() -> None:
    rule = bl.declared([Rule(name="b_only", expression="c == 'b'")])[0]
    decided = bl.decisions(rule, frame(), BINARY, 0.0)
    assert decided.sum() == (frame()["c"] == "b").sum()
    with pytest.raises(bl.RuleColumnMissing, match="b_only"):
        bl.decisions(bl.Baseline("b_only", "colour == 'b'", "declared"), frame(), BINARY, 0.0)
    with pytest.raises(bl.RuleError, match="cannot evaluate"):
        bl.decisions(bl.Baseline("broken", "x >", "declared"), frame(), BINARY, 0.0)


def test_regression_stump_baseline() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, 500)
    data = pd.DataFrame(
        {"x": x, "c": "a", "y": np.where(x > 6, 100.0, 10.0) + rng.normal(0, 1, 500)}
    )
    schema = Schema(task="regression", target="y", numeric=["x"], categorical=[])
    found = bl.auto_rule(schema, data, GoalsParams())
    assert found is not None
    pred = bl.decisions(found, data, schema, 0.0)
    assert np.abs(pred - data["y"]).mean() < 5
