"""Stage `validate`: check the ingested table and fix the problem's schema.

Hard failures (no target column, too few rows, a class too small to split) stop the
pipeline with the column and the fix named. Soft findings (constant or identifier-like
columns, heavy missingness) are reported, and such columns are left out of the features.
Outputs: ``data/interim/schema.json`` (read by every later stage) and
``reports/validate.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cycleml.config import DataParams, ValidateParams
from cycleml.io import write_json
from cycleml.paths import Paths
from cycleml.schema import Schema, label_key

__all__ = ["ValidationFailed", "ValidationReport", "infer_task", "run", "validate"]

_MAX_INFERRED_CLASSES = 10


class ValidationFailed(ValueError):
    """The data cannot support the configured problem; the message says why and what to do."""


@dataclass
class ValidationReport:
    rows: int
    columns: int
    task: str
    target_missing: int
    class_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def infer_task(target: pd.Series) -> str:
    """``classification`` for text, boolean or few-valued integer targets; else regression."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    integral = bool((values == values.round()).all())
    if integral and values.nunique() <= _MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _require_columns(frame: pd.DataFrame, data: DataParams) -> None:
    wanted = {"data.target": [data.target], "data.id_columns": list(data.id_columns)}
    if data.time_column:
        wanted["data.time_column"] = [data.time_column]
    for key, cols in wanted.items():
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValidationFailed(
                f"{key}: column(s) {missing} not in the data; available columns: "
                f"{', '.join(map(str, frame.columns))}"
            )


def _classes(target: pd.Series, data: DataParams, rules: ValidateParams) -> list[str]:
    counts = target.map(label_key).value_counts()
    if len(counts) < 2:
        raise ValidationFailed(
            f"column {data.target!r}: only one class ({list(counts.index)}); "
            "a classifier needs at least two"
        )
    if len(counts) > rules.max_classes:
        raise ValidationFailed(
            f"column {data.target!r}: {len(counts)} classes (limit validate.max_classes="
            f"{rules.max_classes}); if it is a quantity, set task: regression"
        )
    small = counts[counts < rules.min_class_rows]
    if len(small):
        raise ValidationFailed(
            f"column {data.target!r}: class(es) {dict(small)} have fewer than "
            f"validate.min_class_rows={rules.min_class_rows} rows; merge or drop them"
        )
    labels = sorted(counts.index)
    if len(labels) > 2:
        if data.positive_class is not None:
            raise ValidationFailed(
                f"data.positive_class is set but {data.target!r} has {len(labels)} classes; "
                "positive_class is for binary targets: remove it"
            )
        return labels
    if data.positive_class is not None:
        positive = label_key(data.positive_class)
        if positive not in labels:
            raise ValidationFailed(
                f"data.positive_class: {data.positive_class!r} is not a label of "
                f"{data.target!r}; labels are {labels}"
            )
    elif set(labels) in ({"0", "1"}, {"False", "True"}):
        positive = labels[-1]
    else:
        positive = str(counts.index[-1])  # the minority class is usually the one of interest
    return [next(lbl for lbl in labels if lbl != positive), positive]


def _features(
    frame: pd.DataFrame, data: DataParams, rules: ValidateParams, report: ValidationReport
) -> tuple[list[str], list[str], dict[str, str]]:
    reserved = {data.target, *data.id_columns}
    if data.time_column:
        reserved.add(data.time_column)
    numeric: list[str] = []
    categorical: list[str] = []
    excluded: dict[str, str] = {}
    for col in frame.columns:
        if col in reserved:
            continue
        s = frame[col]
        present = s.dropna()
        if present.nunique() <= 1:
            excluded[col] = "constant: one distinct value"
        elif pd.api.types.is_datetime64_any_dtype(s):
            excluded[col] = "date/time: derive features from it, or name it data.time_column"
        elif pd.api.types.is_numeric_dtype(s):
            numeric.append(col)
        elif (
            present.nunique() / max(len(present), 1) >= rules.id_like_unique_share
            and len(present) >= 50
        ):
            excluded[col] = "identifier-like: nearly every value is distinct"
        else:
            categorical.append(col)
        if col in numeric or col in categorical:
            share = 1 - len(present) / max(len(s), 1)
            if share > 0.5:
                report.warnings.append(f"{col}: {share:.0%} missing")
    for col, why in excluded.items():
        report.warnings.append(f"{col}: left out of the features ({why})")
    return numeric, categorical, excluded


def validate(
    frame: pd.DataFrame, data: DataParams, task: str, rules: ValidateParams
) -> tuple[Schema, ValidationReport]:
    """Check ``frame`` against the data block; return the schema or raise ValidationFailed."""
    _require_columns(frame, data)
    if len(frame) < rules.min_rows:
        raise ValidationFailed(
            f"the data has {len(frame)} rows, fewer than validate.min_rows={rules.min_rows}"
        )
    target = frame[data.target]
    missing = int(target.isna().sum())
    if missing / len(frame) > rules.max_target_missing:
        raise ValidationFailed(
            f"column {data.target!r}: {missing / len(frame):.0%} of rows have no target "
            f"(limit validate.max_target_missing={rules.max_target_missing:g})"
        )
    resolved = infer_task(target) if task == "auto" else task
    report = ValidationReport(
        rows=len(frame), columns=frame.shape[1], task=resolved, target_missing=missing
    )
    classes: list[str] = []
    if resolved == "classification":
        classes = _classes(target.dropna(), data, rules)
        counts = target.dropna().map(label_key).value_counts()
        report.class_counts = {c: int(counts[c]) for c in classes}
    elif not pd.api.types.is_numeric_dtype(target):
        raise ValidationFailed(
            f"column {data.target!r}: task is regression but the target is not numeric "
            f"(e.g. {target.dropna().iloc[0]!r}); set task: classification or fix the column"
        )
    if missing:
        report.warnings.append(f"{data.target}: {missing:,} rows without a target are dropped")
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        report.warnings.append(f"{duplicates:,} duplicate rows (data.clean.drop_duplicates)")
    numeric, categorical, excluded = _features(frame, data, rules, report)
    if not numeric and not categorical:
        raise ValidationFailed(
            "no feature columns are left after removing the target, id, time, constant and "
            "identifier-like columns; check data.id_columns and data.drop_columns"
        )
    schema = Schema(
        task=resolved,
        target=data.target,
        classes=classes,
        numeric=numeric,
        categorical=categorical,
        id_columns=list(data.id_columns),
        time_column=data.time_column,
        excluded=excluded,
    )
    return schema, report


def run(data: DataParams, task: str, rules: ValidateParams, paths: Paths) -> ValidationReport:
    """Validate ``data/raw``; write the schema and the report."""
    frame = pd.read_parquet(paths.raw)
    schema, report = validate(frame, data, task, rules)
    write_json(paths.schema, schema.model_dump())
    write_json(paths.report("validate.json"), report.__dict__)
    return report
