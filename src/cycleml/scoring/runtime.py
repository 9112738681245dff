"""Scorers: the Pipeline itself, and the compiled scorer evaluating a plan.

Scoring one record through ``Pipeline.predict_proba`` costs milliseconds, nearly all of
it pandas and sklearn bookkeeping around a booster that needs a fraction of one. The
:class:`CompiledScorer` runs a plan (:mod:`cycleml.scoring.plan`) as numpy arithmetic and
lookups on records (the service), frames, or prepared columns (batch), then feeds XGBoost's
``inplace_predict``. :class:`PipelineScorer` is the reference, and the fallback.

Threads: XGBoost runs every prediction in an OpenMP team, and after each call the team's
threads busy-wait for the next one. At hundreds of one-record requests a second they never
go to sleep, so a served worker burned a second core doing nothing (issue 20); on a machine
where that core is taken, the spinning thread halved the scorer's share of the only core
left. Small inputs (under :data:`PARALLEL_ROWS` rows) are scored by a one-thread copy of
the booster, which never starts a team; larger ones by a copy that uses every core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cycleml.data.schema import Schema
from cycleml.scoring.columns import (
    Column,
    as_coded,
    derive_column,
    derive_one,
    floats,
    is_naive,
    number,
)
from cycleml.scoring.plan import PLAN_VERSION, NotCompilable, compile_pipeline

__all__ = ["CompiledScorer", "PipelineScorer", "Scorer"]

_SMALL = 64
"""Up to this many records are scored one by one in plain Python; more, column by column."""
PARALLEL_ROWS = 256
"""From this many rows on, a prediction uses every core; below, one thread. Measured on the
demo model (2 cores): one thread is faster up to ~64 rows and within 0.05 ms at 256, and
two threads pay off from ~1,000 rows (`make bench`'s noisy-neighbour section)."""
_INFINITE = "column {!r} holds an infinite number; send a finite number, or null if unknown"


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
        coded = as_coded(values)
        per_unique = [self.position(u) for u in coded.uniques]
        return coded.take(per_unique, self.nan, self.none, "int64")


class CompiledScorer:
    """Scores through a plan from :func:`compile_pipeline` and the Pipeline's own booster.

    Thread-safe: scoring reads the plan and calls XGBoost's lock-free ``inplace_predict``
    on one of two copies of the booster: one thread for small inputs, every core for large.
    """

    kind = "compiled"
    reason = ""

    def __init__(self, plan: dict[str, Any], booster: Any, inputs: Sequence[str]) -> None:
        if plan.get("version") != PLAN_VERSION:
            raise NotCompilable(f"plan version {plan.get('version')} is not {PLAN_VERSION}")
        self.plan = plan
        self.booster = booster
        self._one_thread, self._all_threads = booster.copy(), booster.copy()
        self._one_thread.set_param({"nthread": 1})
        self._all_threads.set_param({"nthread": 0})  # 0: every core this process may use
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
            columns[spec["name"]] = derive_column(columns, spec)
        x = np.zeros((n, self.n_features), dtype="float32")
        for names, fill, mean, scale, offset in self._numeric:
            for k, name in enumerate(names):
                v = floats(columns[name])
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
                    if not (value is None or isinstance(value, str) or is_naive(value)):
                        return False
        return True

    def _row(self, record: dict[str, Any]) -> list[float]:
        """One record's booster input in Python floats: ``matrix``'s arithmetic."""
        values = {c: record.get(c) for c in self.inputs}
        for spec in self._derived:
            values[spec["name"]] = derive_one(values, spec)
        row = [0.0] * self.n_features
        for names, fill, mean, scale, offset in self._numeric:
            for k, name in enumerate(names):
                v = number(values[name])
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
        booster = self._one_thread if len(x) < PARALLEL_ROWS else self._all_threads
        raw = booster.inplace_predict(x, iteration_range=self._range, validate_features=False)
        if self.binary:  # XGBClassifier.predict_proba's layout
            return np.column_stack([1.0 - raw, raw])
        return np.asarray(raw)
