"""Baselines without ML: a dummy, the rules declared in params, one rule found automatically.

Every baseline is a pandas expression over the raw columns, so it is stored as text,
re-scored on any split, and read by a person: ``contract == 'Month-to-month'``. A model
has to beat the best of them on the business KPI to be worth registering.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from cycleml.config import GoalsParams, Rule
from cycleml.data.schema import Schema
from cycleml.evaluation.business import task_kpis

__all__ = [
    "Baseline",
    "RuleColumnMissing",
    "RuleError",
    "auto_rule",
    "decisions",
    "dummy_baselines",
    "score",
]

_CUTS = np.linspace(0.05, 0.95, 19)
_TOP_CATEGORIES = 20


class RuleError(ValueError):
    """A rule expression in params cannot be evaluated on the data."""


class RuleColumnMissing(RuleError):
    """A rule names a column this data does not have (a rule written for other data)."""


@dataclass(frozen=True)
class Baseline:
    name: str
    expression: str
    origin: str  # dummy | declared | auto

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quote(column: str) -> str:
    return f"`{column}`"


def decisions(
    baseline: Baseline, frame: pd.DataFrame, schema: Schema, fallback: float
) -> np.ndarray:
    """The baseline's decisions: 0/1 (binary), a class index (multiclass) or a prediction."""
    try:
        result = frame.eval(baseline.expression, engine="python")
    except pd.errors.UndefinedVariableError as err:
        raise RuleColumnMissing(f"frame.rules: {baseline.name!r}: {err}") from None
    except Exception as err:  # noqa: BLE001 - pandas raises many kinds; all mean "bad rule"
        raise RuleError(
            f"frame.rules: {baseline.name!r}: cannot evaluate {baseline.expression!r} "
            f"({type(err).__name__}: {err}); columns are {', '.join(map(str, frame.columns))}"
        ) from None
    values = pd.Series(np.broadcast_to(np.asarray(result), (len(frame),)), index=frame.index)
    if schema.task == "regression":
        return pd.to_numeric(values, errors="coerce").fillna(fallback).to_numpy(dtype="float64")
    if schema.is_binary:
        return values.fillna(False).astype(bool).to_numpy(dtype="int64")
    return schema.encode_target(values)


def dummy_baselines(schema: Schema, train: pd.DataFrame) -> list[Baseline]:
    """Constant answers: contact nobody / everyone, the majority class, the mean."""
    y = train[schema.target]
    if schema.task == "regression":
        return [
            Baseline("dummy_mean", repr(float(y.mean())), "dummy"),
            Baseline("dummy_median", repr(float(y.median())), "dummy"),
        ]
    if schema.is_binary:
        return [
            Baseline("contact_none", "False", "dummy"),
            Baseline("contact_all", "True", "dummy"),
        ]
    majority = schema.classes[int(np.bincount(schema.encode_target(y)).argmax())]
    return [Baseline("dummy_most_frequent", repr(majority), "dummy")]


def declared(rules: list[Rule]) -> list[Baseline]:
    return [Baseline(rule.name, rule.expression, "declared") for rule in rules]


def _candidates(schema: Schema, train: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(expression, mask) for one-feature conditions: numeric cuts and single categories."""
    out: list[tuple[str, pd.Series]] = []
    for col in schema.numeric:
        x = train[col]
        for cut in map(float, np.unique(x.quantile(_CUTS).dropna().round(6))):
            out.append((f"{_quote(col)} <= {cut!r}", x <= cut))
            out.append((f"{_quote(col)} > {cut!r}", x > cut))
    for col in schema.categorical:
        for value in train[col].value_counts().index[:_TOP_CATEGORIES]:
            out.append((f"{_quote(col)} == {str(value)!r}", train[col] == value))
    return out


def auto_rule(schema: Schema, train: pd.DataFrame, goals: GoalsParams) -> Baseline | None:
    """The best one-feature rule on the training data (by KPI), or None for multiclass.

    Binary: act on the rows meeting one condition. Regression: a one-split stump, the mean
    target on each side of the condition.
    """
    if schema.task == "classification" and not schema.is_binary:
        return None
    y = schema.encode_target(train[schema.target])
    best: tuple[float, str] | None = None
    for condition, mask in _candidates(schema, train):
        hit = mask.to_numpy(dtype=bool)
        if schema.is_binary:
            value = task_kpis(schema, y, hit.astype("int64"), goals)["profit"]
            expression = condition
        else:
            if hit.all() or not hit.any():
                continue
            inside, outside = float(y[hit].mean()), float(y[~hit].mean())
            prediction = np.where(hit, inside, outside)
            value = -task_kpis(schema, y, prediction, goals)["error_cost"]
            # (condition) * (a - b) + b: rows where the condition is unknown get b
            expression = f"({condition}) * {inside - outside!r} + {outside!r}"
        if best is None or value > best[0]:
            best = (value, expression)
    return None if best is None else Baseline("auto_rule", best[1], "auto")


def score(
    baseline: Baseline,
    frame: pd.DataFrame,
    schema: Schema,
    goals: GoalsParams,
    fallback: float,
) -> dict[str, float]:
    """The baseline's KPIs on ``frame``."""
    y = schema.encode_target(frame[schema.target])
    return task_kpis(schema, y, decisions(baseline, frame, schema, fallback), goals)
