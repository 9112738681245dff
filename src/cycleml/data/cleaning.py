"""Cleaning rules for tables (``data.clean``): the one text rule and what ingest applies.

The text rule (:func:`clean_text`) is shared by ingest, batch scoring and the service's
inputs, so a value is read the same way in training and in production; each rule runs
once per distinct value, not once per row.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from cycleml.config import CleanRules, DataParams
from cycleml.data.sources import IngestError, IngestReport

__all__ = ["clean", "clean_text"]

_MAX_UNPARSED_DATES = 0.02
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"


def clean_text(value: object, markers: Collection[str], strip: bool = True) -> object:
    """The text rule: the value as text, stripped of surrounding whitespace, or None when it
    is one of the missing markers (``data.clean.na_values``)."""
    text = str(value).strip() if strip else value
    return None if text in markers else text


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])
    ]


def clean(frame: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, IngestReport]:
    """Apply ``data.clean`` rules and ``data.drop_columns``; pure, returns a new frame."""
    rules: CleanRules = data.clean
    report = IngestReport(rows_read=len(frame), columns_read=frame.shape[1])
    frame = frame.copy()
    frame.columns = [str(c).strip() if rules.strip_whitespace else str(c) for c in frame.columns]
    repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise IngestError(
            f"column(s) {repeated} appear more than once in the data; rename the duplicates "
            "in data.source so every column has its own name"
        )

    unknown = [c for c in data.drop_columns if c not in frame.columns]
    if unknown:
        raise IngestError(
            f"data.drop_columns: {unknown} not in the data; columns are {list(frame.columns)}"
        )
    for col in data.drop_columns:
        report.dropped_columns[col] = "data.drop_columns"
    frame = frame.drop(columns=list(data.drop_columns))

    keep_text = {*data.id_columns}
    markers = set(rules.na_values)
    for col in _text_columns(frame):
        values = _clean_text_column(
            col, frame[col], markers, rules, report, numeric=col not in keep_text
        )
        if values.dtype == object and col not in keep_text and col != data.time_column:
            values = _maybe_iso_dates(col, values, rules.numeric_text_threshold, report)
        frame[col] = values

    skip_cast = {data.target, *data.id_columns}
    for col in frame.columns:
        s = frame[col]
        if col not in skip_cast and (
            pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s)
        ):
            # one numeric type for every feature: missing values fit, schemas stay simple
            frame[col] = s.astype("float64")

    if data.time_column and data.time_column in frame.columns:
        frame[data.time_column] = _parse_time(frame[data.time_column], data, report)

    if rules.drop_empty_columns:
        for col in frame.columns[frame.isna().all()]:
            if col != data.target:
                report.dropped_columns[col] = "every value is missing"
                frame = frame.drop(columns=col)

    if rules.drop_duplicates:
        before = len(frame)
        frame = frame.drop_duplicates(ignore_index=True)
        report.duplicates_dropped = before - len(frame)

    report.rows_written = len(frame)
    return frame.reset_index(drop=True), report


def _clean_text_column(
    col: str,
    raw: pd.Series,
    markers: set[str],
    rules: CleanRules,
    report: IngestReport,
    numeric: bool,
) -> pd.Series:
    """One text column: whitespace stripped, missing markers made missing, and numbers
    stored as text parsed when at least ``numeric_text_threshold`` of the present values
    parse. Each rule runs once per distinct value, not once per row (a million rows of a
    few categories cost a few lookups); the result is what applying them row by row gives.
    """
    values = raw.astype("object")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    kept_list = [clean_text(u, markers, rules.strip_whitespace) for u in uniques]
    marker = np.array([k is None for k in kept_list], dtype=bool)
    if n := int(counts[marker].sum()):
        report.na_markers[col] = n
    kept = np.array(kept_list, dtype=object)
    n_present = int(counts[~marker].sum())
    if numeric and n_present:
        numbers = pd.to_numeric(pd.Series(kept, dtype=object), errors="coerce").astype("float64")
        parsed = numbers.notna().to_numpy()
        if counts[parsed].sum() / n_present >= rules.numeric_text_threshold:
            bad = ~parsed & ~marker
            if bad.any():  # as before: the first 50 bad rows, three distinct examples
                rows = np.flatnonzero(np.isin(codes, np.flatnonzero(bad)))[:50]
                examples = sorted({str(v) for v in values.iloc[rows]})[:3]
            else:
                examples = []
            report.numeric_from_text[col] = {
                "unparsed": int(counts[bad].sum()),
                "examples": examples,
            }
            table = np.append(numbers.to_numpy(), np.nan)  # code -1 (missing): NaN
            return pd.Series(table[codes], index=raw.index, dtype="float64")
    out = np.append(kept, np.array([None], dtype=object))[codes]
    missing = np.flatnonzero(codes < 0)
    out[missing] = values.to_numpy()[missing]  # missing values stay as they came
    return pd.Series(out, index=raw.index, dtype="object")


def _parse_time(raw: pd.Series, data: DataParams, report: IngestReport) -> pd.Series:
    """The time column as datetimes; fails when many values are not in the expected format."""
    if pd.api.types.is_datetime64_any_dtype(raw) and not data.time_format:
        return raw
    parsed = pd.to_datetime(raw, format=data.time_format or "ISO8601", errors="coerce")
    report.time_column_unparsed = int(parsed.isna().sum() - raw.isna().sum())
    if report.time_column_unparsed > _MAX_UNPARSED_DATES * max(int(raw.notna().sum()), 1):
        examples = raw[parsed.isna() & raw.notna()].astype(str).head(3).tolist()
        raise IngestError(
            f"data.time_column {data.time_column!r}: {report.time_column_unparsed:,} values "
            f"are not dates in the expected format (e.g. {examples}); set data.time_format, "
            "e.g. '%d/%m/%Y'"
        )
    return parsed


def _maybe_iso_dates(
    col: str, values: pd.Series, threshold: float, report: IngestReport
) -> pd.Series:
    """Text that is ISO dates becomes datetimes, so it is not mistaken for a category."""
    present = values.dropna().astype(str)
    if present.empty or not present.head(200).str.match(_ISO_DATE).all():
        return values
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    if parsed.notna().sum() < threshold * len(present):
        return values
    report.dates_from_text.append(col)
    return parsed
