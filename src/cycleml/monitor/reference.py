"""The reference profile monitoring compares with: held-out rows beside the model's
predictions, in the very columns ``cycleml predict`` writes and the service logs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cycleml.data.schema import Schema
from cycleml.scoring.batch import score_table
from cycleml.scoring.loaded import LoadedModel

__all__ = ["canonical_target", "profile", "with_predictions"]


def canonical_target(schema: Schema, values: pd.Series) -> pd.Series:
    """Labels as the model's class names (``1``, ``1.0`` and ``True`` are one class), or as
    float64 numbers for regression; missing labels stay missing. Raises ValueError naming
    the target column for a label the model cannot take."""
    if schema.task == "regression":
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        wrong = int((numbers.isna() & values.notna()).sum())
        if wrong:
            raise ValueError(f"column {schema.target!r} has {wrong} label(s) that are not numbers")
        return numbers
    present = values.notna().to_numpy()
    out = np.full(len(values), None, dtype=object)
    if present.any():
        out[present] = schema.decode_target(schema.encode_target(values[present]))
    return pd.Series(out, index=values.index, dtype="object")


def with_predictions(
    frame: pd.DataFrame, model: LoadedModel, na_values: list[str] | None = None
) -> pd.DataFrame:
    """``frame``'s model inputs beside ``model``'s ``prediction`` and probabilities: the
    shape of a reference profile and of a monitored window."""
    scored = score_table(frame, model, na_values).to_pandas()
    out = frame[model.schema.inputs].reset_index(drop=True).copy()
    for col in scored.columns:
        if col not in ("model_name", "model_version"):
            out[col] = scored[col].to_numpy()
    return out


def profile(frame: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """``frame``'s inputs and target beside ``model``'s predictions for them."""
    out = with_predictions(frame, model)
    out[model.schema.target] = canonical_target(model.schema, frame[model.schema.target]).to_numpy()
    return out
