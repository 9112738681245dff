"""Stage `frame`: is this an ML problem, and what must a model beat?

Records the problem as the data shows it (task, class balance, rows per feature, the
minority class's size), warns when the data cannot support it, and scores the baselines a
model must beat — a dummy, the rules declared in ``frame.rules`` and the best one-feature
rule — on the validation data with the business KPI from ``goals``.
Outputs: ``models/baselines.json`` (re-scored on test by evaluate, used by the register
gate), ``metrics/frame.json``, ``reports/frame.json`` and ``reports/frame.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cycleml.config import FrameParams, GoalsParams, Params
from cycleml.data.schema import Schema
from cycleml.evaluation import baselines as bl
from cycleml.evaluation.business import kpi_name
from cycleml.evaluation.metrics import advantage
from cycleml.files import read_json, write_json, write_text
from cycleml.paths import Paths

__all__ = ["Framing", "frame_problem", "run"]


@dataclass
class Framing:
    task: str
    problem: str  # binary | multiclass | regression
    rows: int
    features: int
    rows_per_feature: float
    class_balance: dict[str, float] = field(default_factory=dict)
    minority_rows: int | None = None
    kpi: str = ""
    baselines: list[dict[str, Any]] = field(default_factory=list)
    valid_kpi: dict[str, float] = field(default_factory=dict)
    best_baseline: str = ""
    fallback: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _facts(schema: Schema, train: pd.DataFrame, rules: FrameParams) -> Framing:
    problem = (
        "regression"
        if schema.task == "regression"
        else ("binary" if schema.is_binary else "multiclass")
    )
    n_features = max(len(schema.features), 1)
    framing = Framing(
        task=schema.task,
        problem=problem,
        rows=len(train),
        features=len(schema.features),
        rows_per_feature=round(len(train) / n_features, 1),
        kpi=kpi_name(schema),
    )
    if framing.rows_per_feature < rules.min_rows_per_feature:
        framing.warnings.append(
            f"only {framing.rows_per_feature:g} training rows per feature (below "
            f"frame.min_rows_per_feature={rules.min_rows_per_feature:g}): expect overfitting; "
            "get more rows or drop features"
        )
    if schema.task == "classification":
        counts = np.bincount(
            schema.encode_target(train[schema.target]), minlength=len(schema.classes)
        )
        framing.class_balance = {
            c: round(int(k) / len(train), 4) for c, k in zip(schema.classes, counts, strict=True)
        }
        framing.minority_rows = int(counts.min())
        if framing.minority_rows < rules.min_minority_rows:
            framing.warnings.append(
                f"the smallest class has {framing.minority_rows} training rows (below "
                f"frame.min_minority_rows={rules.min_minority_rows}): metrics will be noisy"
            )
    return framing


def frame_problem(
    schema: Schema,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    rules: FrameParams,
    goals: GoalsParams,
) -> Framing:
    """Facts about the problem and every baseline's KPI on ``valid``."""
    framing = _facts(schema, train, rules)
    candidates = [*bl.dummy_baselines(schema, train), *bl.declared(rules.rules)]
    if rules.auto_rule and (found := bl.auto_rule(schema, train, goals)) is not None:
        candidates.append(found)
    framing.fallback = float(train[schema.target].mean()) if schema.task == "regression" else 0.0
    for baseline in candidates:
        try:
            kpis = bl.score(baseline, valid, schema, goals, framing.fallback)
        except bl.RuleColumnMissing as err:
            framing.warnings.append(f"{err}: rule skipped")
            continue
        framing.baselines.append(baseline.as_dict() | {"valid": kpis})
        framing.valid_kpi[baseline.name] = kpis[framing.kpi]
    scores = framing.valid_kpi
    framing.best_baseline = max(scores, key=lambda name: advantage(framing.kpi, scores[name], 0.0))
    return framing


def describe(framing: Framing) -> list[str]:
    """The framing in plain words, for the terminal and ``reports/frame.md``."""
    lines = [
        f"problem: {framing.problem} ({framing.rows:,} training rows, {framing.features} "
        f"features, {framing.rows_per_feature:g} rows per feature)",
    ]
    if framing.class_balance:
        balance = ", ".join(f"{k} {v:.1%}" for k, v in framing.class_balance.items())
        lines.append(f"class balance: {balance}; smallest class {framing.minority_rows:,} rows")
    lines.append(f"KPI: {framing.kpi} (validation data)")
    for b in framing.baselines:
        mark = "  <- best" if b["name"] == framing.best_baseline else ""
        lines.append(
            f"  {b['name']:<22} {b['valid'][framing.kpi]:>14,.2f}   {b['expression']}{mark}"
        )
    lines += [f"warning: {w}" for w in framing.warnings]
    return lines


def run(params: Params, paths: Paths) -> Framing:
    schema = Schema.model_validate(read_json(paths.schema))
    train = pd.read_parquet(paths.split("train"))
    valid = pd.read_parquet(paths.split("valid"))
    framing = frame_problem(schema, train, valid, params.frame, params.goals)
    write_json(
        paths.baselines,
        {
            "kpi": framing.kpi,
            "fallback": framing.fallback,
            "best": framing.best_baseline,
            "baselines": [
                {k: b[k] for k in ("name", "expression", "origin")} for b in framing.baselines
            ],
        },
    )
    write_json(paths.metrics("frame"), {f"valid_{k}": v for k, v in framing.valid_kpi.items()})
    write_json(paths.report("frame.json"), asdict(framing))
    write_text(
        paths.report("frame.md"),
        "# Problem framing\n\n"
        + "\n".join(
            f"- {line}" if not line.startswith("  ") else f"    {line.strip()}"
            for line in describe(framing)
        )
        + "\n",
    )
    return framing
