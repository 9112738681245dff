"""MLflow set-up and lineage: which code, data and params made a run.

The tracking URI comes from ``MLFLOW_TRACKING_URI`` when set (team mode: a server or a
PostgreSQL URL), else from ``tracking.tracking_uri`` in params.yaml (``sqlite:///mlflow.db``,
resolved against the project root so every stage and ``mlflow ui`` see one store).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cycleml.config import Params, TrackingParams, params_hash
from cycleml.files import read_json
from cycleml.names import TAG_GIT_COMMIT, TAG_GIT_DIRTY, TAG_PARAMS_HASH, data_tag
from cycleml.paths import Paths

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "StoreError",
    "configure",
    "dvc_lock_lineage",
    "file_md5",
    "git_output",
    "lineage_tags",
    "redact",
    "store_error",
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


# a URL's password: from "scheme://user:" to the last "@" before a space (a password may
# hold "/" or "@" unescaped; masking too much is safe, masking too little is not)
_USERINFO_PASSWORD = re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@:\s]*:)\S*@")
# a query parameter whose name says it holds a secret (?password=, &sslpassword=, ?token=)
_SECRET_PARAMETER = re.compile(
    r"(?P<keep>[?&;][^=&#\s]*(?:pass|pwd|secret|token|key|auth|credential|sig)[^=&#\s]*=)"
    r"[^&#\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the secrets of every URL in it masked: ``user:***@`` and
    ``?password=***``. Store URIs (and the errors that repeat them) go through this before
    they are printed or logged: the URL itself often carries the store's credentials."""
    text = _USERINFO_PASSWORD.sub(r"\g<keep>***@", text)
    return _SECRET_PARAMETER.sub(r"\g<keep>***", text)


class StoreError(RuntimeError):
    """The MLflow store failed a request: unreachable, refused, broken. Told apart from
    "no such model or version", and worded without the store's secrets (MLflow's own
    errors repeat the URI, password included)."""


def store_error(uri: str, err: Exception, doing: str) -> StoreError:
    """A :class:`StoreError` for ``err``, raised by the store at ``uri`` while ``doing``."""
    cause = redact((str(err).strip().splitlines() or [type(err).__name__])[0])
    return StoreError(
        f"the MLflow store {redact(uri)} could not {doing} ({cause}); check "
        "MLFLOW_TRACKING_URI (or tracking.tracking_uri), that the store is up and its "
        "credentials"
    )


def configure(tracking: TrackingParams, paths: Paths) -> MlflowClient:
    """Point MLflow at the store and experiment; artifacts go under ``mlruns/`` by default."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(tracking, paths)
    mlflow.set_tracking_uri(uri)
    # the first client creates the schema of a new store, then the experiment: both
    # check-then-create, so processes starting together on one SQLite file take turns
    try:
        with store_setup_lock(uri):
            client = mlflow.MlflowClient(uri)
            if client.get_experiment_by_name(tracking.experiment) is None:
                location = paths.mlruns.as_uri() if uri.startswith("sqlite:") else None
                client.create_experiment(tracking.experiment, artifact_location=location)
            mlflow.set_experiment(tracking.experiment)
    except MlflowException as err:
        raise store_error(uri, err, f"set up the experiment {tracking.experiment!r}") from None
    return client


@contextmanager
def store_setup_lock(url: str, timeout: float = 120.0) -> Iterator[None]:
    """Hold an exclusive lock between processes while a SQLite store at ``url`` is set up.

    MLflow (alembic migrations) and Optuna (``create_all``, an alembic stamp) create the
    schema of a new SQLite file with check-then-create steps, so two processes opening the
    same new file at once fail: "duplicate column name: step", "table studies already
    exists", "UNIQUE constraint failed: alembic_version.version_num". With this lock one
    sets the store up while the others wait, then find it ready.

    The lock is an OS lock (``flock``, released when its holder exits or dies) on
    ``<database>.lock`` beside the file it guards: only who may write the store's folder
    can create it (a predictable name in the shared temp folder let any local user hold
    it and hang every command). It is opened without following a symlink, created 0600,
    and waited for at most ``timeout`` seconds; then ``TimeoutError`` names the file. A
    folder that does not exist or is not writable, other URLs, systems without ``fcntl``:
    no lock (the store's own set-up then reports what is wrong).
    """
    import errno
    import time

    prefix = "sqlite:///"
    database = url.removeprefix(prefix).split("?", 1)[0] if url.startswith(prefix) else ""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None  # type: ignore[assignment]
    if not database or database == ":memory:" or fcntl is None:
        yield
        return
    store = Path(database).resolve()
    lock = store.with_name(store.name + ".lock")
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(lock, flags, 0o600)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OSError(
                err.errno, f"{lock} is a symbolic link; remove it (cycleml creates the lock)"
            ) from None
        fd = -1  # no folder, or not writable: set up without the lock, as before
    if fd < 0:
        yield
        return
    try:
        deadline, pause = time.monotonic() + timeout, 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"waited {timeout:g} s for the store set-up lock {lock}: another "
                        "process holds it (`fuser -v` on the file shows which); stop it, or "
                        "wait for it to finish and run the command again"
                    ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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


def source_lineage(paths: Paths) -> dict[str, str]:
    """Which version of ``data.source`` ingest read, as it recorded it in
    reports/ingest.json: ``cycleml.data.source.md5`` (a file's, as in its ``.dvc`` file) or
    ``.fingerprint`` (a SQL or URL source's), with ``.kind`` and ``.path``."""
    try:
        found = dict(read_json(paths.report("ingest.json")).get("source") or {})
    except (OSError, ValueError, TypeError, AttributeError):  # absent or not ingest's
        return {}
    return {data_tag("source", str(k)): str(v) for k, v in found.items()}


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
    tags.update(source_lineage(paths))
    return tags
