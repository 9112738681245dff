"""The checks of stage `validate`: can this table support the configured problem?

Hard failures raise :class:`~cycleml.data.validation_report.ValidationFailed` with the
column, the rule and the fix named: no target column, too few rows, too many rows without
a target, a class too small to split, a broken data contract. Soft findings go to the
:class:`~cycleml.data.validation_report.ValidationReport`. The feature columns are decided
in :mod:`cycleml.data.validation_features`. Pure: no file is read or written here except
the contract under ``root``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cycleml.config import DataParams, DerivedFeature, ValidateParams
from cycleml.data import contract as dc
from cycleml.data.schema import Schema, label_key
from cycleml.data.validation_features import BuildDerived, feature_schema
from cycleml.data.validation_report import ValidationFailed, ValidationReport

__all__ = ["infer_task", "validate_table"]

_MAX_INFERRED_CLASSES = 10


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
            + (", or set task: regression if the target is a quantity" if len(counts) > 2 else "")
        )
    labels = sorted(counts.index)
    if len(labels) > 2:
        if data.positive_class is not None:
            raise ValidationFailed(
                f"data.positive_class is set but {data.target!r} has {len(labels)} classes "
                f"{labels[:8]}; positive_class is for binary targets: remove it, fix labels "
                "spelt two ways, or set task: regression if the target is a quantity"
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


def _check_contract(
    frame: pd.DataFrame,
    data: DataParams,
    rules: ValidateParams,
    root: Path,
    report: ValidationReport,
    dropped: dict[str, str] | None = None,
) -> Callable[[], None]:
    """Check ``frame`` against its contract; return what to do once validation succeeds
    (save a newly inferred contract), so rejected data never becomes the contract.
    ``dropped``: columns ingest removed and why, to explain a required column's absence."""
    path = dc.contract_path(rules.contract, data.source, root)
    if path is None:
        return lambda: None
    report.contract = str(path)
    if not path.exists():
        inferred = dc.infer(frame, rules.range_tolerance)
        report.add(
            "*", "contract", "warning", f"no contract yet: inferred from this data, saved to {path}"
        )
        return lambda: dc.save(inferred, path, f"data.source kind {data.source.kind}")
    try:
        contract = dc.load(path)
    except Exception as err:  # noqa: BLE001 - YAML or schema errors alike
        raise ValidationFailed(
            f"validate.contract: {path} is not a valid contract: {err}"
        ) from None
    violations = dc.check(frame, contract, rules.drift_error_share)
    for v in violations:
        report.add(v.column, v.rule, v.severity, v.detail)
    errors = [v for v in violations if v.severity == "error"]
    if errors:
        why = dropped or {}
        listed = "; ".join(
            f"column {v.column!r} breaks {v.rule}: {v.detail}"
            + (f" (ingest dropped it: {why[v.column]})" if v.column in why else "")
            for v in errors[:10]
        )
        raise ValidationFailed(
            f"the data breaks its contract ({path}): {listed}. Fix the data, or edit the "
            "contract if the change is intended (delete it to infer a new one)"
        )
    return lambda: None


def _check_rows_and_target(frame: pd.DataFrame, data: DataParams, rules: ValidateParams) -> int:
    """Raise when a named column is absent, rows are too few or targets too often missing;
    return how many rows have no target."""
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
    return missing


def _check_target(
    target: pd.Series,
    task: str,
    data: DataParams,
    rules: ValidateParams,
    report: ValidationReport,
) -> list[str]:
    """The class labels (none for regression), their counts into ``report``; raise when the
    target cannot support ``task``."""
    classes: list[str] = []
    if task == "classification":
        classes = _classes(target.dropna(), data, rules)
        counts = target.dropna().map(label_key).value_counts()
        report.class_counts = {c: int(counts[c]) for c in classes}
    elif not pd.api.types.is_numeric_dtype(target):
        raise ValidationFailed(
            f"column {data.target!r}: task is regression but the target is not numeric "
            f"(e.g. {target.dropna().iloc[0]!r}); set task: classification or fix the column"
        )
    return classes


def validate_table(
    frame: pd.DataFrame,
    data: DataParams,
    task: str,
    rules: ValidateParams,
    build_derived: BuildDerived,
    root: Path | None = None,
    derived: list[DerivedFeature] | None = None,
    dropped: dict[str, str] | None = None,
) -> tuple[Schema, ValidationReport]:
    """Check ``frame`` against the data block and its contract; return the schema or raise
    ValidationFailed. ``build_derived`` adds derived columns to a table (the model's own
    transformer), so derived features are checked for leakage on the values the model sees.
    ``root`` is where ``contracts/`` lives (None: skip the contract); ``derived`` are the
    declared derived features to check and record; ``dropped`` the columns ingest removed
    (reports/ingest.json), named when the contract misses them."""
    missing = _check_rows_and_target(frame, data, rules)
    target = frame[data.target]
    resolved = infer_task(target) if task == "auto" else task
    report = ValidationReport(
        rows=len(frame),
        columns=frame.shape[1],
        task=resolved,
        target_missing=missing,
        missing={str(c): int(n) for c, n in frame.isna().sum().items() if n},
    )
    if root is not None:
        save_contract = _check_contract(frame, data, rules, root, report, dropped)
    classes = _check_target(target, resolved, data, rules, report)
    if missing:
        report.add(
            data.target, "target", "warning", f"{missing:,} rows without a target are dropped"
        )
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        report.add("*", "duplicates", "warning", f"{duplicates:,} duplicate rows")
    schema = feature_schema(
        frame, data, rules, report, resolved, classes, derived or [], build_derived
    )
    if root is not None:
        save_contract()  # only now: rejected data never becomes the contract
    return schema, report
