"""Tune's pure parts: search space -> suggestions, the objective and its direction."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cycleml.config import ErrorGoals, GoalsParams, SearchDimension, XGBoostParams
from cycleml.data.schema import Schema
from cycleml.paths import Paths
from cycleml.tuning.objective import LossReport
from cycleml.tuning.space import check_space, direction, resolve_objective, suggest
from cycleml.tuning.study import storage_url

pytestmark = pytest.mark.unit

BINARY = Schema(
    task="classification", target="y", classes=["No", "Yes"], numeric=[], categorical=[]
)
MULTI = Schema(
    task="classification", target="y", classes=["a", "b", "c"], numeric=[], categorical=[]
)
REGRESSION = Schema(task="regression", target="y", numeric=["x"], categorical=[])
GOALS = GoalsParams()

SPACE = {
    "n_estimators": SearchDimension(type="int", low=50, high=400),
    "max_depth": SearchDimension(type="int", low=2, high=64, log=True),
    "learning_rate": SearchDimension(type="float", low=0.001, high=0.3, log=True),
    "subsample": SearchDimension(type="float", low=0.6, high=1.0),
    "min_child_weight": SearchDimension(type="categorical", choices=[1, 5, 10.5]),
}


def test_suggestions_respect_types_bounds_and_scales() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        values = suggest(trial, SPACE)
        assert set(values) == set(SPACE)
        assert isinstance(values["n_estimators"], int) and 50 <= values["n_estimators"] <= 400
        assert isinstance(values["max_depth"], int) and 2 <= values["max_depth"] <= 64
        assert 0.001 <= values["learning_rate"] <= 0.3
        assert 0.6 <= values["subsample"] <= 1.0
        assert values["min_child_weight"] in (1, 5, 10.5)
        study.tell(trial, 0.0)
    dists = study.trials[0].distributions
    assert dists["n_estimators"] == IntDistribution(50, 400)
    assert dists["max_depth"] == IntDistribution(2, 64, log=True)
    assert dists["learning_rate"] == FloatDistribution(0.001, 0.3, log=True)
    assert dists["subsample"] == FloatDistribution(0.6, 1.0)
    assert dists["min_child_weight"] == CategoricalDistribution([1, 5, 10.5])
    # log scale: a uniform draw over [0.001, 0.3] would almost never fall below 0.01
    small = sum(t.params["learning_rate"] < 0.01 for t in study.trials)
    assert small >= 10


def test_fixed_trial_replays_values_into_train_params() -> None:
    from cycleml.config import TrainParams
    from cycleml.model.pipeline import with_overrides

    fixed = {"n_estimators": 120, "max_depth": 4, "learning_rate": 0.02, "subsample": 0.7}
    fixed["min_child_weight"] = 5
    values = suggest(optuna.trial.FixedTrial(fixed), SPACE)
    assert values == fixed
    tuned = with_overrides(TrainParams(), values).xgboost
    assert (tuned.n_estimators, tuned.max_depth, tuned.learning_rate) == (120, 4, 0.02)
    assert tuned.reg_lambda == XGBoostParams().reg_lambda  # untouched keys keep the base


def test_check_space_names_the_bad_dimension() -> None:
    check_space(SPACE, XGBoostParams())
    too_big = {"subsample": SearchDimension(type="float", low=0.5, high=1.5)}
    with pytest.raises(ValueError, match=r"tune\.search_space\.subsample: 1\.5 is not a valid"):
        check_space(too_big, XGBoostParams())
    log_zero = {"reg_alpha": SearchDimension(type="float", low=0.0, high=1.0, log=True)}
    with pytest.raises(ValueError, match=r"tune\.search_space\.reg_alpha: .*low > 0"):
        check_space(log_zero, XGBoostParams())
    bad_choice = {"max_depth": SearchDimension(type="categorical", choices=[3, 0])}
    with pytest.raises(ValueError, match=r"tune\.search_space\.max_depth: 0 is not a valid"):
        check_space(bad_choice, XGBoostParams())


@pytest.mark.parametrize(
    ("schema", "objective", "name", "way"),
    [
        (BINARY, "auto", "profit", "maximize"),
        (BINARY, "roc_auc", "roc_auc", "maximize"),
        (BINARY, "log_loss", "log_loss", "minimize"),
        (BINARY, "profit_uplift", "profit_uplift", "maximize"),
        (MULTI, "auto", "accuracy", "maximize"),
        (MULTI, "f1", "f1", "maximize"),
        (REGRESSION, "auto", "error_cost", "minimize"),
        (REGRESSION, "rmse", "rmse", "minimize"),
        (REGRESSION, "r2", "r2", "maximize"),
    ],
)
def test_objective_resolution_and_direction(
    schema: Schema, objective: str, name: str, way: str
) -> None:
    assert resolve_objective(objective, schema, GOALS) == name
    assert direction(name) == way


def test_unknown_objective_names_the_key_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"tune\.objective: 'rmse'.*binary") as err:
        resolve_objective("rmse", BINARY, GOALS)
    assert "auto (= profit)" in str(err.value) and "roc_auc" in str(err.value)
    with pytest.raises(ValueError, match=r"tune\.objective: 'profit'.*regression"):
        resolve_objective("profit", REGRESSION, GOALS)
    # within_band exists only when goals.regression.error_band is set
    with pytest.raises(ValueError, match="within_band"):
        resolve_objective("within_band", REGRESSION, GOALS)
    banded = GoalsParams(regression=ErrorGoals(error_band=5.0))
    assert resolve_objective("within_band", REGRESSION, banded) == "within_band"


def test_relative_sqlite_storage_resolves_against_the_project_root() -> None:
    paths = Paths(Path("/srv/project"))
    assert storage_url("sqlite:///optuna.db", paths) == "sqlite:////srv/project/optuna.db"
    assert storage_url("sqlite:////abs/optuna.db", paths) == "sqlite:////abs/optuna.db"
    assert storage_url("postgresql://u@h/db", paths) == "postgresql://u@h/db"


def test_losses_reach_a_maximising_study_negated_and_every_few_rounds() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    report = LossReport(trial, sign=-1.0, every=10)
    for step in range(25):
        report.report(1.0 - step / 100, step)
    assert report.last_step == 24
    stored = study.trials[0].intermediate_values
    assert stored == {0: -1.0, 10: pytest.approx(-0.9), 20: pytest.approx(-0.8)}
