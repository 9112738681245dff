"""Names other tools and people see: MLflow tags and artifact paths, prediction-log tables.

They are promises to users (the MLflow UI shows them, the service's /metadata returns them,
lineage queries search by them), so each is spelled once, here. A leaf: imports nothing.
"""

from __future__ import annotations

# --- tags on runs and registered versions ------------------------------------------------
TAG_PREFIX = "cycleml."
TAG_STAGE = "cycleml.stage"
TAG_TASK = "cycleml.task"
TAG_GIT_COMMIT = "cycleml.git_commit"
TAG_GIT_DIRTY = "cycleml.git_dirty"
TAG_PARAMS_HASH = "cycleml.params_hash"
TAG_DATA_PREFIX = "cycleml.data."
"""Lineage of the data: ``cycleml.data.<part>.md5`` and ``.path`` per split file."""
TAG_RAW_DVC_MD5 = "cycleml.data.raw.dvc_md5"
TAG_DECISION = "cycleml.decision"
TAG_REASONS = "cycleml.reasons"
TAG_GATE = "cycleml.gate"
TAG_STATUS = "cycleml.status"
TAG_STATUS_REASON = "cycleml.status_reason"
TAG_STATUS_BY = "cycleml.status_by"
TAG_STATUS_AT = "cycleml.status_at"
TAG_CHAMPION_HISTORY = "cycleml.champion_history"
TAG_BASELINE_VERDICT = "cycleml.baseline_verdict"
TAG_BEHAVIOUR_FAILED = "cycleml.behaviour_failed"
SCORER_TAG = "cycleml.scorer"
"""``compiled`` or ``sklearn``: what scores the version (``.reason``, ``.rows_checked``,
``.max_abs_diff`` beside it)."""
THRESHOLD_TAG = "test_decision_threshold"
"""The binary decision threshold evaluate chose, copied onto the registered version."""


def data_tag(part: str, field: str) -> str:
    """``cycleml.data.<part>.<field>``, e.g. ``cycleml.data.train.md5``."""
    return f"{TAG_DATA_PREFIX}{part}.{field}"


# --- artifacts of the training run -------------------------------------------------------
SCHEMA_ARTIFACT = "schema.json"
SEEN_ROWS = "seen_rows.parquet"
"""Keys of the rows a run trained and early-stopped on (register compares on the others)."""
REFERENCE_ARTIFACT = "reference.parquet"
SCORER_PLAN = "scorer/plan.json"
"""The compiled scorer's plan (see :mod:`cycleml.scoring.plan`)."""

# --- the pipeline ------------------------------------------------------------------------
STAGES = (
    "ingest",
    "validate",
    "explore",
    "split",
    "frame",
    "tune",
    "train",
    "evaluate",
    "reference",
    "register",
)
"""The stages in pipeline order: each is ``cycleml/stages/<name>.py``, the dvc.yaml stage
and the ``cycleml <name>`` command of the same name."""
