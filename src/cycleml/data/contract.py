"""Data contracts: what a table must look like, inferred once, then enforced with pandera.

A contract is a small YAML file a person can read and tighten: per column its type,
whether it may be missing and how often, its allowed range or categories. The first run
infers it from the data and saves it; every later run (new data, a retrain) is checked
against it, so a broken extract stops the pipeline instead of training a broken model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from cycleml.config import DemoSource, FileSource, SqlSource
from cycleml.files import write_text

__all__ = ["ColumnContract", "Contract", "Violation", "check", "contract_path", "infer"]

_MAX_CATEGORIES = 50
# an inferred contract allows twice the observed missing share plus this, so the next
# sample of a healthy source passes (a column with no gaps today may have a few tomorrow)
_MISSING_SLACK = 0.05


class ColumnContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["numeric", "categorical", "datetime", "boolean"]
    required: bool = True
    max_missing: float = Field(0.0, ge=0, le=1, description="largest share of missing values")
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = Field(
        None, description="allowed values; null allows any (high-cardinality columns)"
    )


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    range_tolerance: float = Field(
        0.1, ge=0, description="ranges widen by this share of their span before a value fails"
    )
    columns: dict[str, ColumnContract]


@dataclass(frozen=True)
class Violation:
    column: str
    rule: str
    detail: str
    severity: Literal["error", "warning"]


def contract_path(
    setting: str | None, source: DemoSource | FileSource | SqlSource, root: Path
) -> Path | None:
    """Where the contract lives: ``contracts/<source>.yaml`` for ``auto``, or the given path."""
    if setting is None:
        return None
    if setting != "auto":
        path = Path(setting)
        return path if path.is_absolute() else root / path
    if isinstance(source, DemoSource):
        slug = "demo"
    elif isinstance(source, FileSource):
        slug = Path(source.path.rstrip("/")).stem or "file"
    else:
        slug = "sql-" + hashlib.sha256(f"{source.url}\n{source.query}".encode()).hexdigest()[:8]
    return root / "contracts" / f"{slug}.yaml"


def _kind(series: pd.Series) -> Literal["numeric", "categorical", "datetime", "boolean"]:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "categorical"


def infer(frame: pd.DataFrame, range_tolerance: float = 0.1) -> Contract:
    """A contract that ``frame`` meets, loose enough for the next sample of the same source.

    The allowed missing share is twice the observed one plus five points; categories are
    listed when there are at most fifty, so identifier-like text is not pinned down.
    """
    columns: dict[str, ColumnContract] = {}
    for name in frame.columns:
        s = frame[name]
        kind = _kind(s)
        missing = float(s.isna().mean())
        spec = ColumnContract(
            type=kind, max_missing=round(min(1.0, missing * 2 + _MISSING_SLACK), 4)
        )
        present = s.dropna()
        if kind == "numeric" and len(present):
            spec.min, spec.max = float(present.min()), float(present.max())
        elif kind == "categorical":
            values = sorted(map(str, present.unique()))
            spec.categories = values if len(values) <= _MAX_CATEGORIES else None
        columns[str(name)] = spec
    return Contract(range_tolerance=range_tolerance, columns=columns)


def save(contract: Contract, path: Path, origin: str) -> None:
    header = (
        f"# Data contract for {origin}, inferred {dt.date.today().isoformat()}.\n"
        "# validate checks every new version of the data against it. Edit it to tighten or\n"
        "# loosen a rule (types, max_missing, min/max, categories); commit it with the code.\n"
    )
    body = yaml.safe_dump(contract.model_dump(exclude_none=True), sort_keys=False)
    write_text(path, header + body)


def load(path: Path) -> Contract:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Contract.model_validate(raw)


def _pandera_schema(contract: Contract, frame: pd.DataFrame) -> Any:
    import pandera.pandas as pa

    # datetimes are checked by kind, not exact dtype: ns/us units and time zones all pass
    dtypes: dict[str, Any] = {
        "numeric": float,
        "datetime": None,
        "boolean": bool,
        "categorical": object,
    }
    columns = {}
    for name, spec in contract.columns.items():
        checks = [
            pa.Check(
                lambda s, limit=spec.max_missing: bool(s.isna().mean() <= limit),
                element_wise=False,
                ignore_na=False,
                name=f"max_missing<={spec.max_missing:g}",
            )
        ]
        if spec.min is not None and spec.max is not None:
            slack = (spec.max - spec.min) * contract.range_tolerance
            low, high = spec.min - slack, spec.max + slack
            checks.append(pa.Check.in_range(low, high, name=f"range[{low:.4g}, {high:.4g}]"))
        if spec.categories is not None:
            checks.append(pa.Check.isin(spec.categories, name="categories"))
        if spec.type == "datetime":
            checks.append(
                pa.Check(
                    lambda s: bool(pd.api.types.is_datetime64_any_dtype(s)),
                    element_wise=False,
                    name="dtype=datetime",
                )
            )
        coerce = spec.type == "numeric" and pd.api.types.is_numeric_dtype(
            frame.get(name, pd.Series(dtype=float))
        )
        columns[name] = pa.Column(
            dtypes[spec.type], checks=checks, nullable=True, required=spec.required, coerce=coerce
        )
    return pa.DataFrameSchema(columns, strict=False)


def check(frame: pd.DataFrame, contract: Contract, error_share: float = 0.01) -> list[Violation]:
    """Every way ``frame`` breaks ``contract``: missing or new columns, wrong types and too
    many missing values are errors; out-of-range values and unknown categories are warnings
    (drift to watch, not a broken extract) unless more than 1% of rows are affected.

    A new column is an error because it would silently become a feature, changing what
    the model needs at serving time; the contract must be told about it first."""
    import pandera.pandas as pa

    out = []
    try:
        _pandera_schema(contract, frame).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        out = _violations(err.failure_cases, len(frame), error_share, contract)
    for name in frame.columns:
        if str(name) not in contract.columns:
            out.append(
                Violation(
                    str(name),
                    "columns",
                    "a new column the contract does not list; drop it with data.drop_columns, "
                    "or add it to the contract to use it",
                    "error",
                )
            )
    return out


def _violations(
    cases: pd.DataFrame, rows: int, error_share: float, contract: Contract
) -> list[Violation]:
    out = []
    for (column, rule), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column = (
            str(group["failure_case"].iloc[0]) if rule == "column_in_dataframe" else str(column)
        )
        examples = sorted({str(v) for v in group["failure_case"].head(20)})[:3]
        if rule == "column_in_dataframe":
            out.append(
                Violation(column, "required", "the column is missing from the data", "error")
            )
        elif str(rule).startswith("max_missing"):
            out.append(Violation(column, str(rule), "too many missing values", "error"))
        elif str(rule).startswith(("in_range", "range", "isin", "categories")):
            in_range = str(rule).startswith(("in_range", "range"))
            what = "outside the range" if in_range else "not an allowed category"
            share = len(group) / max(rows, 1)
            severity: Literal["error", "warning"] = "error" if share > error_share else "warning"
            detail = f"{len(group):,} value(s) {what} {str(rule).removeprefix('in_range')}"
            out.append(
                Violation(
                    column,
                    "range" if in_range else "categories",
                    f"{detail.strip()}, e.g. {examples}",
                    severity,
                )
            )
        else:  # dtype and coercion failures
            spec = contract.columns.get(column)
            expected = f"not {spec.type} as the contract says" if spec else "wrong type"
            out.append(Violation(column, "type", f"{expected}, e.g. {examples}", "error"))
    return out
