"""Which columns of a validated table become features, and which are left out and why.

Personal data (PII), target leakage, constant, date/time and identifier-like columns never
reach the model; each is recorded with its reason. Derived features (``featurize.derived``)
pass the same checks as raw columns, built by the model's own transformer, which the caller
passes in (``data`` does not import ``model``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from cycleml.config import DataParams, DerivedFeature, ValidateParams
from cycleml.data import checks
from cycleml.data.schema import CATEGORICAL_KINDS, Schema
from cycleml.data.validation_report import ValidationFailed, ValidationReport

__all__ = ["BuildDerived", "feature_schema"]

BuildDerived = Callable[[pd.DataFrame, list[dict[str, Any]]], pd.DataFrame]
"""Adds the derived columns of the given specs to a table (the Pipeline's first step)."""


def feature_schema(
    frame: pd.DataFrame,
    data: DataParams,
    rules: ValidateParams,
    report: ValidationReport,
    task: str,
    classes: list[str],
    derived: list[DerivedFeature],
    build: BuildDerived,
) -> Schema:
    """The schema's feature columns, exclusions and derived features; every column left
    out, outlier and refused derived feature is added to ``report``.

    Raises ValidationFailed when no feature column is left, or a derived feature is named
    like an existing column.
    """
    numeric, categorical, excluded = _select_features(frame, data, rules, report)
    draft = Schema(
        task=task,
        target=data.target,
        classes=classes,
        numeric=numeric,
        categorical=categorical,
    )
    _exclude_leaky(frame, draft, rules, report, excluded)
    numeric = [c for c in numeric if c not in excluded]
    categorical = [c for c in categorical if c not in excluded]
    for col, n in checks.outlier_counts(frame, numeric, rules.outlier_iqr).items():
        report.add(col, "outliers", "warning", f"{n:,} value(s) beyond {rules.outlier_iqr:g} IQR")
    for col, why in excluded.items():
        report.add(col, why.split(":")[0], "dropped", f"left out of the features ({why})")
    if not numeric and not categorical:
        raise ValidationFailed(
            "no feature columns are left after removing the target, id, time, PII, leaky, "
            "constant and identifier-like columns; check data.id_columns and data.drop_columns"
        )
    return draft.model_copy(
        update={
            "numeric": numeric,
            "categorical": categorical,
            "id_columns": list(data.id_columns),
            "time_column": data.time_column,
            "excluded": excluded,
            "derived": _check_derived(frame, derived, data, draft, excluded, report, rules, build),
        }
    )


def _row_number(values: pd.Series) -> bool:
    """Distinct integers in increasing order, such as PassengerId or a record index."""
    return bool(
        len(values) >= 50
        and values.is_monotonic_increasing
        and values.is_unique
        and (values == values.round()).all()
    )


def _select_features(
    frame: pd.DataFrame, data: DataParams, rules: ValidateParams, report: ValidationReport
) -> tuple[list[str], list[str], dict[str, str]]:
    """Numeric and categorical feature columns, and the columns excluded with the reason;
    features mostly missing are reported. Leakage is scored later (:func:`_exclude_leaky`)."""
    reserved = {data.target, *data.id_columns}
    if data.time_column:
        reserved.add(data.time_column)
    if rules.detect_pii:
        found = checks.pii_columns(frame, list(rules.pii_columns), reserved)
    else:
        found = {c: "declared in validate.pii_columns" for c in rules.pii_columns if c in frame}
    excluded = {col: f"PII: {why}" for col, why in found.items()}
    numeric: list[str] = []
    categorical: list[str] = []
    for col in frame.columns:
        if col in reserved or col in excluded:
            continue
        s = frame[col]
        present = s.dropna()
        if present.nunique() <= 1:
            excluded[col] = "constant: one distinct value"
        elif pd.api.types.is_datetime64_any_dtype(s):
            excluded[col] = "date/time: derive features from it, or name it data.time_column"
        elif pd.api.types.is_numeric_dtype(s) and _row_number(present):
            excluded[col] = "identifier-like: distinct increasing integers (a row number)"
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
                report.add(col, "missing", "warning", f"{share:.0%} missing")
    return numeric, categorical, excluded


def _exclude_leaky(
    frame: pd.DataFrame,
    draft: Schema,
    rules: ValidateParams,
    report: ValidationReport,
    excluded: dict[str, str],
) -> None:
    """Score how well each feature alone predicts the target (into ``report``) and add the
    ones at or above ``validate.max_leakage_score`` to ``excluded``."""
    report.leakage_scores = {
        c: round(v, 4) for c, v in checks.leakage_scores(frame, draft, draft.features).items()
    }
    for col, score in report.leakage_scores.items():
        if score >= rules.max_leakage_score:
            excluded[col] = (
                f"leakage: alone it predicts the target with a score of {score:.3f} "
                f"(validate.max_leakage_score={rules.max_leakage_score:g})"
            )


def _check_derived(
    frame: pd.DataFrame,
    derived: list[DerivedFeature],
    data: DataParams,
    draft: Schema,
    excluded: dict[str, str],
    report: ValidationReport,
    rules: ValidateParams,
    build: BuildDerived,
) -> list[dict[str, Any]]:
    """The derived features that can be built; the rest are reported, never silently used.

    A feature whose source column is absent (a spec written for other data) is skipped; one
    built from a PII, leaky or id column is refused, and so is one that itself leaks the
    target or is built from the target itself, so such data never reaches the model.
    """
    kept = []
    for spec in derived:
        where = f"featurize.derived {spec.name!r}"
        if spec.name in frame.columns:
            raise ValidationFailed(f"{where}: the name is already a column; choose another")
        absent = [c for c in spec.columns if c not in frame.columns]
        banned = [
            c
            for c in spec.columns
            if excluded.get(c, "").startswith(("PII", "leakage")) or c in data.id_columns
        ]
        if data.target in spec.columns:
            report.add(
                spec.name,
                "featurize",
                "dropped",
                f"refused: built from the target {data.target!r} (serving would need the answer)",
            )
        elif absent:
            report.add(spec.name, "featurize", "warning", f"skipped: column(s) {absent} absent")
        elif banned:
            report.add(spec.name, "featurize", "dropped", f"refused: built from PII/leaky {banned}")
        else:
            kept.append(spec.model_dump(exclude_none=True))
    return _without_leaks(frame, kept, draft, report, rules, build)


def _without_leaks(
    frame: pd.DataFrame,
    specs: list[dict[str, Any]],
    draft: Schema,
    report: ValidationReport,
    rules: ValidateParams,
    build: BuildDerived,
) -> list[dict[str, Any]]:
    """Derived features pass the same leakage check as raw columns (a ratio can leak too)."""
    if not specs:
        return specs
    built = build(frame, specs)
    names = [s["name"] for s in specs]
    probe = draft.model_copy(
        update={
            "numeric": [s["name"] for s in specs if s["kind"] not in CATEGORICAL_KINDS],
            "categorical": [s["name"] for s in specs if s["kind"] in CATEGORICAL_KINDS],
        }
    )
    scores = checks.leakage_scores(built, probe, names)
    kept = []
    for spec in specs:
        score = scores[spec["name"]]
        report.leakage_scores[spec["name"]] = round(score, 4)
        if score >= rules.max_leakage_score:
            report.add(spec["name"], "featurize", "dropped", f"refused: leakage score {score:.3f}")
        else:
            kept.append(spec)
    return kept
