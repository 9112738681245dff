"""A registered model version, loaded and ready to score: the one loader.

Everything that scores a registered version (batch files, the service, monitor, the loop,
register's comparison with the champion) loads it here: the Pipeline, the training run's
schema, the decision threshold evaluate chose for it, its compiled scorer and its input
example. The Pipeline is deserialised by :func:`cycleml.model.loading.load_pipeline`:
skops only, with cycleml's own trusted types; a pickle version is refused unopened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cycleml.data.schema import Schema
from cycleml.model.decision import DEFAULT_THRESHOLD
from cycleml.names import SCHEMA_ARTIFACT, SCORER_PLAN, SCORER_TAG, THRESHOLD_TAG
from cycleml.scoring.runtime import CompiledScorer, PipelineScorer, Scorer

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

__all__ = ["LoadedModel", "load_model"]

_INPUT_EXAMPLE = "input_example.json"
"""Where ``mlflow.sklearn`` saves a DataFrame input example in the model directory."""


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version, ready to score: the pipeline and what it needs."""

    name: str
    version: str
    pipeline: Pipeline
    schema: Schema
    threshold: float = DEFAULT_THRESHOLD
    """Binary decision threshold: positive when P(positive class) >= threshold."""
    alias: str | None = None
    run_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    """The registered version's tags: lineage, test metrics, approval status."""
    scorer: Scorer = None  # type: ignore[assignment]
    """What scores: the compiled scorer saved with the version, or the Pipeline itself
    (the default, and the fallback)."""
    example: list[dict[str, Any]] = field(default_factory=list)
    """A few input records saved with the version (its MLflow input example), so a server
    can score them before it serves the version; empty when the version has none."""

    def __post_init__(self) -> None:
        if self.scorer is None:
            object.__setattr__(self, "scorer", PipelineScorer(self.pipeline, self.schema))


def load_model(client: MlflowClient, name: str, ref: str = "@champion") -> LoadedModel:
    """Load a registered version (``@champion``, ``@challenger``, ``3``) from ``client``'s store.

    The pipeline and the training run's ``schema.json`` are fetched from the store the
    client points at (not from MLflow's global tracking URI). The decision threshold is the
    one evaluate chose for this version (tag ``test_decision_threshold``), so batch
    decisions match the ones the version was judged and registered on.

    Raises:
        RegistryError: ``ref`` names no version of ``name``.
        UnsafeModelError: the version is not a skops model cycleml can load safely (e.g.
            pickle); nothing of it was deserialised.
    """
    import tempfile

    import mlflow.artifacts

    from cycleml.model.loading import load_pipeline
    from cycleml.model.registry import resolve

    version = resolve(client, name, ref)
    number = str(version.version)
    with tempfile.TemporaryDirectory(prefix="cycleml-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, number),
            dst_path=str(Path(tmp) / "model"),
            tracking_uri=client.tracking_uri,
        )
        pipeline = load_pipeline(Path(local), f"{name} version {number}")
        example = _example(Path(local))
        schema_file = _run_file(client, version.run_id, SCHEMA_ARTIFACT, tmp)
        schema = Schema.model_validate_json(schema_file.read_text(encoding="utf-8"))
        scorer = _scorer(client, version, pipeline, schema, tmp)
    alias = ref.lstrip("@") if not ref.lstrip("@").isdigit() else None
    if alias is None and version.aliases:
        alias = sorted(version.aliases)[0]
    return LoadedModel(
        name=name,
        version=number,
        pipeline=pipeline,
        schema=schema,
        threshold=float(version.tags.get(THRESHOLD_TAG, DEFAULT_THRESHOLD)),
        alias=alias,
        run_id=str(version.run_id),
        tags=dict(version.tags or {}),
        scorer=scorer,
        example=example,
    )


def _run_file(client: MlflowClient, run_id: str, artifact: str, tmp: str) -> Path:
    """One artifact of the training run, downloaded from ``client``'s store into ``tmp``."""
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=tmp, tracking_uri=client.tracking_uri
        )
    )


def _example(model_dir: Path) -> list[dict[str, Any]]:
    """The input example MLflow saved beside the model (split-oriented JSON) as records.

    Read as plain JSON: it comes from the artifact, like the model, and is only data.
    """
    try:
        saved = json.loads((model_dir / _INPUT_EXAMPLE).read_text(encoding="utf-8"))
        columns, rows = list(saved["columns"]), list(saved["data"])
        return [dict(zip(columns, row, strict=True)) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _scorer(
    client: MlflowClient, version: Any, pipeline: Pipeline, schema: Schema, tmp: str
) -> Scorer:
    """The version's compiled scorer when registration verified one, else the Pipeline.

    A plan that cannot be read or used is reported and the Pipeline scores: slower, never
    wrong.
    """
    import logging

    tags = dict(version.tags or {})
    if tags.get(SCORER_TAG) != "compiled":
        reason = tags.get(f"{SCORER_TAG}.reason", "registered without a compiled scorer")
        return PipelineScorer(pipeline, schema, reason=reason)
    try:
        plan = json.loads(
            _run_file(client, version.run_id, SCORER_PLAN, tmp).read_text(encoding="utf-8")
        )
        return CompiledScorer.from_pipeline(pipeline, schema, plan)
    except Exception as err:  # noqa: BLE001 - any failure: the Pipeline scores instead
        reason = f"its compiled scorer could not be loaded ({type(err).__name__}: {err})"
        logging.getLogger(__name__).warning("%s v%s: %s", version.name, version.version, reason)
        return PipelineScorer(pipeline, schema, reason=reason)
