"""Lineage of a registered version: which code, data and params made it, and does the
workspace still match?

Everything comes from the version's tags and its training run (written by ``train`` and
``register``), compared with the files, ``dvc.lock``, params and git HEAD of today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cycleml.config import Params, params_hash
from cycleml.model.registry import resolve
from cycleml.model.tracking import dvc_lock_lineage, file_md5, git_output
from cycleml.names import TAG_GIT_COMMIT, TAG_PARAMS_HASH, TAG_STATUS, data_tag
from cycleml.paths import Paths

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["Check", "Lineage", "trace"]


@dataclass(frozen=True)
class Check:
    what: str
    recorded: str
    current: str

    @property
    def matches(self) -> bool:
        return self.recorded == self.current


@dataclass
class Lineage:
    model: str
    version: str
    aliases: list[str]
    status: str
    run_id: str
    checks: list[Check] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def workspace_matches(self) -> bool:
        return all(c.matches for c in self.checks)


def trace(client: MlflowClient, name: str, ref: str, params: Params, paths: Paths) -> Lineage:
    """The lineage of version ``ref`` (a number or an alias) of model ``name``."""
    version = resolve(client, name, ref)
    tags: dict[str, Any] = version.tags or {}
    run = client.get_run(version.run_id)
    found = Lineage(
        model=name,
        version=str(version.version),
        aliases=list(version.aliases or []),
        status=tags.get(TAG_STATUS, "pending"),
        run_id=str(version.run_id),
        params=dict(run.data.params),
        metrics={k: v for k, v in run.data.metrics.items() if k.startswith(("test_", "valid_"))},
    )
    head = git_output(paths.root, "rev-parse", "HEAD")
    if head or TAG_GIT_COMMIT in tags:
        recorded = tags.get(TAG_GIT_COMMIT, "(not recorded)")
        found.checks.append(Check("git commit", recorded, head or "(not a git repository)"))
    for part in ("train", "valid", "test"):
        recorded = tags.get(data_tag(part, "md5"))
        if recorded:
            file = paths.split(part)
            current = file_md5(file) if file.exists() else "(missing)"
            found.checks.append(Check(f"data/split/{part}.parquet md5", recorded, current))
    for key, current in dvc_lock_lineage(paths).items():
        if key in tags:
            found.checks.append(Check("data/raw (dvc.lock) md5", tags[key], current))
    found.checks.append(
        Check("params hash", tags.get(TAG_PARAMS_HASH, "(none)"), params_hash(params))
    )
    return found
