"""The compiled scorer: the fitted Pipeline as numpy arithmetic and lookups feeding XGBoost.

Scoring one record through ``Pipeline.predict_proba`` costs milliseconds, nearly all of
it pandas and sklearn bookkeeping around a booster that needs a fraction of one. At
registration, :func:`compile_pipeline` reads the fitted steps into a *plan* (JSON):

- derived features: the same formulas as :mod:`cycleml.features`, on numpy arrays;
- numeric columns: impute with the fitted statistic, then ``(x - mean) / scale``;
- categorical columns: impute ``missing``, then a category -> output-column table learnt by
  asking the fitted ``OneHotEncoder`` itself (so rare pooling and unseen categories land
  exactly where sklearn puts them);
- the booster: ``inplace_predict`` over the rounds sklearn's ``predict_proba`` uses.

The Pipeline stays the source of truth. :func:`verify` scores validation and test rows both
ways and the plan is only saved with a version when every output agrees to ``TOLERANCE``.
A step the compiler does not know (a custom transformer, another encoder) raises
:class:`NotCompilable`, and the version is served by the Pipeline, with the reason tagged.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cycleml.data.schema import Schema
from cycleml.model.features import _dates
from cycleml.model.pipeline import iteration_range
from cycleml.names import SCORER_TAG

__all__ = [
    "PLAN_VERSION",
    "TOLERANCE",
    "Coded",
    "Compilation",
    "CompiledScorer",
    "NotCompilable",
    "PipelineScorer",
    "Scorer",
    "compile_pipeline",
    "compile_verified",
    "verify",
]

PLAN_VERSION = 1
TOLERANCE = 1e-6
_SMALL = 64
"""Up to this many records are scored one by one in plain Python; more, column by column."""
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?")
_INFINITE = "column {!r} holds an infinite number; send a finite number, or null if unknown"
_NUMERIC_STRATEGIES = {"mean", "median", "most_frequent", "constant"}


class NotCompilable(ValueError):
    """The Pipeline holds a step the compiler cannot express; the message names it."""


class Scorer(Protocol):
    """Scores (class probabilities n x k, or regression values n) for model inputs."""

    @property
    def kind(self) -> str:
        """``compiled`` or ``sklearn``."""

    @property
    def reason(self) -> str:
        """Why the Pipeline scores instead of a compiled scorer ('' when compiled)."""

    def frame(self, frame: pd.DataFrame) -> np.ndarray: ...

    def records(self, records: Sequence[dict[str, Any]]) -> np.ndarray: ...


@dataclass(frozen=True)
class PipelineScorer:
    """The sklearn Pipeline itself: the reference, and the fallback."""

    pipeline: Any
    schema: Schema
    kind: str = "sklearn"
    reason: str = ""

    def frame(self, frame: pd.DataFrame) -> np.ndarray:
        from cycleml.model.pipeline import predict_scores

        return predict_scores(self.pipeline, self.schema, frame)

    def records(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        frame = pd.DataFrame.from_records(list(records), columns=self.schema.inputs)
        for col in self.schema.categorical:
            frame[col] = frame[col].astype("object")
        return self.frame(frame)


# --- compiling -----------------------------------------------------------------------------


def _steps(transformer: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    return [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]


def _numeric_block(steps: list[Any], columns: list[str]) -> dict[str, Any]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    fill = np.full(len(columns), np.nan)
    mean, scale = np.zeros(len(columns)), np.ones(len(columns))
    scaled = False
    for step in steps:
        if isinstance(step, SimpleImputer) and step.strategy in _NUMERIC_STRATEGIES:
            if scaled:  # the plan imputes, then scales
                raise NotCompilable("a numeric SimpleImputer after the scaler is not supported")
            if step.add_indicator:
                raise NotCompilable("SimpleImputer(add_indicator=True) is not supported")
            stats = np.asarray(step.statistics_, dtype="float64")
            if np.isnan(stats).any():  # sklearn drops all-missing columns: another layout
                raise NotCompilable("a numeric column was all missing in training")
            fill = stats
        elif isinstance(step, StandardScaler) and not scaled:
            scaled = True
            mean = np.asarray(step.mean_ if step.with_mean else np.zeros(len(columns)))
            scale = np.asarray(step.scale_ if step.with_std else np.ones(len(columns)))
        else:
            raise NotCompilable(f"numeric step {type(step).__name__} is not supported")
    return {
        "kind": "numeric",
        "columns": columns,
        "fill": fill.tolist(),
        "mean": mean.astype("float64").tolist(),
        "scale": scale.astype("float64").tolist(),
    }


def _onehot_lookup(encoder: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Per column: category -> output column (within the block), where None and unseen
    values go (-1: all zeros).

    Learnt by transforming probe rows with the fitted encoder: one row per known category
    of a column (the other columns held at their first category), one unseen value and
    None. The output columns that change between probes are that column's own. (sklearn's
    constant imputer fills NaN but not None, so None is a category of its own.)
    """
    known = [list(c) for c in encoder.categories_]
    held = [c[0] for c in known]
    sentinel = "\x00cycleml-unseen\x00"
    lookups = []
    for j, column in enumerate(columns):
        probes = np.array([held] * (len(known[j]) + 2), dtype=object)
        probes[:, j] = [*known[j], sentinel, None]
        out = np.asarray(encoder.transform(probes), dtype="float64")
        if not np.isin(out, (0.0, 1.0)).all():
            raise NotCompilable(f"the encoder of {column!r} is not a one-hot encoding")
        own = np.flatnonzero(out.min(axis=0) != out.max(axis=0))
        positions = []
        for row in out[:, own]:
            hot = np.flatnonzero(row)
            if len(hot) > 1:
                raise NotCompilable(f"the encoder of {column!r} sets several columns at once")
            positions.append(int(own[hot[0]]) if len(hot) else -1)
        table = {c: pos for c, pos in zip(known[j], positions, strict=False) if c is not None}
        lookups.append(
            {"column": column, "table": table, "unknown": positions[-2], "none": positions[-1]}
        )
    return lookups


def _categorical_block(steps: list[Any], columns: list[str]) -> dict[str, Any]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    if len(steps) != 2 or not isinstance(steps[1], OneHotEncoder):
        names = ", ".join(type(s).__name__ for s in steps)
        raise NotCompilable(f"categorical steps [{names}] are not SimpleImputer + OneHotEncoder")
    imputer, encoder = steps
    if not isinstance(imputer, SimpleImputer) or imputer.strategy != "constant":
        raise NotCompilable(f"categorical step {type(imputer).__name__} is not supported")
    if imputer.add_indicator or encoder.drop_idx_ is not None:
        raise NotCompilable("SimpleImputer(add_indicator) / OneHotEncoder(drop) not supported")
    for column, cats in zip(columns, encoder.categories_, strict=True):
        if not all(c is None or isinstance(c, str) for c in cats):
            raise NotCompilable(f"categorical column {column!r} has non-text categories")
    held = np.array([[c[0] for c in encoder.categories_]], dtype=object)
    return {
        "kind": "categorical",
        "columns": columns,
        "fill": str(imputer.fill_value),
        "width": int(np.asarray(encoder.transform(held)).shape[1]),
        "lookups": _onehot_lookup(encoder, columns),
    }


def compile_pipeline(pipeline: Any, schema: Schema) -> dict[str, Any]:
    """The plan (JSON-ready) of a fitted cycleml Pipeline: derive -> preprocess -> XGBoost.

    Raises:
        NotCompilable: a step, option or layout the compiled scorer cannot reproduce.
    """
    from sklearn.compose import ColumnTransformer

    from cycleml.model.features import DerivedFeatures

    steps = dict(pipeline.steps)
    if list(steps) != ["derive", "preprocess", "model"]:
        raise NotCompilable(f"pipeline steps {list(steps)} are not derive, preprocess, model")
    derive, pre, model = steps["derive"], steps["preprocess"], steps["model"]
    if not isinstance(derive, DerivedFeatures):
        raise NotCompilable(f"step 'derive' is a {type(derive).__name__}")
    if not isinstance(pre, ColumnTransformer):
        raise NotCompilable(f"step 'preprocess' is a {type(pre).__name__}")
    if type(model).__name__ not in {"XGBClassifier", "XGBRegressor"}:
        raise NotCompilable(f"step 'model' is a {type(model).__name__}, not XGBoost")
    blocks = []
    for name, transformer, columns in pre.transformers_:
        if transformer == "drop" or not len(columns):
            continue
        if transformer == "passthrough" or name == "remainder":
            raise NotCompilable(f"ColumnTransformer part {name!r} passes columns through")
        columns = [str(c) for c in columns]
        kinds = {"categorical" if c in schema.model_categorical else "numeric" for c in columns}
        if len(kinds) != 1:
            raise NotCompilable(f"ColumnTransformer part {name!r} mixes numeric and text columns")
        build = _categorical_block if kinds == {"categorical"} else _numeric_block
        blocks.append(build(_steps(transformer), columns))
    width = sum(len(b["columns"]) if b["kind"] == "numeric" else b["width"] for b in blocks)
    if width != model.n_features_in_:
        raise NotCompilable(
            f"the plan makes {width} features, the booster expects {model.n_features_in_}"
        )
    return {
        "version": PLAN_VERSION,
        "derived": list(derive.specs or []),
        "blocks": blocks,
        "n_features": width,
        "iteration_range": list(iteration_range(model)),
        "task": schema.task,
        "classes": len(schema.classes),
    }


# --- scoring -------------------------------------------------------------------------------


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


def _floats(values: Column) -> np.ndarray:
    """float64 as ``pd.to_numeric(errors="coerce")`` reads the column: unparsable is NaN."""
    if isinstance(values, Coded):
        parsed = _floats(np.asarray(values.uniques, dtype=object))
        return values.take(parsed, math.nan, math.nan, "float64")
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype("float64", copy=False)
    numbers = pd.to_numeric(pd.Series(array, dtype=object), errors="coerce")
    return np.asarray(numbers, dtype="float64")


def _number(value: Any) -> float:
    """One value as :func:`_floats` reads it."""
    if value is None:
        return math.nan
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    return float(_floats(np.array([value], dtype=object))[0])


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
    return np.asarray(getattr(_dates(series).dt, part), dtype="float64")


def _fast_date(value: Any) -> dt.datetime | None:
    """An ISO 8601 text's datetime in UTC, as pandas parses it, or a naive datetime as it
    is; None for anything else (pandas decides those)."""
    if _naive(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str) or not _ISO.fullmatch(value):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.astimezone(dt.UTC) if when.tzinfo is not None else when


def _naive(value: Any) -> bool:
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


def _derive(columns: dict[str, Column], spec: dict[str, Any]) -> Column:
    """One derived column (``features.derive``) over whole columns."""
    kind, cols = spec["kind"], spec["columns"]
    if kind in ("ratio", "difference", "product"):
        a, b = _floats(columns[cols[0]]), _floats(columns[cols[1]])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if kind == "ratio":
                value = a / np.where(b != 0, b, np.nan)
            else:
                value = a - b if kind == "difference" else a * b
        return np.where(np.isfinite(value), value, np.nan)
    if kind == "date_part":
        return _date_parts(columns[cols[0]], spec["part"])
    if kind == "bin":
        x = _floats(columns[cols[0]])
        bins = np.digitize(x, np.asarray(spec["edges"], dtype="float64"))
        return np.where(np.isnan(x), np.nan, bins)
    if kind == "interaction":
        return _interaction([_coded(columns[c]) for c in cols])
    raise NotCompilable(f"unknown derived feature kind {kind!r}")


def _derive_one(values: dict[str, Any], spec: dict[str, Any]) -> Any:
    """:func:`_derive` for one record, on Python scalars (IEEE doubles, as numpy's)."""
    kind, cols = spec["kind"], spec["columns"]
    if kind in ("ratio", "difference", "product"):
        a, b = _number(values[cols[0]]), _number(values[cols[1]])
        if kind == "ratio":
            value = a / b if b != 0 and b == b else math.nan
        else:
            value = a - b if kind == "difference" else a * b
        return value if math.isfinite(value) else math.nan
    if kind == "bin":
        x = _number(values[cols[0]])
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


def _coded(values: Column) -> Coded:
    return values if isinstance(values, Coded) else Coded.of(values)


@dataclass(frozen=True)
class _Lookup:
    """One categorical column's one-hot position per value (-1: no column set)."""

    column: str
    table: dict[str, int]
    unknown: int
    none: int
    nan: int
    """NaN is imputed with the fill value; None is not (see ``_onehot_lookup``)."""
    offset: int

    def position(self, value: Any) -> int:
        if value is None:
            return self.none
        if isinstance(value, float) and value != value:
            return self.nan
        return self.table.get(value, self.unknown)

    def positions(self, values: Column) -> np.ndarray:
        coded = _coded(values)
        per_unique = [self.position(u) for u in coded.uniques]
        return coded.take(per_unique, self.nan, self.none, "int64")


class CompiledScorer:
    """Scores through a plan from :func:`compile_pipeline` and the Pipeline's own booster.

    Thread-safe: scoring reads the plan and calls XGBoost's lock-free ``inplace_predict``.
    """

    kind = "compiled"
    reason = ""

    def __init__(self, plan: dict[str, Any], booster: Any, inputs: Sequence[str]) -> None:
        if plan.get("version") != PLAN_VERSION:
            raise NotCompilable(f"plan version {plan.get('version')} is not {PLAN_VERSION}")
        self.plan = plan
        self.booster = booster
        self.inputs = list(inputs)
        self.binary = plan["task"] == "classification" and plan["classes"] == 2
        self._range = tuple(plan["iteration_range"])
        self._derived: list[dict[str, Any]] = list(plan["derived"])
        self._numeric: list[tuple[list[str], list[float], list[float], list[float], int]] = []
        self._categorical: list[_Lookup] = []
        offset = 0
        for block in plan["blocks"]:
            if block["kind"] == "numeric":
                names = list(block["columns"])
                self._numeric.append((names, block["fill"], block["mean"], block["scale"], offset))
                offset += len(names)
                continue
            for lookup in block["lookups"]:
                table = dict(lookup["table"])
                nan = table.get(block["fill"], lookup["unknown"])
                self._categorical.append(
                    _Lookup(lookup["column"], table, lookup["unknown"], lookup["none"], nan, offset)
                )
            offset += block["width"]
        self.n_features = offset
        date_sources = {c for d in self._derived if d["kind"] == "date_part" for c in d["columns"]}
        self._plain = [c for c in self.inputs if c not in date_sources]

    @classmethod
    def from_pipeline(
        cls, pipeline: Any, schema: Schema, plan: dict[str, Any] | None = None
    ) -> CompiledScorer:
        model = pipeline.steps[-1][1]
        return cls(plan or compile_pipeline(pipeline, schema), model.get_booster(), schema.inputs)

    # --- the entry points: a DataFrame, records (the service), or prepared columns (batch)

    def frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.columns({c: frame[c] for c in self.inputs}, len(frame))

    def records(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        if 0 < len(records) <= _SMALL and self._simple(records):
            rows = [self._row(r) for r in records]
            with np.errstate(over="ignore"):  # beyond float32: inf, as XGBoost casts it too
                x = np.array(rows, dtype="float32")
            return self._predict(x)
        # as pandas would build the frame from the records
        columns = {c: pd.Series([r.get(c) for r in records]) for c in self.inputs}
        return self.columns(columns, len(records))  # type: ignore[arg-type]

    def columns(self, columns: dict[str, Column], n: int) -> np.ndarray:
        return self._predict(self.matrix(columns, n))

    def matrix(self, columns: dict[str, Column], n: int) -> np.ndarray:
        """The booster's input (n x features, float32), as the Pipeline would build it."""
        columns = dict(columns)
        for spec in self._derived:
            columns[spec["name"]] = _derive(columns, spec)
        x = np.zeros((n, self.n_features), dtype="float32")
        for names, fill, mean, scale, offset in self._numeric:
            for k, name in enumerate(names):
                v = _floats(columns[name])
                if np.isinf(v).any():
                    raise ValueError(_INFINITE.format(name))
                with np.errstate(over="ignore"):  # beyond float32: inf, as in XGBoost
                    x[:, offset + k] = (np.where(np.isnan(v), fill[k], v) - mean[k]) / scale[k]
        flat = x.reshape(-1)
        starts = np.arange(n, dtype="int64") * self.n_features
        for lookup in self._categorical:
            where = lookup.positions(columns[lookup.column])
            hot = where >= 0
            index = starts + lookup.offset + where
            flat[index if hot.all() else index[hot]] = 1.0
        return x

    def _simple(self, records: Sequence[dict[str, Any]]) -> bool:
        """Records whose date inputs are text, naive datetimes or missing: the per-record
        path's case (pandas reads a column of zone-aware datetimes in their own zone)."""
        for spec in self._derived:
            if spec["kind"] == "date_part":
                for r in records:
                    value = r.get(spec["columns"][0])
                    if not (value is None or isinstance(value, str) or _naive(value)):
                        return False
        return True

    def _row(self, record: dict[str, Any]) -> list[float]:
        """One record's booster input in Python floats: ``matrix``'s arithmetic."""
        values = {c: record.get(c) for c in self.inputs}
        for spec in self._derived:
            values[spec["name"]] = _derive_one(values, spec)
        row = [0.0] * self.n_features
        for names, fill, mean, scale, offset in self._numeric:
            for k, name in enumerate(names):
                v = _number(values[name])
                if math.isinf(v):
                    raise ValueError(_INFINITE.format(name))
                row[offset + k] = ((fill[k] if v != v else v) - mean[k]) / scale[k]
        for lookup in self._categorical:
            position = lookup.position(values[lookup.column])
            if position >= 0:
                row[lookup.offset + position] = 1.0
        return row

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            classes = self.plan["classes"] if self.plan["task"] == "classification" else 0
            return np.empty((0, classes) if classes else 0, dtype="float32")
        raw = self.booster.inplace_predict(x, iteration_range=self._range, validate_features=False)
        if self.binary:  # XGBClassifier.predict_proba's layout
            return np.column_stack([1.0 - raw, raw])
        return np.asarray(raw)


def verify(compiled: Scorer, reference: Scorer, frame: pd.DataFrame) -> float:
    """The largest absolute difference between the two scorers' outputs on ``frame``."""
    if frame.empty:
        return 0.0
    a = np.asarray(compiled.frame(frame), dtype="float64")
    b = np.asarray(reference.frame(frame), dtype="float64")
    if a.shape != b.shape:
        return math.inf
    diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
    return float(np.nan_to_num(diff, nan=math.inf).max())


@dataclass(frozen=True)
class Compilation:
    """What registration decided: the verified plan, or why the Pipeline scores instead."""

    plan: dict[str, Any] | None
    reason: str
    """Empty when compiled; else why not (the step, or the difference found)."""
    max_abs_diff: float | None
    rows: int

    @property
    def kind(self) -> str:
        return "compiled" if self.plan is not None else "sklearn"

    def tags(self) -> dict[str, str]:
        """The model version's tags: ``cycleml.scorer`` and how it was checked."""
        tags = {SCORER_TAG: self.kind, f"{SCORER_TAG}.rows_checked": str(self.rows)}
        if self.max_abs_diff is not None:
            tags[f"{SCORER_TAG}.max_abs_diff"] = f"{self.max_abs_diff:.3g}"
        if self.reason:
            tags[f"{SCORER_TAG}.reason"] = self.reason[:500]
        return tags

    def line(self) -> str:
        if self.plan is not None:
            return (
                f"compiled scorer: verified on {self.rows:,} validation and test rows "
                f"(largest difference from the Pipeline {self.max_abs_diff:.2g})"
            )
        return f"compiled scorer: not used, the Pipeline scores ({self.reason})"


def compile_verified(
    pipeline: Any, schema: Schema, checks: Sequence[pd.DataFrame], tolerance: float = TOLERANCE
) -> Compilation:
    """Compile ``pipeline`` and check it against the Pipeline on ``checks`` (validation and
    test data): the plan is returned only when every output agrees within ``tolerance``."""
    frame = pd.concat([schema.feature_frame(f) for f in checks], ignore_index=True)
    try:
        plan = compile_pipeline(pipeline, schema)
        scorer = CompiledScorer.from_pipeline(pipeline, schema, plan)
        worst = max(
            verify(scorer, PipelineScorer(pipeline, schema), frame),
            verify(scorer, PipelineScorer(pipeline, schema), _edge_cases(frame)),
        )
    except NotCompilable as err:
        return Compilation(None, str(err), None, len(frame))
    if not worst <= tolerance:
        why = f"differs from the Pipeline by {worst:.3g} (> {tolerance:g}) on the checked rows"
        return Compilation(None, why, worst, len(frame))
    return Compilation(plan, "", worst, len(frame))


def _edge_cases(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows the data may lack: every input missing, and each text column unseen."""
    if frame.empty:
        return frame
    rows = frame.head(1).reset_index(drop=True)
    empty = pd.DataFrame({c: pd.Series([None], dtype=rows[c].dtype) for c in rows.columns})
    unseen = rows.copy()
    for column in rows.columns:
        if rows[column].dtype == object:
            unseen[column] = "never seen in training \u2603"
    return pd.concat([rows, empty, unseen], ignore_index=True)
