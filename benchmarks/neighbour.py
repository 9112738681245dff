"""A busy neighbour: the realtime and batch figures again, with one CPU-bound process beside.

Production machines are rarely idle. With one other process busy on one of the two cores,
a served worker whose scorer leaves a thread spinning loses half of the only core left
(issue 20). Measured in one run, on the same model, idle and then with the neighbour:

* cycleml's service (one worker) against `mlflow models serve` (one worker): one record
  sequential (p50, p99), ``clients`` concurrent connections (throughput, p99), and the
  server's CPU per 1,000 sequential requests (process tree, every thread), with, for
  cycleml, how much of it its event loop thread spent (1.0: nothing else burned CPU);
* cycleml with ``serving.workers: 2`` against one worker;
* ``cycleml predict`` on the batch file (rows/s), idle and with the neighbour.

The neighbour is ``python -c "while True: pass"``, started for each measurement and
stopped after it; the operating system places it, as it would any other process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import REPO, Size, median, median_of
from benchmarks.http import load
from benchmarks.realtime import _agree, mlflow_serve, one_record, quiet
from benchmarks.scoring import batch_file, predict_rate
from cycleml.demo.harness import Service

CONDITIONS = ("idle", "neighbour")


@contextmanager
def busy_neighbour() -> Iterator[int]:
    """One CPU-bound process for the length of the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def condition(name: str) -> Any:
    return busy_neighbour() if name == "neighbour" else nullcontext()


def _ticks(pid: int, tid: int) -> int:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(every thread of the process tree under ``pid``, the main threads of its workers):
    CPU ticks from /proc. A worker's main thread runs its event loop."""
    import psutil

    total = loops = 0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{process.pid}/task")]
            ticks = {tid: _ticks(process.pid, tid) for tid in tids}
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(ticks.values())
        if "worker" in " ".join(process.cmdline()):
            loops += ticks.get(process.pid, 0)
    return total, loops


def http_run(url: str, body: bytes, pid: int, size: Size) -> dict[str, Any]:
    """One record sequential (with the server's CPU per 1,000 requests), then ``clients``."""
    tick = os.sysconf("SC_CLK_TCK")
    quiet([pid])
    before = cpu_ticks(pid)
    one = load(url, body, size.http_seconds, 1)
    after = cpu_ticks(pid)
    quiet([pid])
    many = load(url, body, size.http_seconds, size.clients)
    total, loops = after[0] - before[0], after[1] - before[1]
    return {
        "p50_ms": one["p50_ms"],
        "p99_ms": one["p99_ms"],
        "sequential_rps": one["requests_per_second"],
        "cpu_s_per_1000": total / tick / max(one["requests"], 1) * 1000,
        "cpu_per_loop": total / loops if loops else None,
        "concurrent_rps": many["requests_per_second"],
        "concurrent_p99_ms": many["p99_ms"],
        "errors": one["errors"] + many["errors"],
    }


@contextmanager
def workers(project: Path, count: int) -> Iterator[None]:
    """The project's ``serving.workers`` set to ``count`` for the block."""
    params = project / "params.yaml"
    original = params.read_text(encoding="utf-8")
    raw = yaml.safe_load(original)
    raw["serving"]["workers"] = count
    params.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    try:
        yield
    finally:
        params.write_text(original, encoding="utf-8")


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = median_of([{k: v for k, v in r.items() if v is not None} for r in runs])
    out["errors"] = sum(r["errors"] for r in runs)
    return out


def measure(project: Path, size: Size, model_name: str, folder: Path) -> dict[str, Any]:
    record = one_record(project)
    bodies = {
        "cycleml": json.dumps({"records": [record]}).encode(),
        "mlflow": json.dumps({"dataframe_records": [record]}).encode(),
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        side: {c: [] for c in CONDITIONS} for side in ("cycleml", "mlflow", "cycleml_2_workers")
    }
    with Service.start(REPO, project) as service, mlflow_serve(project, model_name) as (mlf, pid):
        urls = {"cycleml": service.url + "/predict", "mlflow": mlf + "/invocations"}
        pids = {"cycleml": service.process.pid, "mlflow": pid}
        _agree(urls["cycleml"], urls["mlflow"], record)
        for side in urls:  # warm-up: lazy imports, first-request caches
            load(urls[side], bodies[side], 1, 2)
        for name in CONDITIONS:
            for _ in range(size.repeats):
                for side in urls:
                    quiet(pids.values())
                    with condition(name):
                        found = http_run(urls[side], bodies[side], pids[side], size)
                    runs[side][name].append(found)
    with workers(project, 2), Service.start(REPO, project) as two:
        load(two.url + "/predict", bodies["cycleml"], 1, 2)
        for name in CONDITIONS:
            for _ in range(size.repeats):
                with condition(name):
                    runs["cycleml_2_workers"][name].append(
                        http_run(two.url + "/predict", bodies["cycleml"], two.process.pid, size)
                    )
    out: dict[str, Any] = {
        side: {name: _summary(results) for name, results in by_condition.items()}
        for side, by_condition in runs.items()
    }
    source = batch_file(folder, size)
    rates: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    for _ in range(size.repeats):
        for name in CONDITIONS:
            with condition(name):
                rates[name].append(predict_rate(project, source, folder / "out.parquet"))
    out["batch"] = {name: {"rows_per_s": median(r)} for name, r in rates.items()}
    out["batch"]["rows"] = size.batch_rows
    out["clients"] = size.clients
    out["throughput_ratio"] = {
        name: out["cycleml"][name]["concurrent_rps"] / out["mlflow"][name]["concurrent_rps"]
        for name in CONDITIONS
    }
    return out
