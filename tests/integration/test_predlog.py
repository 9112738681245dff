"""The prediction log against real SQLite files: batching, shutdown, an absent store,
feedback that never waits for the backlog, the crash journal, the backlog cap, typed rows
and the store's set-up lock."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from cycleml.model.tracking import store_setup_lock
from cycleml.serve.predlog import LabelConflict, PredictionLog, UnknownRequest

pytestmark = pytest.mark.integration


def answers(n: int, start: int = 0) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    inputs = [{"x": float(i)} for i in range(start, start + n)]
    outs = [
        {"request_id": f"r{i}", "prediction": "Yes", "model_version": "3"}
        for i in range(start, start + n)
    ]
    return inputs, outs


def count(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM predictions").fetchone()[0])


def ids(db: Path) -> set[str]:
    with closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT request_id FROM predictions")}


def labels(db: Path) -> dict[str, object]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT request_id, label FROM feedback").fetchall()
    return {request_id: json.loads(label) for request_id, label in rows}


def journal(db: Path) -> list[Path]:
    folder = db.with_name(db.name + ".answers")
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_every_acknowledged_row_is_written_by_close(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05, batch_rows=100)
    for start in range(0, 2500, 250):
        plog.add("m", *answers(250, start))
    plog.close()
    assert count(db) == 2500 and plog.stats.written == 2500
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal(db) == []  # everything written: the crash journal is gone


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
    deadline = time.monotonic() + 10
    while plog.stats.failed_writes == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert plog.stats.failed_writes > 0 and plog.unwritten == 40
    folder.mkdir()  # the store comes back
    plog.flush(timeout=15)
    plog.close()
    assert count(db) == 40


# --- feedback: never the backlog, one wait, all or nothing, final ---------------------


def test_feedback_for_a_queued_answer_does_not_wait_for_the_backlog(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05, batch_rows=50)
    for start in range(0, 20_000, 500):
        plog.add("m", *answers(500, start))
    plog.feedback("r19999", "Yes")  # the newest answer: known from memory
    backlog = plog.unwritten  # (a time limit here would fail on a busy machine, not a bug)
    plog.close()
    assert backlog > 5000, "feedback waited for the whole backlog"
    assert labels(db) == {"r19999": "Yes"}


def test_unknown_ids_cost_one_short_wait_per_request_and_record_nothing(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}")  # the service's default flush interval
    plog.add("m", *answers(3))
    items = [("r1", "Yes"), *((f"made-up-{i}", "No") for i in range(30)), ("r2", "No")]
    started = time.monotonic()
    with pytest.raises(UnknownRequest) as raised:
        plog.record_labels(items)
    took = time.monotonic() - started
    plog.close()
    assert raised.value.positions == list(range(1, 31))
    assert took < 6, f"30 unknown ids took {took:.2f} s"  # before: 0.6 s each, 18 s
    assert labels(db) == {}  # all or nothing: r1 and r2 were not recorded either


def test_another_workers_queued_answer_is_found_within_the_one_wait(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    first, second = PredictionLog(url), PredictionLog(url)  # two service workers
    first.add("m", *answers(1))
    second.record_labels([("r0", "Yes")])  # r0 is only in the first worker's queue
    first.close()
    second.close()
    assert labels(tmp_path / "log.db") == {"r0": "Yes"}


def test_a_label_is_final_and_a_repeat_is_harmless(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05)
    plog.add("m", *answers(4))
    plog.record_labels([("r0", "Yes"), ("r1", 12.5)])
    plog.record_labels([("r0", "Yes"), ("r1", 12.5)])  # a retried request
    with pytest.raises(LabelConflict) as raised:
        plog.record_labels([("r2", "No"), ("r0", "No")])
    assert raised.value.positions == [1]
    with pytest.raises(LabelConflict) as raised:
        plog.record_labels([("r3", "No"), ("r3", "Yes")])  # two labels in one request
    assert raised.value.positions == [1]
    plog.close()
    assert labels(db) == {"r0": "Yes", "r1": 12.5}  # r2 and r3: nothing recorded


def test_concurrent_labels_for_one_id_leave_exactly_one(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05)
    plog.add("m", *answers(1))
    plog.flush()
    outcomes: list[str] = []

    def send(label: str) -> None:
        try:
            plog.record_labels([("r0", label)])
            outcomes.append(label)
        except LabelConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=send, args=("Yes" if i % 2 else "No",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    plog.close()
    stored = labels(db)["r0"]
    assert len(outcomes) == 8 and set(outcomes) == {stored, "conflict"}


# --- the rows: typed as the request was validated -------------------------------------


def test_rows_keep_numbers_as_numbers_and_datetimes_as_iso_text(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05)
    record = {"signed": dt.datetime(2024, 5, 6, 7, 8, 9), "x": 1.5, "n": 3, "gap": None}
    answer = {"request_id": "r0", "prediction": 2.5, "model_version": "1"}
    plog.add("m", [record], [answer])
    plog.close()
    with closing(sqlite3.connect(db)) as conn:
        inputs, prediction = conn.execute("SELECT inputs, prediction FROM predictions").fetchone()
    assert json.loads(inputs) == {"signed": "2024-05-06T07:08:09", "x": 1.5, "n": 3, "gap": None}
    assert json.loads(prediction) == 2.5


# --- the backlog cap ------------------------------------------------------------------


def test_the_backlog_is_capped_and_newer_answers_are_dropped_counted_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "not-yet"
    db = folder / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05, max_backlog=100)
    with caplog.at_level(logging.WARNING, logger="cycleml.serve.predlog"):
        for start in range(0, 250, 10):
            plog.add("m", *answers(10, start))
        assert plog.unwritten == 100 and plog.stats.dropped == 150
        assert any("dropped" in r.getMessage() for r in caplog.records)  # when it started
        folder.mkdir()
        plog.flush(timeout=15)
        plog.close()
    # and in all, once the backlog is below the cap again
    assert any("150 answer(s)" in r.getMessage() for r in caplog.records)
    assert ids(db) == {f"r{i}" for i in range(100)}  # the oldest were kept


# --- the crash journal ----------------------------------------------------------------

_ANSWERING = textwrap.dedent(
    """
    import sys, time
    from cycleml.serve.predlog import PredictionLog

    # the writer waits an hour: nothing reaches the database before the kill
    plog = PredictionLog(sys.argv[1], flush_seconds=3600)
    for i in range(int(sys.argv[2])):
        plog.add("m", [{"x": float(i)}],
                 [{"request_id": f"k{i}", "prediction": "Yes", "model_version": "1"}])
    print("answered", flush=True)
    time.sleep(600)
    """
)


def test_answers_acknowledged_before_a_kill_9_reach_the_log_at_the_next_start(
    tmp_path: Path,
) -> None:
    db = tmp_path / "log.db"
    url = f"sqlite:///{db}"
    worker = subprocess.Popen(
        [sys.executable, "-c", _ANSWERING, url, "300"], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None and worker.stdout.readline().strip() == "answered"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    worker.stdout.close()
    segments = journal(db)
    assert segments and all(stat.S_IMODE(s.stat().st_mode) == 0o600 for s in segments)
    assert stat.S_IMODE(segments[0].parent.stat().st_mode) == 0o700
    assert count(db) == 0  # the killed worker wrote nothing

    restarted = PredictionLog(url, flush_seconds=0.05)
    deadline = time.monotonic() + 15
    while restarted.stats.replayed < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    restarted.close()
    assert ids(db) == {f"k{i}" for i in range(300)}
    assert restarted.stats.replayed == 300 and journal(db) == []


def test_a_live_logs_journal_is_never_replayed_by_another(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    url = f"sqlite:///{db}"
    live = PredictionLog(url, flush_seconds=2)  # holds its rows, unwritten, for 2 s
    live.add("m", *answers(20))
    other = PredictionLog(url, flush_seconds=0.05)
    time.sleep(0.3)
    other.close()
    assert other.stats.replayed == 0 and count(db) == 0
    live.close()
    assert count(db) == 20 and live.stats.written == 20


def test_the_journal_does_not_grow_while_rows_are_written(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.02, batch_rows=50)
    for start in range(0, 3000, 30):
        plog.add("m", *answers(30, start))
        time.sleep(0.002)
    plog.flush()
    time.sleep(0.2)  # a writer cycle after the last write: the written segments are gone
    left = journal(db)
    size = sum(s.stat().st_size for s in left)
    plog.close()
    assert len(left) <= 1 and size < 50_000
    assert count(db) == 3000 and journal(db) == []


# --- the store's set-up lock ----------------------------------------------------------

_HOLD = "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
_HOLD += "print('held', flush=True); time.sleep(120)"


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _held(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_the_setup_lock_is_private_beside_its_store_and_a_holder_times_out(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    lock = tmp_path / "store.db.lock"
    with store_setup_lock(url):
        assert lock.is_file() and stat.S_IMODE(lock.stat().st_mode) == 0o600
    holder = _held(lock)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=str(lock)), store_setup_lock(url, timeout=0.5):
            pass
        assert time.monotonic() - started < 5
    finally:
        stop(holder)


def test_a_lock_in_the_temp_folder_blocks_nothing(tmp_path: Path) -> None:
    """Another local user could create and hold the old, predictable lock in /tmp."""
    db = tmp_path / "store.db"
    key = hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:16]
    holder = _held(Path(tempfile.gettempdir()) / f"cycleml-store-{key}.lock")
    try:
        with store_setup_lock(f"sqlite:///{db}", timeout=2):
            pass
    finally:
        stop(holder)


def test_a_symlink_in_place_of_the_lock_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "store.db.lock").symlink_to(target)
    with (
        pytest.raises(OSError, match="store.db.lock"),
        store_setup_lock(f"sqlite:///{tmp_path / 'store.db'}"),
    ):
        pass
    assert not target.exists()
