"""Behavioural tests of a model trained on the demo data (Made-With-ML style)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from cycleml.config import parse_params
from cycleml.data.cleaning import clean
from cycleml.data.demo import generate_churn
from cycleml.data.schema import Schema
from cycleml.evaluation.metrics import classification_metrics
from cycleml.model.pipeline import fit_pipeline, predict_scores
from cycleml.stages.split import split
from cycleml.stages.validate import validate
from tests.conftest import small_params

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def trained() -> Iterator[tuple[Pipeline, Schema, pd.DataFrame]]:
    params = parse_params(small_params(rows=6000))
    frame, _ = clean(generate_churn(6000, seed=11), params.data)
    schema, _ = validate(frame, params.data, params.task, params.validate_)
    parts = split(frame, schema, params.split)
    pipeline, _ = fit_pipeline(schema, params.train, parts["train"], parts["valid"])
    yield pipeline, schema, parts["test"]


def churn_risk(model: tuple[Pipeline, Schema, pd.DataFrame], rows: pd.DataFrame) -> np.ndarray:
    pipeline, schema, _ = model
    return predict_scores(pipeline, schema, rows)[:, 1]


def test_minimum_functionality(trained: tuple[Pipeline, Schema, pd.DataFrame]) -> None:
    pipeline, schema, test = trained
    scores = predict_scores(pipeline, schema, test)
    assert classification_metrics(schema.encode_target(test["churn"]), scores)["roc_auc"] > 0.78


def test_invariance_to_identifiers(trained: tuple[Pipeline, Schema, pd.DataFrame]) -> None:
    test = trained[2].head(200)
    renamed = test.assign(customer_id="X" + test["customer_id"])
    np.testing.assert_array_equal(churn_risk(trained, test), churn_risk(trained, renamed))


def test_direction_contract_length_lowers_risk(
    trained: tuple[Pipeline, Schema, pd.DataFrame],
) -> None:
    test = trained[2].head(500)
    monthly = churn_risk(trained, test.assign(contract="Month-to-month"))
    two_year = churn_risk(trained, test.assign(contract="Two year"))
    assert (monthly > two_year).mean() > 0.9


def test_direction_more_tenure_lowers_risk(trained: tuple[Pipeline, Schema, pd.DataFrame]) -> None:
    test = trained[2].head(500)
    new = churn_risk(trained, test.assign(tenure_months=1.0))
    loyal = churn_risk(trained, test.assign(tenure_months=60.0))
    assert new.mean() > loyal.mean() + 0.1


def test_unseen_category_and_missing_values_still_score(
    trained: tuple[Pipeline, Schema, pd.DataFrame],
) -> None:
    test = trained[2].head(50)
    odd = test.assign(contract="Quarterly", payment_method=None, support_calls=np.nan)
    risk = churn_risk(trained, odd)
    assert np.isfinite(risk).all() and ((risk >= 0) & (risk <= 1)).all()
