"""Model inputs as the compiled scorer takes them, and derived features computed over them.

A column is numbers, a pandas Series, or :class:`Coded` text (codes into distinct values,
which batch scoring builds straight from Arrow's dictionary encoding). Derived features use
:func:`cycleml.model.features.derive`'s formulas twice: over whole columns
(:func:`derive_column`) and over one record's Python values (:func:`derive_one`, the
service's path for a few records).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cycleml.model.features import parse_dates
from cycleml.scoring.plan import NotCompilable

__all__ = [
    "Coded",
    "Column",
    "as_coded",
    "derive_column",
    "derive_one",
    "floats",
    "is_naive",
    "number",
]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?")


@dataclass(frozen=True)
class Coded:
    """A text column as codes into its distinct values: -1 is None, -2 another missing
    value (NaN). Each distinct value is looked up, parsed or joined once, not once per row;
    batch scoring builds it straight from Arrow's dictionary encoding."""

    codes: np.ndarray
    uniques: Sequence[Any]

    @classmethod
    def of(cls, values: Any) -> Coded:
        series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        codes = codes.astype("int64", copy=False)
        missing = np.flatnonzero(codes < 0)
        if len(missing):
            raw = series.to_numpy(dtype=object)[missing]
            codes[missing[np.array([v is not None for v in raw], dtype=bool)]] = -2
        return cls(codes, list(uniques))

    def take(self, per_unique: Any, nan: Any, none: Any, dtype: Any) -> np.ndarray:
        """Per row: ``per_unique[code]``, ``nan`` for code -2, ``none`` for code -1."""
        table = np.concatenate([np.asarray(per_unique, dtype=dtype), np.array([nan, none], dtype)])
        return np.asarray(table[self.codes])


Column = np.ndarray | pd.Series | Coded
"""A model input as the compiled scorer takes it: numbers, a pandas Series, or Coded text."""


def as_coded(values: Column) -> Coded:
    """Text ``values`` as :class:`Coded` (as they are when they already are)."""
    return values if isinstance(values, Coded) else Coded.of(values)


def floats(values: Column) -> np.ndarray:
    """float64 as ``pd.to_numeric(errors="coerce")`` reads the column: unparsable is NaN."""
    if isinstance(values, Coded):
        parsed = floats(np.asarray(values.uniques, dtype=object))
        return values.take(parsed, math.nan, math.nan, "float64")
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype("float64", copy=False)
    numbers = pd.to_numeric(pd.Series(array, dtype=object), errors="coerce")
    return np.asarray(numbers, dtype="float64")


def number(value: Any) -> float:
    """One value as :func:`floats` reads it."""
    if value is None:
        return math.nan
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    return float(floats(np.array([value], dtype=object))[0])


def _text(value: Any) -> str | None:
    """A value's text for an interaction, None when missing (``features.derive``'s rule)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _date_parts(values: Column, part: str) -> np.ndarray:
    """``features.derive``'s date parts: pandas' own parsing, once per distinct value."""
    if isinstance(values, Coded):
        parsed = _date_parts(pd.Series(values.uniques, dtype=object), part)
        return values.take(parsed, math.nan, math.nan, "float64")
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    return np.asarray(getattr(parse_dates(series).dt, part), dtype="float64")


def _fast_date(value: Any) -> dt.datetime | None:
    """An ISO 8601 text's datetime in UTC, as pandas parses it, or a naive datetime as it
    is; None for anything else (pandas decides those)."""
    if is_naive(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str) or not _ISO.fullmatch(value):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.astimezone(dt.UTC) if when.tzinfo is not None else when


def is_naive(value: Any) -> bool:
    return isinstance(value, dt.datetime) and value.tzinfo is None and value is not pd.NaT


def _part(when: dt.datetime, part: str) -> float:
    if part == "quarter":
        return float((when.month - 1) // 3 + 1)
    if part == "dayofweek":
        return float(when.weekday())
    if part == "dayofyear":
        return float(when.timetuple().tm_yday)
    return float(getattr(when, part))


def _interaction(parts: list[Coded]) -> Coded:
    """``"a & b"`` per row, missing (None) when any part is; joined per combination."""
    combined = np.zeros(len(parts[0].codes), dtype="int64")
    for part in parts:  # mixed radix; digit 0 and 1 are the two missing codes
        combined = combined * (len(part.uniques) + 2) + (part.codes + 2)
    distinct, inverse = np.unique(combined, return_inverse=True)
    joined: list[Any] = []
    for key in distinct.tolist():
        texts = []
        for part in reversed(parts):
            key, digit = divmod(key, len(part.uniques) + 2)
            texts.append(_text(part.uniques[digit - 2]) if digit >= 2 else None)
        joined.append(None if None in texts else " & ".join(reversed(texts)))  # type: ignore[arg-type]
    codes = np.asarray(inverse, dtype="int64").reshape(-1)
    is_none = np.array([j is None for j in joined], dtype=bool)
    codes[is_none[codes]] = -1
    return Coded(codes, joined)


def derive_column(columns: dict[str, Column], spec: dict[str, Any]) -> Column:
    """One derived column (``features.derive``) over whole columns."""
    kind, cols = spec["kind"], spec["columns"]
    if kind in ("ratio", "difference", "product"):
        a, b = floats(columns[cols[0]]), floats(columns[cols[1]])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if kind == "ratio":
                value = a / np.where(b != 0, b, np.nan)
            else:
                value = a - b if kind == "difference" else a * b
        return np.where(np.isfinite(value), value, np.nan)
    if kind == "date_part":
        return _date_parts(columns[cols[0]], spec["part"])
    if kind == "bin":
        x = floats(columns[cols[0]])
        bins = np.digitize(x, np.asarray(spec["edges"], dtype="float64"))
        return np.where(np.isnan(x), np.nan, bins)
    if kind == "interaction":
        return _interaction([as_coded(columns[c]) for c in cols])
    raise NotCompilable(f"unknown derived feature kind {kind!r}")


def derive_one(values: dict[str, Any], spec: dict[str, Any]) -> Any:
    """:func:`derive_column` for one record, on Python scalars (IEEE doubles, as numpy's)."""
    kind, cols = spec["kind"], spec["columns"]
    if kind in ("ratio", "difference", "product"):
        a, b = number(values[cols[0]]), number(values[cols[1]])
        if kind == "ratio":
            value = a / b if b != 0 and b == b else math.nan
        else:
            value = a - b if kind == "difference" else a * b
        return value if math.isfinite(value) else math.nan
    if kind == "bin":
        x = number(values[cols[0]])
        return math.nan if x != x else float(bisect.bisect_right(spec["edges"], x))
    if kind == "date_part":
        when = _fast_date(values[cols[0]])
        if when is None:  # not ISO text: pandas decides, as in the Pipeline
            return float(_date_parts(pd.Series([values[cols[0]]]), spec["part"])[0])
        return _part(when, spec["part"])
    if kind == "interaction":
        texts = [_text(values[c]) for c in cols]
        return None if None in texts else " & ".join(texts)  # type: ignore[arg-type]
    raise NotCompilable(f"unknown derived feature kind {kind!r}")
