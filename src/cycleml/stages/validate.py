"""Stage `validate`: check the ingested table and fix the problem's schema.

Hard failures stop the pipeline with the column, the rule and the fix named: no target
column, too few rows, a class too small to split, a broken data contract (a column gone,
a wrong type, too many missing values). Soft findings are reported: out-of-range values
and new categories, outliers, duplicates, heavy missingness. Columns that must never reach
the model are left out of the features and reported: personal data (PII), target leakage,
constant and identifier-like columns.
Outputs: ``data/interim/schema.json`` (read by every later stage), ``reports/validate.json``
and ``reports/validate.html``; the contract in ``contracts/`` on the first run.
The checks live in :mod:`cycleml.data.validation`; this module adds the model's own
derived-features transformer to them and reads and writes the files.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from cycleml.config import DataParams, DerivedFeature, Params, ValidateParams
from cycleml.data.schema import Schema
from cycleml.data.validation import validate_table
from cycleml.data.validation_report import ValidationReport, report_html
from cycleml.files import read_json, write_json, write_text
from cycleml.paths import Paths

__all__ = ["run", "validate"]


def _build_derived(frame: pd.DataFrame, specs: list[dict[str, Any]]) -> pd.DataFrame:
    """The derived columns as the model's Pipeline computes them (its first step)."""
    from cycleml.model.features import DerivedFeatures

    built: pd.DataFrame = DerivedFeatures(specs).transform(frame)
    return built


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
    ValidationFailed (see :func:`cycleml.data.validation.validate_table`). ``root`` is where
    ``contracts/`` lives (None: skip the contract); ``derived`` are the declared derived
    features to check and record; ``dropped`` the columns ingest removed
    (reports/ingest.json), named when the contract misses them."""
    return validate_table(frame, data, task, rules, _build_derived, root, derived, dropped)


def _dropped_by_ingest(paths: Paths) -> dict[str, str]:
    """The columns ingest dropped and why (an empty column is dropped, so the contract
    would only see it missing); empty when the report is absent or unreadable."""
    try:
        found = read_json(paths.report("ingest.json"))
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
    write_text(paths.report("validate.html"), report_html(report))
    return report
