"""Stage `validate`: check the ingested table and fix the problem's schema.

Hard failures stop the pipeline with the column, the rule and the fix named: no target
column, too few rows, a class too small to split, a broken data contract (a column gone,
a wrong type, too many missing values). Soft findings are reported: out-of-range values
and new categories, outliers, duplicates, heavy missingness. Columns that must never reach
the model are left out of the features and reported: personal data (PII), target leakage,
constant and identifier-like columns.
Outputs: ``data/interim/schema.json`` (read by every later stage), ``reports/validate.json``
and ``reports/validate.html``; the contract in ``contracts/`` on the first run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cycleml.config import DataParams, DerivedFeature, Params, ValidateParams
from cycleml.data import checks
from cycleml.data import contract as dc
from cycleml.data.schema import Schema, label_key
from cycleml.files import write_json, write_text
from cycleml.paths import Paths

__all__ = ["Finding", "ValidationFailed", "ValidationReport", "infer_task", "run", "validate"]

_MAX_INFERRED_CLASSES = 10


class ValidationFailed(ValueError):
    """The data cannot support the configured problem; the message says why and what to do."""


@dataclass
class Finding:
    column: str
    rule: str
    severity: str  # error | warning | dropped
    detail: str


@dataclass
class ValidationReport:
    rows: int
    columns: int
    task: str
    target_missing: int
    class_counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    leakage_scores: dict[str, float] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    contract: str | None = None

    @property
    def warnings(self) -> list[str]:
        return [f"{f.column}: {f.detail}" for f in self.findings if f.severity != "error"]

    def add(self, column: str, rule: str, severity: str, detail: str) -> None:
        self.findings.append(Finding(column, rule, severity, detail))


def infer_task(target: pd.Series) -> str:
    """``classification`` for text, boolean or few-valued integer targets; else regression."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    integral = bool((values == values.round()).all())
    if integral and values.nunique() <= _MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _row_number(values: pd.Series) -> bool:
    """Distinct integers in increasing order, such as PassengerId or a record index."""
    return bool(
        len(values) >= 50
        and values.is_monotonic_increasing
        and values.is_unique
        and (values == values.round()).all()
    )


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


def _features(
    frame: pd.DataFrame, data: DataParams, rules: ValidateParams, report: ValidationReport
) -> tuple[list[str], list[str], dict[str, str]]:
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


def _derived(
    frame: pd.DataFrame,
    derived: list[DerivedFeature],
    data: DataParams,
    draft: Schema,
    excluded: dict[str, str],
    report: ValidationReport,
    rules: ValidateParams,
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
    return _without_leaks(frame, kept, draft, report, rules)


def _without_leaks(
    frame: pd.DataFrame,
    specs: list[dict[str, Any]],
    draft: Schema,
    report: ValidationReport,
    rules: ValidateParams,
) -> list[dict[str, Any]]:
    """Derived features pass the same leakage check as raw columns (a ratio can leak too)."""
    from cycleml.model.features import CATEGORICAL_KINDS, DerivedFeatures

    if not specs:
        return specs
    built = DerivedFeatures(specs).transform(frame)
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


def validate(
    frame: pd.DataFrame,
    data: DataParams,
    task: str,
    rules: ValidateParams,
    root: Path | None = None,
    derived: list[DerivedFeature] | None = None,
    dropped: dict[str, str] | None = None,
) -> tuple[Schema, ValidationReport]:
    """Check ``frame`` against the data block and its contract; return the schema or raise
    ValidationFailed. ``root`` is where ``contracts/`` lives (None: skip the contract);
    ``derived`` are the declared derived features to check and record; ``dropped`` the
    columns ingest removed (reports/ingest.json), named when the contract misses them."""
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
        rows=len(frame),
        columns=frame.shape[1],
        task=resolved,
        target_missing=missing,
        missing={str(c): int(n) for c, n in frame.isna().sum().items() if n},
    )
    if root is not None:
        save_contract = _check_contract(frame, data, rules, root, report, dropped)
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
        report.add(
            data.target, "target", "warning", f"{missing:,} rows without a target are dropped"
        )
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        report.add("*", "duplicates", "warning", f"{duplicates:,} duplicate rows")

    numeric, categorical, excluded = _features(frame, data, rules, report)
    draft = Schema(
        task=resolved,
        target=data.target,
        classes=classes,
        numeric=numeric,
        categorical=categorical,
    )
    report.leakage_scores = {
        c: round(v, 4) for c, v in checks.leakage_scores(frame, draft, draft.features).items()
    }
    for col, score in report.leakage_scores.items():
        if score >= rules.max_leakage_score:
            excluded[col] = (
                f"leakage: alone it predicts the target with a score of {score:.3f} "
                f"(validate.max_leakage_score={rules.max_leakage_score:g})"
            )
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
    schema = draft.model_copy(
        update={
            "numeric": numeric,
            "categorical": categorical,
            "id_columns": list(data.id_columns),
            "time_column": data.time_column,
            "excluded": excluded,
            "derived": _derived(frame, derived or [], data, draft, excluded, report, rules),
        }
    )
    if root is not None:
        save_contract()
    return schema, report


def _html(report: ValidationReport) -> str:
    from html import escape

    colours = {"error": "#fde2e1", "warning": "#fff4d6", "dropped": "#e8f0fe"}
    rows = "".join(
        f"<tr style='background:{colours.get(f.severity, '#fff')}'><td>{escape(f.severity)}</td>"
        f"<td>{escape(f.column)}</td><td>{escape(f.rule)}</td><td>{escape(f.detail)}</td></tr>"
        for f in report.findings
    )
    leaks = "".join(
        f"<tr><td>{escape(c)}</td><td>{v:.3f}</td></tr>"
        for c, v in sorted(report.leakage_scores.items(), key=lambda kv: -kv[1])
    )
    classes = ", ".join(f"{escape(k)}: {v:,}" for k, v in report.class_counts.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>cycleml validate</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;
text-align:left}}</style></head><body><h1>Data validation</h1>
<p>{report.rows:,} rows, {report.columns} columns; task <b>{escape(report.task)}</b>.
{("Classes: " + classes + ".") if classes else ""}
Contract: {escape(report.contract or "none")}.</p>
<h2>Findings</h2><table><tr><th>severity</th><th>column</th><th>rule</th><th>detail</th></tr>
{rows or "<tr><td colspan=4>none</td></tr>"}</table>
<h2>Leakage: how well each feature alone predicts the target</h2>
<table><tr><th>column</th><th>score</th></tr>{leaks}</table></body></html>
"""


def _dropped_by_ingest(paths: Paths) -> dict[str, str]:
    """The columns ingest dropped and why (an empty column is dropped, so the contract
    would only see it missing); empty when the report is absent or unreadable."""
    import json

    try:
        found = json.loads(paths.report("ingest.json").read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in dict(found.get("dropped_columns") or {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def run(params: Params, paths: Paths) -> ValidationReport:
    """Validate ``data/raw``; write the schema and the reports."""
    frame = pd.read_parquet(paths.raw)
    schema, report = validate(
        frame,
        params.data,
        params.task,
        params.validate_,
        paths.root,
        params.featurize.derived,
        _dropped_by_ingest(paths),
    )
    write_json(paths.schema, schema.model_dump())
    payload: dict[str, Any] = asdict(report)
    write_json(paths.report("validate.json"), payload)
    write_text(paths.report("validate.html"), _html(report))
    return report
