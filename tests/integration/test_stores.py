"""The default SQLite stores under stress, with real files and real processes.

* the prediction log: a database locked by another writer, or gone (its folder moved away,
  its file replaced) while the service keeps answering — every acknowledged row is
  written once the store is back, and ``add`` never waits for it;
* concurrent writers — Optuna trial threads and tune processes on one study, MLflow runs
  from several processes, prediction-log threads and processes — with no "database is
  locked" failure.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from cycleml.model.tracking import tracking_uri
from cycleml.serve.predlog import PredictionLog
from cycleml.stages import tune
from cycleml.tuning.study import storage_url
from tests.conftest import REPO, Project, small_params

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
LOCKED = "database is locked"
# an answer must never wait for the log: far below any request's latency budget
ADD_BUDGET_SECONDS = 0.05
# the writer's SQLite busy timeout is 5 s: hold the lock past it so a write really fails
MIN_LOCK_SECONDS = 6.0
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# small and quick, as in test_tune_stage: tens of rounds, one thread per fit
SPACE = {
    "n_estimators": {"type": "int", "low": 20, "high": 60},
    "max_depth": {"type": "int", "low": 2, "high": 5},
    "learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True},
}


# --- helpers -------------------------------------------------------------------------


def batch(prefix: str, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` inputs and answers with request ids ``<prefix>-0`` … ``<prefix>-<n-1>``."""
    inputs = [{"x": float(i)} for i in range(n)]
    outs = [
        {"request_id": f"{prefix}-{i}", "prediction": "Yes", "model_version": "1"} for i in range(n)
    ]
    return inputs, outs


def stored_ids(db: Path) -> list[str]:
    """Every request id in the log file, duplicates included (empty if there is none)."""
    if not db.is_file():
        return []
    with closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT request_id FROM predictions")]


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Server:
    """Calls ``add`` like the service's request handlers and times every call."""

    def __init__(self, plog: PredictionLog) -> None:
        self.plog = plog
        self.acknowledged: list[str] = []
        self.slowest = 0.0
        self.calls = 0

    def answer(self, prefix: str, rows: int = 3) -> None:
        inputs, outs = batch(prefix, rows)
        start = time.perf_counter()
        self.plog.add("m", inputs, outs)
        self.slowest = max(self.slowest, time.perf_counter() - start)
        self.calls += 1
        self.acknowledged += [str(o["request_id"]) for o in outs]

    def keep_answering(self, name: str, until: Callable[[], bool]) -> None:
        """Answer from another thread, as a request handler would, until ``until()``."""

        def loop() -> None:
            n = 0
            while not until():
                self.answer(f"{name}{n}")
                n += 1
                time.sleep(0.01)

        thread = threading.Thread(target=loop, name=f"requests-{name}")
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the request thread never finished"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment for a child process: no MLFLOW_*, the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def start_together(
    commands: list[list[str]], cwd: Path, go: Path, env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``commands`` (scripts using ``_BARRIER``) so that they reach the store at the same
    moment: each child announces ``<go>.ready-<i>`` in ``barrier()`` and waits for ``go``,
    made once all are ready."""
    procs = [
        subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**env, "STORES_GO": str(go), "STORES_WORKER": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, cmd in enumerate(commands)
    ]
    ready = [go.with_name(f"{go.name}.ready-{i}") for i in range(len(commands))]
    try:
        assert wait_for(lambda: all(r.exists() for r in ready), 90), "a worker never started"
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return [
        subprocess.CompletedProcess(cmd, p.returncode, out, err)
        for cmd, p, (out, err) in zip(commands, procs, outs, strict=True)
    ]


# Prepended to every child script: ``barrier()`` announces the child ready and waits for
# the common start, so that all children open the (new) store at the same moment.
_BARRIER = textwrap.dedent(
    """
    import os, time
    from pathlib import Path
    WORKER = int(os.environ["STORES_WORKER"])

    def barrier():
        go = Path(os.environ["STORES_GO"])
        go.with_name(f"{go.name}.ready-{WORKER}").touch()
        while not go.exists():
            time.sleep(0.002)
    """
)


# --- 1. the prediction log: locked, gone, back --------------------------------------


def test_a_locked_log_still_serves_and_writes_every_row_once_after_release(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "predictions.db"
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05, batch_rows=50)
    server = Server(plog)
    server.answer("before")
    plog.flush()
    assert stored_ids(db) == server.acknowledged  # the log works before the lock

    locker = sqlite3.connect(db, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        locked_at = time.monotonic()
        # requests keep coming until the writer has failed at least once (its 5 s busy
        # timeout ran out) and the lock has lasted MIN_LOCK_SECONDS
        server.keep_answering(
            "locked",
            until=lambda: (
                (plog.stats.failed_writes > 0 and time.monotonic() - locked_at > MIN_LOCK_SECONDS)
                or time.monotonic() - locked_at > 30
            ),
        )
        assert plog.stats.failed_writes > 0, "no write failed while the database was locked"
        # nothing got through the lock: the rows are held, not dropped
        seen = locker.execute("SELECT count(*) FROM predictions").fetchone()[0]
        assert seen == 3  # the "before" answer
        assert plog.unwritten == len(server.acknowledged) - 3
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    server.answer("after")
    plog.flush(timeout=20)
    assert plog.unwritten == 0
    plog.close()

    ids = stored_ids(db)
    assert len(ids) == len(set(ids)) == len(server.acknowledged)  # each row exactly once
    assert set(ids) == set(server.acknowledged)
    assert plog.stats.written == len(server.acknowledged)
    # predictions were still served: no add waited for the locked database
    assert server.calls > 50
    assert server.slowest < ADD_BUDGET_SECONDS, f"an add took {server.slowest:.3f} s"
    # and the retries were for the lock, said in the log
    warnings = [r.getMessage() for r in caplog.records if r.name == "cycleml.serve.predlog"]
    assert any("retrying" in w and LOCKED in w for w in warnings)


def _move_folder_away(db: Path) -> Callable[[], None]:
    """The log's folder disappears (renamed away); "back" renames it back, file and all."""
    away = db.parent.with_name(db.parent.name + "-away")
    db.parent.rename(away)
    return lambda: away.rename(db.parent)


def _replace_file_by_a_folder(db: Path) -> Callable[[], None]:
    """The log file is deleted and a folder takes its path; "back" frees the path, so the
    store is a fresh, empty database."""
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.mkdir()
    return db.rmdir


@pytest.mark.parametrize(
    ("break_store", "rows_kept_from_before"),
    [(_move_folder_away, True), (_replace_file_by_a_folder, False)],
    ids=["folder-moved-away", "file-replaced"],
)
def test_a_log_that_is_gone_keeps_serving_and_loses_no_row_once_it_is_back(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    break_store: Callable[[Path], Callable[[], None]],
    rows_kept_from_before: bool,
) -> None:
    db = tmp_path / "store" / "predictions.db"
    db.parent.mkdir()
    plog = PredictionLog(f"sqlite:///{db}", flush_seconds=0.05, batch_rows=50)
    server = Server(plog)
    for n in range(5):
        server.answer(f"before{n}")
    plog.flush()
    before = list(server.acknowledged)
    assert plog.unwritten == 0 and sorted(stored_ids(db)) == sorted(before)

    back = break_store(db)
    gone_at = time.monotonic()
    server.keep_answering(
        "gone",
        until=lambda: (
            (plog.stats.failed_writes > 0 and time.monotonic() - gone_at > 1.0)
            or time.monotonic() - gone_at > 15
        ),
    )
    # the writer noticed: it failed, and kept every row acknowledged since
    assert plog.stats.failed_writes > 0, "no write failed while the store was gone"
    assert plog.unwritten == len(server.acknowledged) - len(before)

    back()
    for n in range(5):
        server.answer(f"back{n}")
    plog.flush(timeout=20)
    assert plog.unwritten == 0
    plog.close()

    ids = stored_ids(db)
    expected = server.acknowledged[0 if rows_kept_from_before else len(before) :]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == set(expected)
    assert plog.stats.written == len(server.acknowledged)
    assert server.slowest < ADD_BUDGET_SECONDS, f"an add took {server.slowest:.3f} s"
    assert not [r for r in caplog.records if LOCKED in r.getMessage()]


# --- 2. concurrent writers: Optuna, MLflow, the prediction log ------------------------


def tune_raw(**tune_block: Any) -> dict[str, Any]:
    raw = small_params(rows=1200, train__xgboost__n_jobs=1)
    raw["tune"].update({"enabled": True, "search_space": SPACE, "pruning": False, **tune_block})
    return raw


def stored_trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def runs(client: MlflowClient, experiment: str, query: str) -> list[Any]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    return list(client.search_runs([found.experiment_id], query, max_results=1000))


def test_tune_workers_and_tune_processes_share_one_sqlite_study(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    # two workers of one `tune` (tune.n_jobs: 2: a second process), on the default optuna.db
    params = project.write_params(tune_raw(n_trials=6, n_jobs=2))
    project.run_stages(params, "ingest", "validate", "split", "frame")
    caplog.set_level(logging.WARNING)
    result = tune.run(params, project.paths)

    assert result.ran == 6 and result.complete == 6  # pruning off: every trial completes
    url = storage_url(params.tune.storage, project.paths)
    trials = stored_trials(url, result.study)
    assert sorted(t.number for t in trials) == list(range(6))
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    client = MlflowClient(tracking_uri(params.tracking, project.paths))
    experiment = params.tracking.experiment
    nested = runs(client, experiment, f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(nested) == 6 and {r.info.status for r in nested} == {"FINISHED"}
    assert not [r for r in caplog.records if LOCKED in r.getMessage()]

    # two `cycleml tune` processes, started together on a fresh storage file: both create
    # the schema and the study, then share the trials (6 in total, not 6 each), while both
    # log their runs to the same mlflow.db
    shared = tune_raw(n_trials=6, n_jobs=1, storage="sqlite:///optuna-shared.db")
    (project.root / "workers.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))
    script = _BARRIER + textwrap.dedent(
        """
        from cycleml.cli.app import main
        from cycleml.tuning import search

        open_study = search.open_study

        def at_the_same_moment(*args, **kwargs):
            barrier()  # both workers open the new storage file together
            return open_study(*args, **kwargs)

        search.open_study = at_the_same_moment
        main(["tune", "--params", "workers.yaml"])
        """
    )
    done = start_together(
        [[sys.executable, "-c", script]] * 2,
        project.root,
        project.root / "go-tune",
        clean_env(CYCLEML_ROOT=str(project.root)),
    )
    for proc in done:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert LOCKED not in proc.stderr + proc.stdout
    shared_url = storage_url("sqlite:///optuna-shared.db", project.paths)
    trials = stored_trials(shared_url, result.study)  # same inputs: same study name
    states = [t.state for t in trials]
    # each worker stops once the study has 6 finished trials; one more may be in flight
    assert 6 <= len(states) <= 7 and set(states) == {TrialState.COMPLETE}, states
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    # both workers ran trials of the one study, each logging its own into mlflow.db
    workers = runs(client, experiment, "attributes.run_name = 'tune'")
    workers = [r for r in workers if r.info.run_id != result.run_id]
    assert len(workers) == 2 and {r.info.status for r in workers} == {"FINISHED"}
    ran = [
        runs(client, experiment, f"tags.mlflow.parentRunId = '{r.info.run_id}'") for r in workers
    ]
    assert all(len(mine) >= 1 for mine in ran), [len(mine) for mine in ran]
    numbers = sorted(int(r.data.tags["optuna.trial_number"]) for mine in ran for r in mine)
    assert numbers == sorted(t.number for t in trials)  # every trial once, by one worker


_MLFLOW_WORKER = _BARRIER + textwrap.dedent(
    """
    import sys
    import mlflow
    from cycleml.config import TrackingParams
    from cycleml.paths import project_paths
    from cycleml.model.tracking import configure

    RUNS, STEPS = int(sys.argv[1]), int(sys.argv[2])
    barrier()
    configure(TrackingParams(experiment="stores"), project_paths(Path.cwd()))
    for run in range(RUNS):
        with mlflow.start_run(run_name=f"w{WORKER}-r{run}"):
            mlflow.log_params({"worker": WORKER, "run": run})
            for step in range(STEPS):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.set_tag("worker", str(WORKER))
    print("logged", RUNS)
    """
)


def test_mlflow_runs_from_several_processes_at_once_into_one_sqlite_store(
    tmp_path: Path,
) -> None:
    workers, per_worker, steps = 3, 6, 8
    done = start_together(
        [[sys.executable, "-c", _MLFLOW_WORKER, str(per_worker), str(steps)]] * workers,
        tmp_path,
        tmp_path / "go-mlflow",
        clean_env(),
    )
    for proc in done:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert LOCKED not in proc.stderr + proc.stdout
        assert f"logged {per_worker}" in proc.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = [e for e in client.search_experiments() if e.name == "stores"]
    assert len(experiments) == 1  # created once, though all started on an empty store
    found = client.search_runs([experiments[0].experiment_id], max_results=1000)
    names = sorted(r.info.run_name for r in found)
    assert names == sorted(f"w{w}-r{r}" for w in range(workers) for r in range(per_worker))
    for r in found:
        assert r.info.status == "FINISHED"
        assert r.data.params == {"worker": r.data.tags["worker"], "run": r.info.run_name[4:]}
        history = client.get_metric_history(r.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(steps))


_LOG_WORKER = _BARRIER + textwrap.dedent(
    """
    import logging, sys, threading
    from cycleml.serve.predlog import PredictionLog

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    THREADS, CALLS, ROWS = (int(a) for a in sys.argv[2:5])
    barrier()
    plog = PredictionLog(sys.argv[1], flush_seconds=0.02, batch_rows=40)

    def handler(t):
        for call in range(CALLS):
            ids = [f"p{WORKER}-t{t}-c{call}-{i}" for i in range(ROWS)]
            plog.add("m", [{"x": i} for i in range(ROWS)],
                     [{"request_id": r, "prediction": 1, "model_version": "1"} for r in ids])
            time.sleep(0.001)

    threads = [threading.Thread(target=handler, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    plog.flush(timeout=60)
    plog.close()
    print("written", plog.stats.written, "failed", plog.stats.failed_writes,
          "unwritten", plog.unwritten)
    """
)


def test_log_threads_and_processes_write_one_predictions_db_without_locking(
    tmp_path: Path,
) -> None:
    db = tmp_path / "predictions.db"
    processes, threads, calls, rows = 2, 4, 60, 3
    done = start_together(
        [
            [sys.executable, "-c", _LOG_WORKER, f"sqlite:///{db}"]
            + [str(threads), str(calls), str(rows)]
        ]
        * processes,
        tmp_path,
        tmp_path / "go-log",
        clean_env(),
    )
    per_process = threads * calls * rows
    for proc in done:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert LOCKED not in proc.stderr + proc.stdout
        # not one write had to be retried: writers waited for each other instead
        assert f"written {per_process} failed 0 unwritten 0" in proc.stdout, proc.stderr[-3000:]
        assert "WARNING" not in proc.stderr, proc.stderr[-3000:]
    ids = stored_ids(db)
    assert len(ids) == len(set(ids)) == processes * per_process
    expected = {
        f"p{p}-t{t}-c{c}-{i}"
        for p in range(processes)
        for t in range(threads)
        for c in range(calls)
        for i in range(rows)
    }
    assert set(ids) == expected


def test_the_children_use_this_checkout() -> None:
    # the worker scripts import cycleml from the venv: it must be this repository's code
    done = subprocess.run(
        [sys.executable, "-c", "import cycleml, sys; sys.stdout.write(cycleml.__file__)"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO.parent,
    )
    assert Path(done.stdout).resolve().is_relative_to(REPO)
