"""The compiled scorer's plan: a fitted Pipeline read into JSON numbers and lookups.

At registration, :func:`compile_pipeline` reads the fitted steps into a *plan* (JSON):

- derived features: their specs, computed by :mod:`cycleml.scoring.columns` with the same
  formulas as :mod:`cycleml.model.features`, on numpy arrays;
- numeric columns: impute with the fitted statistic, then ``(x - mean) / scale``;
- categorical columns: impute ``missing``, then a category -> output-column table learnt by
  asking the fitted ``OneHotEncoder`` itself (so rare pooling and unseen categories land
  exactly where sklearn puts them);
- the booster: the rounds sklearn's ``predict_proba`` uses (``iteration_range``).

A step the compiler does not know (a custom transformer, another encoder) raises
:class:`NotCompilable`, and the version is served by the Pipeline, with the reason tagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cycleml.data.schema import Schema

__all__ = ["PLAN_VERSION", "NotCompilable", "compile_pipeline"]

PLAN_VERSION = 1
_NUMERIC_STRATEGIES = {"mean", "median", "most_frequent", "constant"}


class NotCompilable(ValueError):
    """The Pipeline holds a step the compiler cannot express; the message names it."""


def _steps(transformer: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    return [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]


def _numeric_block(steps: list[Any], columns: list[str]) -> dict[str, Any]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    fill = np.full(len(columns), np.nan)
    mean, scale = np.zeros(len(columns)), np.ones(len(columns))
    scaled = False
    for step in steps:
        if isinstance(step, SimpleImputer) and step.strategy in _NUMERIC_STRATEGIES:
            if scaled:  # the plan imputes, then scales
                raise NotCompilable("a numeric SimpleImputer after the scaler is not supported")
            if step.add_indicator:
                raise NotCompilable("SimpleImputer(add_indicator=True) is not supported")
            stats = np.asarray(step.statistics_, dtype="float64")
            if np.isnan(stats).any():  # sklearn drops all-missing columns: another layout
                raise NotCompilable("a numeric column was all missing in training")
            fill = stats
        elif isinstance(step, StandardScaler) and not scaled:
            scaled = True
            mean = np.asarray(step.mean_ if step.with_mean else np.zeros(len(columns)))
            scale = np.asarray(step.scale_ if step.with_std else np.ones(len(columns)))
        else:
            raise NotCompilable(f"numeric step {type(step).__name__} is not supported")
    return {
        "kind": "numeric",
        "columns": columns,
        "fill": fill.tolist(),
        "mean": mean.astype("float64").tolist(),
        "scale": scale.astype("float64").tolist(),
    }


def _onehot_lookup(encoder: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Per column: category -> output column (within the block), where None and unseen
    values go (-1: all zeros).

    Learnt by transforming probe rows with the fitted encoder: one row per known category
    of a column (the other columns held at their first category), one unseen value and
    None. The output columns that change between probes are that column's own. (sklearn's
    constant imputer fills NaN but not None, so None is a category of its own.)
    """
    known = [list(c) for c in encoder.categories_]
    held = [c[0] for c in known]
    sentinel = "\x00cycleml-unseen\x00"
    lookups = []
    for j, column in enumerate(columns):
        probes = np.array([held] * (len(known[j]) + 2), dtype=object)
        probes[:, j] = [*known[j], sentinel, None]
        out = np.asarray(encoder.transform(probes), dtype="float64")
        if not np.isin(out, (0.0, 1.0)).all():
            raise NotCompilable(f"the encoder of {column!r} is not a one-hot encoding")
        own = np.flatnonzero(out.min(axis=0) != out.max(axis=0))
        positions = []
        for row in out[:, own]:
            hot = np.flatnonzero(row)
            if len(hot) > 1:
                raise NotCompilable(f"the encoder of {column!r} sets several columns at once")
            positions.append(int(own[hot[0]]) if len(hot) else -1)
        table = {c: pos for c, pos in zip(known[j], positions, strict=False) if c is not None}
        lookups.append(
            {"column": column, "table": table, "unknown": positions[-2], "none": positions[-1]}
        )
    return lookups


def _categorical_block(steps: list[Any], columns: list[str]) -> dict[str, Any]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    if len(steps) != 2 or not isinstance(steps[1], OneHotEncoder):
        names = ", ".join(type(s).__name__ for s in steps)
        raise NotCompilable(f"categorical steps [{names}] are not SimpleImputer + OneHotEncoder")
    imputer, encoder = steps
    if not isinstance(imputer, SimpleImputer) or imputer.strategy != "constant":
        raise NotCompilable(f"categorical step {type(imputer).__name__} is not supported")
    if imputer.add_indicator or encoder.drop_idx_ is not None:
        raise NotCompilable("SimpleImputer(add_indicator) / OneHotEncoder(drop) not supported")
    for column, cats in zip(columns, encoder.categories_, strict=True):
        if not all(c is None or isinstance(c, str) for c in cats):
            raise NotCompilable(f"categorical column {column!r} has non-text categories")
    held = np.array([[c[0] for c in encoder.categories_]], dtype=object)
    return {
        "kind": "categorical",
        "columns": columns,
        "fill": str(imputer.fill_value),
        "width": int(np.asarray(encoder.transform(held)).shape[1]),
        "lookups": _onehot_lookup(encoder, columns),
    }


def compile_pipeline(pipeline: Any, schema: Schema) -> dict[str, Any]:
    """The plan (JSON-ready) of a fitted cycleml Pipeline: derive -> preprocess -> XGBoost.

    Raises:
        NotCompilable: a step, option or layout the compiled scorer cannot reproduce.
    """
    from sklearn.compose import ColumnTransformer

    from cycleml.model.features import DerivedFeatures
    from cycleml.model.pipeline import iteration_range

    steps = dict(pipeline.steps)
    if list(steps) != ["derive", "preprocess", "model"]:
        raise NotCompilable(f"pipeline steps {list(steps)} are not derive, preprocess, model")
    derive, pre, model = steps["derive"], steps["preprocess"], steps["model"]
    if not isinstance(derive, DerivedFeatures):
        raise NotCompilable(f"step 'derive' is a {type(derive).__name__}")
    if not isinstance(pre, ColumnTransformer):
        raise NotCompilable(f"step 'preprocess' is a {type(pre).__name__}")
    if type(model).__name__ not in {"XGBClassifier", "XGBRegressor"}:
        raise NotCompilable(f"step 'model' is a {type(model).__name__}, not XGBoost")
    blocks = []
    for name, transformer, columns in pre.transformers_:
        if transformer == "drop" or not len(columns):
            continue
        if transformer == "passthrough" or name == "remainder":
            raise NotCompilable(f"ColumnTransformer part {name!r} passes columns through")
        columns = [str(c) for c in columns]
        kinds = {"categorical" if c in schema.model_categorical else "numeric" for c in columns}
        if len(kinds) != 1:
            raise NotCompilable(f"ColumnTransformer part {name!r} mixes numeric and text columns")
        build = _categorical_block if kinds == {"categorical"} else _numeric_block
        blocks.append(build(_steps(transformer), columns))
    width = sum(len(b["columns"]) if b["kind"] == "numeric" else b["width"] for b in blocks)
    if width != model.n_features_in_:
        raise NotCompilable(
            f"the plan makes {width} features, the booster expects {model.n_features_in_}"
        )
    return {
        "version": PLAN_VERSION,
        "derived": list(derive.specs or []),
        "blocks": blocks,
        "n_features": width,
        "iteration_range": list(iteration_range(model)),
        "task": schema.task,
        "classes": len(schema.classes),
    }
