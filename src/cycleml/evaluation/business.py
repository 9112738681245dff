"""The business KPI: how predictions turn into money, from the ``goals`` block.

Binary classification is a campaign: contact the rows predicted positive, pay
``offer_cost`` each, and retain ``acceptance_rate`` of the true positives, each worth
``value_if_retained``. Profit is counted against doing nothing, so contacting nobody earns
0 and contacting everyone is the other obvious baseline. Regression costs
``cost_per_unit_error`` per unit of absolute error; ``error_band`` reports the share of
predictions close enough to be useful. Multiclass problems use accuracy as their KPI.
"""

from __future__ import annotations

import numpy as np

from cycleml.config import CampaignGoals, ErrorGoals, GoalsParams
from cycleml.data.schema import Schema

__all__ = ["best_threshold", "campaign_kpis", "error_kpis", "kpi_name", "profit"]


def kpi_name(schema: Schema) -> str:
    """The KPI a model of this schema is judged by (direction: see config.LOWER_IS_BETTER)."""
    if schema.task == "regression":
        return "error_cost"
    return "profit" if schema.is_binary else "accuracy"


def profit(y_true: np.ndarray, act: np.ndarray, goals: CampaignGoals) -> float:
    """Expected profit of acting on the rows where ``act`` is true."""
    act = act.astype(bool)
    gained = y_true[act].sum() * goals.acceptance_rate * goals.value_if_retained
    return float(gained - act.sum() * goals.offer_cost)


def campaign_kpis(y_true: np.ndarray, act: np.ndarray, goals: CampaignGoals) -> dict[str, float]:
    """Profit of the decisions, of contacting everyone and nobody, and the uplift over both."""
    model = profit(y_true, act, goals)
    everyone = profit(y_true, np.ones_like(y_true, dtype=bool), goals)
    return {
        "profit": model,
        "profit_contact_all": everyone,
        "profit_contact_none": 0.0,
        "profit_uplift": model - max(everyone, 0.0),
    }


def error_kpis(y_true: np.ndarray, y_pred: np.ndarray, goals: ErrorGoals) -> dict[str, float]:
    """Mean cost of the error per prediction; share within the acceptable band."""
    error = np.abs(y_true - y_pred)
    out = {"error_cost": float(error.mean() * goals.cost_per_unit_error)}
    if goals.error_band is not None:
        out["within_band"] = float((error <= goals.error_band).mean())
    return out


def best_threshold(y_true: np.ndarray, score: np.ndarray, goals: CampaignGoals) -> float:
    """The probability cut that maximises profit (act when score >= cut).

    Sorts once and sums gains cumulatively, so it is exact over every distinct score and
    O(n log n). Returns a cut above every score (contact nobody) when no cut is profitable.
    """
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    gains = y_true[order] * goals.acceptance_rate * goals.value_if_retained - goals.offer_cost
    cumulative = np.cumsum(gains)
    # a cut can only fall between distinct scores: all ties are contacted together
    last_of_tie = np.append(ranked[1:] < ranked[:-1], True)
    candidates = np.flatnonzero(last_of_tie)
    if not len(candidates) or cumulative[candidates].max() <= 0:
        return float(np.nextafter(ranked[0], np.inf)) if len(ranked) else 0.5
    best = candidates[np.argmax(cumulative[candidates])]
    return float(ranked[best])


def task_kpis(
    schema: Schema, y_true: np.ndarray, decision: np.ndarray, goals: GoalsParams
) -> dict[str, float]:
    """The KPIs of hard decisions (binary: act or not; regression: predictions)."""
    if schema.task == "regression":
        return error_kpis(y_true, decision, goals.regression)
    if schema.is_binary:
        return campaign_kpis(y_true, decision, goals.classification)
    return {"accuracy": float((y_true == decision).mean())}
