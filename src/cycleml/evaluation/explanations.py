"""SHAP explanations from XGBoost's own TreeSHAP (``pred_contribs``), per source feature.

Pure functions of a fitted Pipeline and a table: no files, no MLflow. XGBoost is imported
when an explanation is asked for, not with this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from cycleml.data.schema import Schema
from cycleml.evaluation.segments import plain
from cycleml.model.pipeline import iteration_range

__all__ = ["explanations", "feature_sources"]

_TOP_FEATURES = 5
_BASE = "(base value)"
_OTHER = "(other features)"


def feature_sources(preprocess: ColumnTransformer) -> list[str]:
    """The input column behind each output column of a fitted ColumnTransformer.

    One-hot columns ``contract_Two year`` map back to ``contract``: within each transformer
    the output is given to the longest of its input columns that the name equals or starts
    with (``<column>_``), so ``contract_x_internet_DSL`` goes to ``contract_x_internet``,
    not ``contract``. An output matching no input keeps its own name.
    """
    names = [str(n) for n in preprocess.get_feature_names_out()]
    sources = list(names)
    for name, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, str) or name not in preprocess.output_indices_:
            continue  # "drop" / "passthrough" remainder: drop has no outputs
        listed = [columns] if isinstance(columns, str | int) else list(columns)
        inputs = [
            str(preprocess.feature_names_in_[c]) if isinstance(c, int | np.integer) else str(c)
            for c in listed
        ]
        for i in range(*preprocess.output_indices_[name].indices(len(names))):
            out = names[i].removeprefix(f"{name}__")
            match = [c for c in inputs if out == c or out.startswith(f"{c}_")]
            sources[i] = max(match, key=len) if match else out
    return sources


def explanations(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame, rows: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SHAP values from XGBoost's own TreeSHAP (``pred_contribs``), per source feature.

    Contributions are in margin units (log-odds for classification, the target for
    regression) and, with the base value, add up to the model's margin. One-hot columns
    are summed back into their source column; derived features count as themselves.
    Multiclass: global importance averages |SHAP| over classes; each explained row shows
    the contributions to its predicted class.

    Returns ``(importance, rows)``: ``feature, mean_abs_shap`` sorted by importance over
    all of ``frame``; and for the first ``rows`` rows a long table ``row, feature, value,
    contribution`` (``row`` is the position in ``frame``) holding the base value, the top 5
    features by |contribution| with their input values, and the sum of the rest, so each
    row's contributions add up to its margin.
    """
    import xgboost

    derive = pipeline.named_steps.get("derive")
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    model = pipeline.named_steps["model"]
    x = schema.feature_frame(frame)
    if derive is not None:
        x = derive.transform(x)
    matrix = np.asarray(preprocess.transform(x), dtype="float64")
    booster = model.get_booster()
    contribs = booster.predict(
        xgboost.DMatrix(matrix, feature_names=booster.feature_names, missing=model.missing),
        pred_contribs=True,
        iteration_range=iteration_range(model),
    )
    sources = feature_sources(preprocess)
    features = list(dict.fromkeys(sources))
    grouping = np.zeros((len(sources), len(features)))
    grouping[np.arange(len(sources)), [features.index(s) for s in sources]] = 1.0
    grouped = contribs[..., :-1] @ grouping  # (n, features) or (n, classes, features)
    base = contribs[..., -1]
    magnitude = np.abs(grouped).mean(axis=0)
    if grouped.ndim == 3:  # multiclass: per row, the predicted class
        magnitude = magnitude.mean(axis=0)
        chosen = contribs.sum(axis=2).argmax(axis=1)
        grouped = grouped[np.arange(len(chosen)), chosen]
        base = base[np.arange(len(chosen)), chosen]
    importance = (
        pd.DataFrame({"feature": features, "mean_abs_shap": magnitude})
        .sort_values("mean_abs_shap", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    records: list[dict[str, Any]] = []
    shown = min(rows, len(frame))
    top = np.argsort(-np.abs(grouped[:shown]), axis=1, kind="stable")[:, :_TOP_FEATURES]
    for r in range(shown):
        records.append({"row": r, "feature": _BASE, "value": None, "contribution": float(base[r])})
        for j in top[r]:
            value = x[features[j]].iloc[r] if features[j] in x.columns else None
            records.append(
                {
                    "row": r,
                    "feature": features[j],
                    "value": plain(value),
                    "contribution": float(grouped[r, j]),
                }
            )
        rest = float(grouped[r].sum() - grouped[r, top[r]].sum())
        records.append({"row": r, "feature": _OTHER, "value": None, "contribution": rest})
    per_row = pd.DataFrame.from_records(
        records, columns=["row", "feature", "value", "contribution"]
    )
    per_row["value"] = per_row["value"].astype(object)
    return importance, per_row
