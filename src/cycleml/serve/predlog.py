"""The prediction log: every answer the service gives, and the labels that arrive later.

Rows are queued by the request handler and written by one background thread in batches,
so a slow or locked database never slows a prediction. A failed write keeps its rows and
retries; ``close()`` flushes what was acknowledged. SQLite (WAL mode) by default, any
SQLAlchemy URL in ``serving.prediction_log``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cycleml.model.tracking import store_setup_lock

__all__ = ["LogStats", "PredictionLog", "UnknownRequest"]

log = logging.getLogger(__name__)
_META = sa.MetaData()
PREDICTIONS = sa.Table(
    "predictions",
    _META,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(20), nullable=False, index=True),
    sa.Column("role", sa.String(10), nullable=False, default="served"),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("prediction", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
)
FEEDBACK = sa.Table(
    "feedback",
    _META,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
)


class UnknownRequest(KeyError):
    """Feedback for a request id the log has never seen."""


@dataclass
class LogStats:
    written: int = 0
    failed_writes: int = 0
    pending: int = 0


class PredictionLog:
    """A batched, background writer for predictions; synchronous feedback."""

    def __init__(self, url: str, flush_seconds: float = 0.2, batch_rows: int = 500) -> None:
        self._url = url
        self.engine = _engine(url)
        self._ready = False
        self._ensure_tables()  # a store that is down now is retried by the writer
        self.stats = LogStats()
        self._unwritten = 0  # acknowledged rows not yet in the database
        self._count = threading.Lock()
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._flush_seconds, self._batch_rows = flush_seconds, batch_rows
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def add(
        self,
        model_name: str,
        inputs: list[dict[str, Any]],
        answers: list[dict[str, Any]],
        role: str = "served",
    ) -> None:
        """Queue one row per answer; returns at once. ``role`` is ``served`` for answers
        the client got, ``shadow`` for a challenger's unreturned ones."""
        now = time.time()
        with self._count:
            self._unwritten += len(answers)
        for record, answer in zip(inputs, answers, strict=True):
            self._queue.put(
                {
                    "request_id": answer["request_id"],
                    "ts": now,
                    "model_name": model_name,
                    "model_version": str(answer["model_version"]),
                    "role": role,
                    "inputs": json.dumps(record, default=str),
                    "prediction": json.dumps(answer.get("prediction")),
                    "outputs": json.dumps(answer, default=str),
                }
            )

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        while not (self._stop.is_set() and self._queue.empty() and not pending):
            deadline = time.monotonic() + self._flush_seconds
            while len(pending) < self._batch_rows and time.monotonic() < deadline:
                try:
                    pending.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
            self.stats.pending = len(pending) + self._queue.qsize()
            if pending and self._write(pending):
                pending = []
            elif pending and self._stop.is_set():
                break  # the store is gone at shutdown: report, don't hang
        self.stats.pending = len(pending)

    def _ensure_tables(self, warn: bool = True) -> None:
        if self._ready:
            return
        try:
            # one process at a time: create_all checks, then creates, table by table
            with store_setup_lock(self._url):
                _META.create_all(self.engine)
        except sa.exc.SQLAlchemyError as err:
            # another process (a second service worker) may have created them meanwhile
            if not self._tables_exist():
                if warn:  # (the writer reports its own failed write instead)
                    log.warning(
                        "prediction log store unavailable (%s); predictions are still served",
                        err,
                    )
                return
        self._ready = True

    def _tables_exist(self) -> bool:
        try:
            names = set(sa.inspect(self.engine).get_table_names())
        except sa.exc.SQLAlchemyError:
            return False
        return {PREDICTIONS.name, FEEDBACK.name} <= names

    def _write(self, rows: list[dict[str, Any]]) -> bool:
        self._ensure_tables(warn=False)
        try:
            with self.engine.begin() as conn:
                conn.execute(PREDICTIONS.insert(), rows)
        except sa.exc.SQLAlchemyError as err:
            self.stats.failed_writes += 1
            self._ready = False  # the store may be back empty (a new file): create the tables
            log.warning("prediction log: %d rows not written yet (%s); retrying", len(rows), err)
            time.sleep(min(self._flush_seconds * 5, 2.0))
            return False
        self.stats.written += len(rows)
        with self._count:
            self._unwritten -= len(rows)
        return True

    def feedback(self, request_id: str, label: Any) -> None:
        """Record the true label of an earlier prediction (it may arrive days later)."""
        self.flush()
        with self.engine.begin() as conn:
            if not self._known(conn, request_id):
                # another worker may still hold it in its queue: give it one flush interval
                time.sleep(self._flush_seconds * 3)
                if not self._known(conn, request_id):
                    raise UnknownRequest(request_id)
            conn.execute(sa.delete(FEEDBACK).where(FEEDBACK.c.request_id == request_id))
            conn.execute(
                FEEDBACK.insert(),
                {"request_id": request_id, "ts": time.time(), "label": json.dumps(label)},
            )

    @staticmethod
    def _known(conn: sa.Connection, request_id: str) -> bool:
        query = sa.select(PREDICTIONS.c.request_id).where(PREDICTIONS.c.request_id == request_id)
        return conn.execute(query).first() is not None

    @property
    def unwritten(self) -> int:
        with self._count:
            return self._unwritten

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every acknowledged row is written (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while self.unwritten and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the writer after it has written every acknowledged row."""
        self._stop.set()
        self._thread.join(timeout)
        self.engine.dispose()


def _engine(url: str) -> sa.Engine:
    """The log's engine; for a SQLite file, a fresh connection for every write.

    A pooled SQLite connection keeps its file descriptor: if the file is moved away or
    deleted (and maybe replaced), it would go on "writing" into the moved or unlinked
    file, acknowledging rows that never reach the log's path. Opening the path per batch
    makes such a write fail instead, so its rows are kept and retried until the store is
    back. (A write already under way when the file goes can still land in the old file.)
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if parsed.database in (None, "", ":memory:") or "mode=memory" in url:
        engine = sa.create_engine(url, pool_pre_ping=True)  # the pool holds the database
    else:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
