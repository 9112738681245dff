"""Derived features declared in ``featurize.derived``, computed inside the model's Pipeline.

Because the transformer is the Pipeline's first step, batch scoring and the HTTP service
compute exactly the same features as training did: there is no second copy to drift.
It is stateless (nothing is learnt in ``fit``), so it cannot leak validation data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from cycleml.data.schema import CATEGORICAL_KINDS

__all__ = ["CATEGORICAL_KINDS", "DerivedFeatures", "derive", "parse_dates"]


def _number(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def parse_dates(raw: pd.Series) -> pd.Series:
    """Datetimes from whatever a client sends: ISO 8601 text (fast), other date text, a
    mix of zone-aware and naive values (taken as UTC, so naive ones keep their parts);
    anything else is missing."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    dates = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    retry = dates.isna() & raw.notna()
    if retry.any():
        dates[retry] = pd.to_datetime(
            raw[retry].astype(str), errors="coerce", utc=True, format="mixed"
        )
    return dates


def derive(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.Series:
    """One derived column from its spec (see ``config.DerivedFeature``)."""
    kind, cols = spec["kind"], spec["columns"]
    if kind in ("ratio", "difference", "product"):
        a, b = _number(frame, cols[0]), _number(frame, cols[1])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if kind == "ratio":
                value = a / b.where(b != 0)
            else:
                value = a - b if kind == "difference" else a * b
        # an overflow (huge inputs) is missing, not infinite: the imputer fills it
        return value.where(np.isfinite(value))
    if kind == "date_part":
        dates = parse_dates(frame[cols[0]])
        part: pd.Series = getattr(dates.dt, spec["part"])
        return part.astype("float64")
    if kind == "bin":
        x = _number(frame, cols[0])
        bins = np.digitize(x.to_numpy(), np.asarray(spec["edges"], dtype="float64"))
        return pd.Series(np.where(x.isna(), np.nan, bins), index=frame.index, dtype="float64")
    if kind == "interaction":
        parts = [frame[c].astype("object") for c in cols]
        joined = parts[0].astype(str)
        for part in parts[1:]:
            joined = joined + " & " + part.astype(str)
        missing = pd.concat([p.isna() for p in parts], axis=1).any(axis=1)
        result: pd.Series = joined.where(~missing, None).astype("object")
        return result
    raise ValueError(f"unknown derived feature kind {kind!r}")


class DerivedFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Adds the declared derived columns to a DataFrame; everything else passes through."""

    def __init__(self, specs: list[dict[str, Any]] | None = None) -> None:
        self.specs = specs

    def fit(self, x: pd.DataFrame, y: Any = None) -> DerivedFeatures:
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        if not self.specs:
            return x
        new = {spec["name"]: derive(x, spec) for spec in self.specs}
        return x.assign(**new)
