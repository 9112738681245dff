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
from cycleml.data.schema import Schema
from cycleml.model.features import DerivedFeatures

__all__ = ["build_preprocessor", "fit_pipeline", "predict_scores", "with_overrides"]


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


def with_overrides(params: TrainParams, xgboost: dict[str, Any]) -> TrainParams:
    """``params`` with some ``train.xgboost`` values replaced (tuned ones, or a trial's)."""
    return params.model_copy(update={"xgboost": params.xgboost.model_copy(update=xgboost)})


def _sample_weight(schema: Schema, params: TrainParams, y: np.ndarray) -> np.ndarray | None:
    """Inverse class frequency weights for ``train.imbalance: class_weight``, else None."""
    if params.imbalance != "class_weight" or schema.task != "classification":
        return None
    counts = np.bincount(y, minlength=len(schema.classes)).astype("float64")
    weights = len(y) / (len(schema.classes) * np.maximum(counts, 1))
    return np.asarray(weights[y])


def _estimator(schema: Schema, params: TrainParams, callbacks: list[Any] | None) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    common: dict[str, Any] = {
        **params.xgboost.model_dump(),
        "random_state": params.seed,
        "tree_method": "hist",
        "early_stopping_rounds": params.early_stopping_rounds,
        "callbacks": callbacks,
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
    callbacks: list[Any] | None = None,
) -> tuple[Pipeline, dict[str, list[float]]]:
    """Fit on train, early-stop on valid; return the pipeline and the learning curves.

    The preprocessor is fitted on train alone, then used to transform valid for XGBoost's
    evaluation set, so nothing from valid leaks into the fitted preprocessing. ``callbacks``
    are XGBoost training callbacks (tuning's pruning); they are removed before returning,
    so the saved model holds none.
    """
    x_train, y_train = schema.feature_frame(train), schema.encode_target(train[schema.target])
    x_valid, y_valid = schema.feature_frame(valid), schema.encode_target(valid[schema.target])
    derive = DerivedFeatures(schema.derived)
    x_train, x_valid = derive.transform(x_train), derive.transform(x_valid)
    pre = build_preprocessor(schema, params.features).fit(x_train, y_train)
    model = _estimator(schema, params, callbacks)
    model.fit(
        pre.transform(x_train),
        y_train,
        sample_weight=_sample_weight(schema, params, y_train),
        eval_set=[(pre.transform(x_train), y_train), (pre.transform(x_valid), y_valid)],
        verbose=False,
    )
    model.set_params(callbacks=None)
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


def iteration_range(model: Any) -> tuple[int, int]:
    """The boosting rounds the fitted XGBoost ``model`` predicts with, as XGBoost's
    ``iteration_range``: up to its best round when early stopping chose one, else all
    (``(0, 0)``). Training, explanations and the compiled scorer all use these rounds."""
    try:
        return 0, int(model.best_iteration) + 1
    except AttributeError:
        return 0, 0
