"""The model: one sklearn Pipeline (preprocessing + XGBoost), the single scoring path.

Training, evaluation, batch scoring and the HTTP service all call this pipeline, so
preprocessing exists once and training/serving skew cannot appear.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cycleml.config import FeatureParams, TrainParams
from cycleml.features import DerivedFeatures
from cycleml.schema import Schema

__all__ = ["build_preprocessor", "fit_pipeline", "predict_scores"]


def build_preprocessor(schema: Schema, features: FeatureParams) -> ColumnTransformer:
    """Impute and scale numerics; impute and one-hot encode categoricals.

    Unseen and rare categories fall into one 'infrequent' column instead of failing, so a
    new contract type in production degrades gracefully rather than erroring.
    """
    numeric_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy=features.numeric_impute))
    ]
    if features.scale_numeric:
        numeric_steps.append(("scale", StandardScaler()))
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=features.min_category_share or None,
                    max_categories=features.max_categories,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), schema.model_numeric),
            ("categorical", categorical, schema.model_categorical),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def _estimator(schema: Schema, params: TrainParams) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    common: dict[str, Any] = {
        **params.xgboost.model_dump(),
        "random_state": params.seed,
        "tree_method": "hist",
        "early_stopping_rounds": params.early_stopping_rounds,
    }
    if schema.task == "regression":
        return XGBRegressor(objective="reg:squarederror", eval_metric="rmse", **common)
    if schema.is_binary:
        return XGBClassifier(objective="binary:logistic", eval_metric="logloss", **common)
    return XGBClassifier(objective="multi:softprob", eval_metric="mlogloss", **common)


def fit_pipeline(
    schema: Schema,
    params: TrainParams,
    train: pd.DataFrame,
    valid: pd.DataFrame,
) -> tuple[Pipeline, dict[str, list[float]]]:
    """Fit on train, early-stop on valid; return the pipeline and the learning curves.

    The preprocessor is fitted on train alone, then used to transform valid for XGBoost's
    evaluation set, so nothing from valid leaks into the fitted preprocessing.
    """
    x_train, y_train = schema.feature_frame(train), schema.encode_target(train[schema.target])
    x_valid, y_valid = schema.feature_frame(valid), schema.encode_target(valid[schema.target])
    derive = DerivedFeatures(schema.derived)
    x_train, x_valid = derive.transform(x_train), derive.transform(x_valid)
    pre = build_preprocessor(schema, params.features).fit(x_train, y_train)
    model = _estimator(schema, params)
    model.fit(
        pre.transform(x_train),
        y_train,
        eval_set=[(pre.transform(x_train), y_train), (pre.transform(x_valid), y_valid)],
        verbose=False,
    )
    history = model.evals_result()
    curves = {
        name: [float(v) for v in next(iter(history[key].values()))]
        for name, key in (("train", "validation_0"), ("valid", "validation_1"))
    }
    return Pipeline([("derive", derive), ("preprocess", pre), ("model", model)]), curves


def predict_scores(pipeline: Pipeline, schema: Schema, frame: pd.DataFrame) -> np.ndarray:
    """Class probabilities (n x classes) or regression predictions (n,)."""
    x = schema.feature_frame(frame)
    if schema.task == "classification":
        return np.asarray(pipeline.predict_proba(x))
    return np.asarray(pipeline.predict(x), dtype="float64")
