"""The problem's schema: task, target encoding and feature columns, fixed by `validate`.

Every stage after validate, and every scorer, reads this one description instead of
re-deriving it, so training and serving agree on which columns are features and what the
labels mean.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

__all__ = ["CATEGORICAL_KINDS", "Schema", "label_key", "row_keys"]

CATEGORICAL_KINDS = frozenset({"interaction"})
"""Kinds of derived feature (``featurize.derived``) that are categories, not numbers."""


def label_key(value: Any) -> str:
    """A label's canonical text, so 1, 1.0, "1" and " 1 " name the same class."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value).strip()


class Schema(BaseModel):
    """What validate decided about the table; saved as ``data/interim/schema.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["classification", "regression"]
    target: str
    classes: list[str] = []
    """Class labels (canonical text); a label's index is its encoded value. Binary: the
    positive class is last, so it encodes as 1."""
    numeric: list[str]
    categorical: list[str]
    id_columns: list[str] = []
    time_column: str | None = None
    excluded: dict[str, str] = {}
    """Columns left out of the features, with the reason."""
    derived: list[dict[str, Any]] = []
    """Derived features (``featurize.derived``) the Pipeline computes from raw columns."""

    @property
    def features(self) -> list[str]:
        """Raw columns used as features."""
        return [*self.numeric, *self.categorical]

    @property
    def inputs(self) -> list[str]:
        """Every raw column the model needs: features, then sources of derived features."""
        sources = [c for spec in self.derived for c in spec["columns"]]
        return list(dict.fromkeys([*self.features, *sources]))

    @property
    def model_numeric(self) -> list[str]:
        """Numeric columns the preprocessing sees: raw and derived."""
        derived = [d["name"] for d in self.derived if d["kind"] not in CATEGORICAL_KINDS]
        return [*self.numeric, *derived]

    @property
    def model_categorical(self) -> list[str]:
        derived = [d["name"] for d in self.derived if d["kind"] in CATEGORICAL_KINDS]
        return [*self.categorical, *derived]

    @property
    def is_binary(self) -> bool:
        return self.task == "classification" and len(self.classes) == 2

    @property
    def positive_class(self) -> str | None:
        return self.classes[-1] if self.is_binary else None

    def feature_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns in training order; raises KeyError naming missing ones."""
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise KeyError(
                f"missing feature column(s): {', '.join(missing)} "
                "(the model was trained with them; add them to the input)"
            )
        return frame[self.inputs]

    def encode_target(self, values: pd.Series) -> np.ndarray:
        """Labels to model targets: class index for classification, float for regression.

        Raises ValueError naming the unknown labels, so a typo in feedback data or a new
        class in fresh data is caught instead of silently mapped.
        """
        if self.task == "regression":
            return values.astype("float64").to_numpy()
        index = {label: i for i, label in enumerate(self.classes)}
        codes, uniques = pd.factorize(values, use_na_sentinel=False)  # one key per label
        keys = pd.Series(np.asarray([label_key(u) for u in uniques], dtype=object)[codes])
        unknown = sorted(set(keys) - index.keys())
        if unknown:
            raise ValueError(
                f"column {self.target!r} has label(s) {unknown[:5]} not seen in training "
                f"(known: {self.classes})"
            )
        return keys.map(index).to_numpy(dtype="int64")

    def decode_target(self, encoded: np.ndarray) -> np.ndarray:
        """Class indices back to labels."""
        labels: np.ndarray = np.asarray(self.classes, dtype=object)[encoded]
        return labels


def row_keys(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """A 64-bit key per row: its id columns when it has them, else its inputs and target.

    Register uses it to leave out test rows a champion trained on.
    """
    ids = [c for c in schema.id_columns if c in frame.columns]
    columns = ids or [c for c in [*schema.inputs, schema.target] if c in frame.columns]
    hashed = pd.util.hash_pandas_object(frame[columns], index=False)
    return np.asarray(hashed.to_numpy(dtype="uint64"))
