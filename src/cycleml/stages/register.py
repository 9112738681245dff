"""Stage `register`: a gate, then the MLflow Model Registry.

A model that misses the success criteria (``register.criteria`` for its task) is not
registered: the reasons are printed and written to ``reports/register.json``, and the
stage still succeeds so ``dvc repro`` completes. A model that meets them becomes a new
registered version; it takes the ``champion`` alias when there is none, or when it beats
the current champion on the *same* test data (the champion is re-scored, not trusted from
its old metrics). Otherwise it is the ``challenger``.

The checks and the champion comparison are :mod:`cycleml.evaluation.gate`; this stage reads
and writes the files, registers the version, attaches its scorer and sets aliases and tags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from cycleml.config import ConfigError, Params
from cycleml.data.schema import Schema
from cycleml.evaluation.gate import (
    check_baseline,
    check_criteria,
    check_fairness,
    compare_with_champion,
)
from cycleml.files import read_json, write_json
from cycleml.model import registry
from cycleml.names import (
    SCORER_PLAN,
    SCORER_TAG,
    TAG_DECISION,
    TAG_GATE,
    TAG_REASONS,
    TAG_TASK,
)
from cycleml.paths import Paths

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["CHAMPION", "CHALLENGER", "Decision", "run"]

CHAMPION, CHALLENGER = registry.CHAMPION, registry.CHALLENGER


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
        found = compare_with_champion(client, champion, schema, test, metric, params, paths)
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
    from cycleml.scoring.verify import compile_verified

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
