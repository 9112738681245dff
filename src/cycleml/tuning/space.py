"""What tune searches for and over: the objective, its direction, the search space."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cycleml.config import (
    CLASSIFICATION_KPIS,
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    GoalsParams,
    SearchDimension,
    XGBoostParams,
)
from cycleml.data.schema import Schema
from cycleml.evaluation.business import kpi_name

if TYPE_CHECKING:
    import optuna

__all__ = [
    "TuneError",
    "check_space",
    "direction",
    "objective_choices",
    "problem",
    "resolve_objective",
    "suggest",
]


class TuneError(ValueError):
    """tune's params cannot work: an unknown objective, a search range train would refuse."""


def problem(schema: Schema) -> str:
    """``binary``, ``multiclass`` or ``regression``: what decides the metrics and the loss."""
    if schema.task == "regression":
        return "regression"
    return "binary" if schema.is_binary else "multiclass"


def objective_choices(schema: Schema, goals: GoalsParams) -> tuple[str, ...]:
    """Every name ``evaluate.evaluate`` reports for this problem that can rank models."""
    if schema.task == "regression":
        band = ("within_band",) if goals.regression.error_band is not None else ()
        return (*REGRESSION_METRICS, "error_cost", *band)
    if schema.is_binary:
        return (*CLASSIFICATION_METRICS, *CLASSIFICATION_KPIS)
    return CLASSIFICATION_METRICS


def resolve_objective(objective: str, schema: Schema, goals: GoalsParams) -> str:
    """``tune.objective`` as a metric name: ``auto`` is the problem's business KPI."""
    name = kpi_name(schema) if objective == "auto" else objective
    choices = objective_choices(schema, goals)
    if name not in choices:
        raise TuneError(
            f"tune.objective: {objective!r} is not a metric of a {problem(schema)} model; "
            f"choose auto (= {kpi_name(schema)}) or one of {', '.join(choices)}"
        )
    return name


def direction(objective: str) -> str:
    """Optuna's study direction for a resolved objective name."""
    return "minimize" if objective in LOWER_IS_BETTER else "maximize"


def check_space(space: dict[str, SearchDimension], base: XGBoostParams) -> None:
    """Refuse a search space whose ends are not valid ``train.xgboost`` values.

    ``with_overrides`` does not re-validate, so a ``subsample`` up to 1.5 would otherwise
    reach XGBoost; this fails first, naming the key.
    """
    from pydantic import ValidationError

    for name, dim in space.items():
        where = f"tune.search_space.{name}"
        if dim.log and dim.type != "categorical" and (dim.low or 0) <= 0:
            raise TuneError(f"{where}: a log-scaled range needs low > 0, got {dim.low}")
        if dim.type == "categorical":
            values: list[Any] = list(dim.choices or [])
        elif dim.type == "int":
            values = [math.ceil(dim.low or 0), math.floor(dim.high or 0)]
        else:
            values = [dim.low, dim.high]
        for value in values:
            try:
                XGBoostParams.model_validate({**base.model_dump(), name: value})
            except ValidationError as err:
                msg = err.errors()[0]["msg"]
                raise TuneError(
                    f"{where}: {value!r} is not a valid train.xgboost.{name}: {msg}"
                ) from None


def suggest(trial: optuna.trial.BaseTrial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """The trial's values for every dimension of ``tune.search_space``."""
    values: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "categorical":
            values[name] = trial.suggest_categorical(name, list(dim.choices or []))
        elif dim.type == "int":
            low, high = math.ceil(dim.low or 0), math.floor(dim.high or 0)
            values[name] = trial.suggest_int(name, low, high, log=dim.log)
        else:
            values[name] = trial.suggest_float(name, dim.low or 0.0, dim.high or 0.0, log=dim.log)
    return values
