"""BentoML's store of async tasks (``/predict_async``), kept private and in the project.

BentoML 1.4 keeps each task submitted to a ``@bentoml.task`` endpoint, the whole request
(every header, ``Authorization`` and ``Cookie`` included) and its result, in one SQLite
file: ``BENTOML_RESULT_STORE``, else ``$BENTOML_HOME/task_result.db`` (``~/bentoml``),
created with the default mode (0644) and kept 24 hours (``Sqlite3Store`` in
``_bentoml_impl/tasks/result.py``; the retention is a class attribute, not a setting).
The server process deletes and re-creates that file at each start; each worker then opens
it through the name ``Sqlite3Store`` of ``_bentoml_impl.server.app``.

:func:`install` runs in every process when the service module is imported, before the
store is created or opened, and changes three things:

* the file is ``<project root>/.bentoml/task_result.db`` (unless ``BENTOML_RESULT_STORE``
  is set), in a folder only this user may enter;
* the workers open :class:`PrivateTaskStore`, which makes the file 0600 before its first
  connection (SQLite gives its ``-wal`` and ``-shm`` files the database's mode), keeps of
  each request only its body and content type (all a retry needs: no other header, no
  query string), overwrites deleted rows, and drops results after an hour.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import _bentoml_impl.server.app as bentoml_server
from _bentoml_impl.tasks.result import Sqlite3Store
from _bentoml_impl.tasks.serde import JSONSerde

from cycleml.paths import Paths

__all__ = ["RETENTION_SECONDS", "PrivateTaskStore", "install", "store_path"]

RETENTION_SECONDS = 60 * 60
"""Results older than this are deleted (BentoML: a day). A client polls for its result
within seconds or minutes; the file is emptied at each start anyway."""

_STORE_ENV = "BENTOML_RESULT_STORE"
_KEPT_HEADERS = {b"content-type"}


class _BodyOnly(JSONSerde):  # type: ignore[misc]  # BentoML's internals are untyped
    """BentoML's JSON serialisation of a request, less what the client sent beside the
    body: credentials travel in headers (and sometimes in the query string)."""

    def get_scope(self, scope: dict[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = super().get_scope(scope)
        kept["headers"] = [(k, v) for k, v in kept.get("headers", []) if k in _KEPT_HEADERS]
        kept["query_string"] = b""
        return kept


class PrivateTaskStore(Sqlite3Store):  # type: ignore[misc]
    """BentoML's task store: mode 0600, no request headers, results kept an hour."""

    RESULT_RETENTION = RETENTION_SECONDS

    def __init__(self, db_file: str) -> None:
        super().__init__(db_file, serializer=_BodyOnly())
        self._file = Path(db_file)

    async def __aenter__(self) -> PrivateTaskStore:
        for suffix in ("", "-wal", "-shm"):  # before SQLite opens (and creates) them
            part = self._file.with_name(self._file.name + suffix)
            if part.exists():
                part.chmod(0o600)
        await super().__aenter__()
        await self._conn.execute("PRAGMA secure_delete=ON")
        return self


def store_path(paths: Paths) -> Path:
    """Where the service's task store lives: ``BENTOML_RESULT_STORE``, else in the project."""
    return Path(os.environ.get(_STORE_ENV) or paths.root / ".bentoml" / "task_result.db")


def install(paths: Paths) -> Path:
    """Put the task store in the project, private; return its path. Call before BentoML
    starts serving: at the service module's import, in every process."""
    path = store_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent == paths.root / ".bentoml":  # ours: only this user may enter it
        path.parent.chmod(0o700)
    os.environ[_STORE_ENV] = str(path)
    # the name BentoML's server opens the store by (AttributeError if it is gone): a
    # BentoML that opens it another way must not silently keep headers in a 0644 file
    if bentoml_server.Sqlite3Store not in (Sqlite3Store, PrivateTaskStore):
        raise RuntimeError("BentoML's task store changed: review cycleml.serve.tasks")
    bentoml_server.Sqlite3Store = PrivateTaskStore
    return path
