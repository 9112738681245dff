"""Verification: a plan is kept only when it scores as the Pipeline does.

The Pipeline stays the source of truth. :func:`compile_verified` compiles it, scores
validation and test rows (and edge cases they may lack) both ways, and returns the plan
only when every output agrees to ``TOLERANCE``; otherwise the version is served by the
Pipeline, and :class:`Compilation` says why in the version's tags.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cycleml.data.schema import Schema
from cycleml.names import SCORER_TAG
from cycleml.scoring.plan import NotCompilable, compile_pipeline
from cycleml.scoring.runtime import CompiledScorer, PipelineScorer, Scorer

__all__ = ["TOLERANCE", "Compilation", "compile_verified", "verify"]

TOLERANCE = 1e-6


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
