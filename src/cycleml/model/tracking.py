"""MLflow set-up and lineage: which code, data and params made a run.

The tracking URI comes from ``MLFLOW_TRACKING_URI`` when set (team mode: a server or a
PostgreSQL URL), else from ``tracking.tracking_uri`` in params.yaml (``sqlite:///mlflow.db``,
resolved against the project root so every stage and ``mlflow ui`` see one store).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cycleml.config import Params, TrackingParams, params_hash
from cycleml.names import TAG_GIT_COMMIT, TAG_GIT_DIRTY, TAG_PARAMS_HASH, data_tag
from cycleml.paths import Paths

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "configure",
    "dvc_lock_lineage",
    "file_md5",
    "git_output",
    "lineage_tags",
    "store_setup_lock",
    "tracking_uri",
]

# Tools run offline: no telemetry calls from inside the pipeline.
_QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def tracking_uri(tracking: TrackingParams, paths: Paths) -> str:
    """The effective tracking URI (environment first); relative SQLite paths made absolute."""
    return paths.database_url(os.environ.get("MLFLOW_TRACKING_URI") or tracking.tracking_uri)


def configure(tracking: TrackingParams, paths: Paths) -> MlflowClient:
    """Point MLflow at the store and experiment; artifacts go under ``mlruns/`` by default."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import mlflow

    uri = tracking_uri(tracking, paths)
    mlflow.set_tracking_uri(uri)
    # the first client creates the schema of a new store, then the experiment: both
    # check-then-create, so processes starting together on one SQLite file take turns
    with store_setup_lock(uri):
        client = mlflow.MlflowClient(uri)
        if client.get_experiment_by_name(tracking.experiment) is None:
            location = paths.mlruns.as_uri() if uri.startswith("sqlite:") else None
            client.create_experiment(tracking.experiment, artifact_location=location)
        mlflow.set_experiment(tracking.experiment)
    return client


@contextmanager
def store_setup_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock between processes while a SQLite store at ``url`` is set up.

    MLflow (alembic migrations) and Optuna (``create_all``, an alembic stamp) create the
    schema of a new SQLite file with check-then-create steps, so two processes opening the
    same new file at once fail: "duplicate column name: step", "table studies already
    exists", "UNIQUE constraint failed: alembic_version.version_num". With this lock one
    sets the store up while the others wait, then find it ready. It is an OS lock on a file
    in the temp folder named after the database's path (none in the project), released
    when its holder exits or dies. Other URLs, systems without ``fcntl`` or a writable temp
    folder: no lock.
    """
    prefix = "sqlite:///"
    database = url.removeprefix(prefix).split("?", 1)[0] if url.startswith(prefix) else ""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None  # type: ignore[assignment]
    if not database or database == ":memory:" or fcntl is None:
        yield
        return
    key = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:16]
    try:
        handle = (Path(tempfile.gettempdir()) / f"cycleml-store-{key}.lock").open("a")
    except OSError:  # no writable temp folder: set up without the lock, as before
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes: DVC 3's hash for a file, so tags match ``dvc.lock``."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_output(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def dvc_lock_lineage(paths: Paths) -> dict[str, str]:
    """The data source's version as DVC recorded it, when ``dvc.lock`` has the ingest stage."""
    try:
        lock = yaml.safe_load(paths.dvc_lock.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    for out in lock.get("stages", {}).get("ingest", {}).get("outs", []):
        if "md5" in out and Path(out["path"]) == paths.raw.relative_to(paths.root):
            return {"cycleml.data.raw.dvc_md5": str(out["md5"])}
    return {}


def lineage_tags(params: Params, paths: Paths) -> dict[str, str]:
    """Tags for a run or a model version: git commit, data hashes, params hash."""
    tags: dict[str, str] = {TAG_PARAMS_HASH: params_hash(params)}
    commit = git_output(paths.root, "rev-parse", "HEAD")
    if commit:
        tags[TAG_GIT_COMMIT] = commit
        tags["mlflow.source.git.commit"] = commit
        dirty = git_output(paths.root, "status", "--porcelain", "--untracked-files=no")
        tags[TAG_GIT_DIRTY] = str(bool(dirty))
    for part in ("train", "valid", "test"):
        file = paths.split(part)
        if file.exists():
            tags[data_tag(part, "md5")] = file_md5(file)
            tags[data_tag(part, "path")] = str(file.relative_to(paths.root))
    tags.update(dvc_lock_lineage(paths))
    return tags
