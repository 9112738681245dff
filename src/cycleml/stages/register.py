"""Stage `register`: a gate, then the MLflow Model Registry.

A model that misses the success criteria (``register.criteria`` for its task) is not
registered: the reasons are printed and written to ``reports/register.json``, and the
stage still succeeds so ``dvc repro`` completes. A model that meets them becomes a new
registered version; it takes the ``champion`` alias when there is none, or when it beats
the current champion on the *same* test data (the champion is re-scored, not trusted from
its old metrics). Otherwise it is the ``challenger``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cycleml.config import Bound, ConfigError, Params
from cycleml.data.schema import Schema, row_keys
from cycleml.evaluation.metrics import advantage, better
from cycleml.files import read_json, write_json
from cycleml.model import registry
from cycleml.model.decision import DEFAULT_THRESHOLD
from cycleml.names import (
    SCORER_PLAN,
    SCORER_TAG,
    SEEN_ROWS,
    TAG_DECISION,
    TAG_GATE,
    TAG_REASONS,
    TAG_TASK,
)
from cycleml.paths import Paths

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "CHAMPION",
    "CHALLENGER",
    "Decision",
    "check_baseline",
    "check_criteria",
    "check_fairness",
    "run",
]

CHAMPION, CHALLENGER = registry.CHAMPION, registry.CHALLENGER
# A fair comparison needs enough test rows the champion never saw.
_MIN_COMPARISON_ROWS = 30
_MIN_COMPARISON_SHARE = 0.1


@dataclass
class Decision:
    model_name: str
    registered: bool
    primary_metric: str
    candidate: float
    version: str | None = None
    alias: str | None = None
    champion_version: str | None = None
    champion_score: float | None = None
    status: str | None = None
    reasons: list[str] = field(default_factory=list)
    scorer: str | None = None
    """How the version scores: the compiled scorer (verified here) or the Pipeline, why."""


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


def _current_champion(client: MlflowClient, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _existing_version(client: MlflowClient, name: str, run_id: str) -> Any | None:
    """The version already registered from this training run (a re-run of register after
    a gate change must not register the same model twice)."""
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return found[0] if found else None


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


def _compare(
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
    from cycleml.evaluation.evaluator import evaluate
    from cycleml.model.loading import load_local_model
    from cycleml.scoring.loaded import load_model

    label = f"champion v{version.version}"
    try:  # the one loader: pipeline, schema and the threshold it was judged with
        champion = load_model(client, version.name, str(version.version))
    except Exception as err:  # noqa: BLE001 - any failure means "not comparable"
        return Comparison("unknown", f"{label} cannot be loaded ({type(err).__name__}: {err})")
    old_schema = champion.schema
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
        # each model decides with its own threshold, chosen when it was evaluated
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


def run(params: Params, paths: Paths) -> Decision:
    import mlflow

    from cycleml.model.tracking import configure, lineage_tags

    schema = Schema.model_validate(read_json(paths.schema))
    metrics: dict[str, float] = read_json(paths.metrics("evaluate"))
    trained = read_json(paths.train_run)
    cfg = params.register_
    metric = cfg.primary_metric[schema.task]
    if metric not in metrics or metrics[metric] is None:
        raise ConfigError(
            f"register.primary_metric.{schema.task}: {metric!r} is not available for this "
            f"problem; choose one of {', '.join(k for k, v in metrics.items() if v is not None)}"
        )
    decision = Decision(
        model_name=cfg.model_name,
        registered=False,
        primary_metric=metric,
        candidate=metrics[metric],
        reasons=check_criteria(metrics, cfg.criteria.get(schema.task, {}))
        + check_baseline(read_json(paths.metrics("baselines")), cfg.beat_baseline_by)
        + check_fairness(paths.metrics("fairness")),
    )
    if decision.reasons:
        write_json(paths.report("register.json"), asdict(decision))
        return decision

    client = configure(params.tracking, paths)
    champion = _current_champion(client, cfg.model_name)
    existing = _existing_version(client, cfg.model_name, trained["run_id"])
    if champion is not None and existing is not None and champion.version == existing.version:
        decision.registered, decision.version = True, str(existing.version)
        decision.alias, decision.status = CHAMPION, registry.APPROVED
        decision.reasons.append(f"v{decision.version} is already the champion")
        decision.scorer = _attach_scorer(client, existing, schema, paths)
        write_json(paths.report("register.json"), asdict(decision))
        return decision
    wins = True
    if champion is None:
        decision.reasons.append("no champion yet")
    else:
        test = pd.read_parquet(paths.split("test"))
        found = _compare(client, champion, schema, test, metric, params, paths)
        decision.champion_version, decision.champion_score = str(champion.version), found.champion
        decision.reasons.append(found.why)
        wins = found.verdict in {"wins", "replaces"}

    tags = {
        **lineage_tags(params, paths),
        **{f"test_{k}": f"{v:.6g}" for k, v in metrics.items() if v is not None},
        TAG_GATE: "passed",
        TAG_TASK: schema.task,
    }
    version = existing or mlflow.register_model(trained["model_uri"], cfg.model_name, tags=tags)
    decision.registered, decision.version = True, str(version.version)
    # compiled before any alias points here, so a server following the alias finds it
    decision.scorer = _attach_scorer(client, version, schema, paths)
    _decide(client, cfg.model_name, decision, wins, cfg.approval)
    write_json(paths.report("register.json"), asdict(decision))
    return decision


def _attach_scorer(client: MlflowClient, version: Any, schema: Schema, paths: Paths) -> str:
    """Compile the version's Pipeline, verify it on validation and test data, and save the
    plan with the version (artifact ``scorer/plan.json`` of its run, tag ``cycleml.scorer``).

    A step the compiler cannot express, or any difference from the Pipeline above the
    tolerance, tags the version ``sklearn`` with the reason: it is then served by the
    Pipeline. Done once per version.
    """
    from cycleml.model.loading import load_local_model
    from cycleml.scoring.compiled import compile_verified

    tags = dict(version.tags or {})
    if SCORER_TAG in tags:
        return f"{tags[SCORER_TAG]} scorer, as verified when v{version.version} was registered"
    checks = [pd.read_parquet(paths.split(part)) for part in ("valid", "test")]
    result = compile_verified(load_local_model(paths), schema, checks)
    if result.plan is not None:
        client.log_dict(version.run_id, result.plan, SCORER_PLAN)
    for key, value in result.tags().items():
        client.set_model_version_tag(version.name, str(version.version), key, value)
    return result.line()


def _decide(client: MlflowClient, name: str, decision: Decision, wins: bool, mode: str) -> None:
    """Approve and promote (auto), or leave pending for a person (manual)."""
    version = str(decision.version)
    if mode == "auto":
        decision.status = registry.APPROVED
        registry.set_status(
            client,
            name,
            version,
            registry.APPROVED,
            "passed every gate (automatic approval)",
            by="cycleml register",
        )
        decision.alias = CHAMPION if wins else CHALLENGER
    else:
        decision.status = registry.PENDING
        registry.set_status(
            client,
            name,
            version,
            registry.PENDING,
            "waiting for `cycleml registry approve` or `reject`",
            by="cycleml register",
        )
        decision.alias = CHALLENGER
        decision.reasons.append("manual approval: pending until a person decides")
    tag = CHAMPION if wins and mode == "auto" else ("champion-candidate" if wins else CHALLENGER)
    client.set_model_version_tag(name, version, TAG_DECISION, tag)
    client.set_model_version_tag(name, version, TAG_REASONS, "; ".join(decision.reasons))
    if decision.alias == CHAMPION:
        registry.promote(client, name, version)
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)
