"""The register gate: success criteria, the baseline margin, fairness limits, and the
comparison with the current champion.

The checks return every unmet condition in words (empty when the model passes), so the
``register`` stage can print and record them. :func:`compare_with_champion` re-scores the
champion and the candidate on the same test rows, leaving out rows the champion trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cycleml.config import Bound, Params
from cycleml.data.schema import Schema, row_keys
from cycleml.evaluation.metrics import advantage, better
from cycleml.files import read_json
from cycleml.model.decision import DEFAULT_THRESHOLD
from cycleml.names import SCHEMA_ARTIFACT, SEEN_ROWS
from cycleml.paths import Paths

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "Comparison",
    "check_baseline",
    "check_criteria",
    "check_fairness",
    "compare_with_champion",
]

# A fair comparison needs enough test rows the champion never saw.
_MIN_COMPARISON_ROWS = 30
_MIN_COMPARISON_SHARE = 0.1


def check_criteria(metrics: dict[str, float], criteria: dict[str, Bound]) -> list[str]:
    """Every unmet criterion, in words; empty when the model passes the gate."""
    failures = []
    for metric, bound in criteria.items():
        value = metrics.get(metric)
        if value is None or value != value:  # absent, null or NaN
            failures.append(f"{metric}: undefined for this model on this test data")
            continue
        if bound.min is not None and not value >= bound.min:
            failures.append(f"{metric} = {value:.4f} is below the minimum {bound.min:g}")
        if bound.max is not None and not value <= bound.max:
            failures.append(f"{metric} = {value:.4f} is above the maximum {bound.max:g}")
    return failures


def check_baseline(baselines: dict[str, Any], margin: float | None) -> list[str]:
    """Why the model does not beat the best baseline by ``margin`` (empty when it does)."""
    if margin is None:
        return []
    kpi, best = baselines["kpi"], baselines["best_baseline"]
    model, floor = baselines["model"], baselines["best_baseline_kpi"]
    needed = abs(floor) * margin
    gap = advantage(kpi, model, floor)
    if gap > needed or (needed == 0 and gap > 0):
        return []
    return [
        f"{kpi} = {model:,.2f} does not beat the best baseline '{best}' ({floor:,.2f}) by "
        f"register.beat_baseline_by={margin:g} of its size; a rule does as well"
    ]


def check_fairness(summary_file: Path) -> list[str]:
    """The fairness limits (evaluate.fairness) the model breaks, from evaluate's summary."""
    if not summary_file.exists():
        return []
    summary = read_json(summary_file)
    return [
        f"fairness: {v['metric']} for {v['column']!r} is {v['value']:.3f}, above the limit "
        f"{v['limit']:g} (evaluate.fairness)"
        for v in summary.get("violations", [])
    ]


@dataclass
class Comparison:
    """The candidate against the champion on test rows the champion never trained on."""

    verdict: str  # wins | loses | replaces (a different problem) | unknown (keep champion)
    why: str
    champion: float | None = None
    candidate: float | None = None
    rows: int = 0


def compare_with_champion(
    client: MlflowClient,
    version: Any,
    schema: Schema,
    test: pd.DataFrame,
    metric: str,
    params: Params,
    paths: Paths,
) -> Comparison:
    """Re-score the champion and the candidate on the same rows, unseen by the champion.

    Rows the champion trained or early-stopped on (after a re-split or a new data version
    they can land in today's test set) are left out, so an old model is not flattered by
    its own training data. A champion for another problem is replaced; one that cannot be
    scored fairly (too few unseen rows, a load failure) is kept.
    """
    import mlflow

    from cycleml.evaluation.evaluator import evaluate
    from cycleml.model.loading import load_local_model
    from cycleml.scoring.loaded import load_model

    label = f"champion v{version.version}"
    try:  # the schema alone settles "another problem": no model download for that
        old_schema = Schema.model_validate(
            mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{SCHEMA_ARTIFACT}")
        )
    except Exception as err:  # noqa: BLE001 - any failure means "not comparable"
        return Comparison("unknown", f"{label} has no readable schema ({type(err).__name__})")
    if (old_schema.task, old_schema.target, old_schema.classes) != (
        schema.task,
        schema.target,
        schema.classes,
    ):
        return Comparison("replaces", f"{label} was trained for a different problem")
    missing = [c for c in old_schema.inputs if c not in test.columns]
    if missing:
        return Comparison("replaces", f"{label} needs columns the data lacks: {missing}")
    seen = _seen_rows(version.run_id)
    unseen = test[~np.isin(row_keys(test, old_schema), seen)] if seen is not None else test
    if len(unseen) < max(_MIN_COMPARISON_ROWS, _MIN_COMPARISON_SHARE * len(test)):
        return Comparison(
            "unknown", f"only {len(unseen)} test rows are unseen by the {label}: not comparable"
        )
    try:
        # the one loader; each model decides with the threshold it was evaluated with
        champion = load_model(client, version.name, str(version.version))
        old, _ = evaluate(champion.pipeline, old_schema, unseen, champion.threshold, params.goals)
        new_cut = read_json(paths.metrics("evaluate")).get("decision_threshold")
        new, _ = evaluate(
            load_local_model(paths), schema, unseen, new_cut or DEFAULT_THRESHOLD, params.goals
        )
    except Exception as err:  # noqa: BLE001 - a champion that cannot score is kept, not crashed on
        return Comparison(
            "unknown", f"{label} could not be re-scored ({type(err).__name__}: {err})"
        )
    verdict = "wins" if better(metric, new[metric], old[metric]) else "loses"
    verb = "beats" if verdict == "wins" else "does not beat"
    why = (
        f"on {len(unseen):,} test rows the {label} never trained on, {metric} "
        f"{new[metric]:.4f} {verb} the champion's {old[metric]:.4f}"
    )
    return Comparison(verdict, why, old[metric], new[metric], len(unseen))


def _seen_rows(run_id: str) -> np.ndarray | None:
    """Keys of the rows a run trained and early-stopped on (None for runs that predate it)."""
    import mlflow

    try:
        local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{SEEN_ROWS}")
    except Exception:  # noqa: BLE001 - older runs have no such artifact
        return None
    return np.asarray(pd.read_parquet(local)["key"].to_numpy())
