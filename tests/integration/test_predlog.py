"""The prediction log against real SQLite files: batching, shutdown, an absent store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cycleml.serve.predlog import PredictionLog, UnknownRequest

pytestmark = pytest.mark.integration


def answers(n: int, start: int = 0) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    inputs = [{"x": float(i)} for i in range(start, start + n)]
    outs = [
        {"request_id": f"r{i}", "prediction": "Yes", "model_version": "3"}
        for i in range(start, start + n)
    ]
    return inputs, outs


def count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM predictions").fetchone()[0])


def test_every_acknowledged_row_is_written_by_close(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05, batch_rows=100)
    for start in range(0, 2500, 250):
        plog.add("m", *answers(250, start))
    plog.close()
    assert count(db) == 2500 and plog.stats.written == 2500
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_feedback_needs_a_known_request(tmp_path: Path) -> None:
    plog = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", flush_seconds=0.05)
    plog.add("m", *answers(3))
    plog.feedback("r1", "No")
    with pytest.raises(UnknownRequest):
        plog.feedback("zzz", "No")
    plog.close()


def test_an_unavailable_store_loses_nothing_once_it_is_back(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    db = folder / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05)  # the folder does not exist
    plog.add("m", *answers(40))  # accepted: the caller is never blocked
    import time

    deadline = time.monotonic() + 10
    while plog.stats.failed_writes == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert plog.stats.failed_writes > 0 and plog.unwritten == 40
    folder.mkdir()  # the store comes back
    plog.flush(timeout=15)
    plog.close()
    assert count(db) == 40
