"""Real time: cycleml's service against `mlflow models serve`, the same registered model.

Both serve the project's ``@champion`` on 127.0.0.1 with one worker process each, started
side by side and measured in turns (cycleml, mlflow, cycleml, ...) with the same load
generator: one-record requests, sequential over one keep-alive connection (latency
p50/p99), then ``clients`` concurrent connections (throughput and errors). Before any
timing, both must answer 200 and agree on the predicted class.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from benchmarks.common import BIN, REPO, Size, env, median_of
from benchmarks.http import load
from benchmarks.load import tree_rss_mb
from cycleml.demo.harness import Service, free_port


def one_record(project: Path) -> dict[str, Any]:
    """A test-split record as a client sends it (JSON types, ISO dates, no target)."""
    test = pd.read_parquet(project / "data" / "split" / "test.parquet")
    schema = json.loads((project / "data" / "interim" / "schema.json").read_text())
    record: dict[str, Any] = json.loads(test.head(1).to_json(orient="records", date_format="iso"))[
        0
    ]
    inputs = [*schema["numeric"], *schema["categorical"]]
    inputs += [c for d in schema["derived"] for c in d["columns"] if c not in inputs]
    return {k: record[k] for k in dict.fromkeys(inputs)}


@contextmanager
def mlflow_serve(project: Path, name: str, timeout: float = 180) -> Iterator[tuple[str, int]]:
    """`mlflow models serve` of ``models:/<name>@champion`` from the project's store."""
    port = free_port()
    log = project / "logs" / "mlflow-serve.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{name}@champion",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
            ],
            cwd=project,
            env={**env(), "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "mlflow models serve did not start:\n" + log.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.5)
        yield url, process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def quiet(pids: Any, limit: float = 5.0, timeout: float = 30.0) -> None:
    """Wait until neither server is still busy (below ``limit`` % of a core over half a
    second): a server can work through its backlog for a while after wrk stops, and
    that would be counted against the other side."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = []
        for pid in pids:
            try:
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        for proc in procs:
            try:
                proc.cpu_percent(None)
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.5)
        busy = 0.0
        for proc in procs:
            try:
                busy += proc.cpu_percent(None)
            except psutil.NoSuchProcess:
                pass
        if busy < limit:
            return


def _agree(cycleml: str, mlflow: str, record: dict[str, Any]) -> dict[str, Any]:
    """Both answer the record with the same probabilities (the model is logged with
    ``predict_proba`` as its pyfunc method, so both do the same work)."""
    mine = httpx.post(cycleml, json={"records": [record]}, timeout=30)
    theirs = httpx.post(mlflow, json={"dataframe_records": [record]}, timeout=30)
    if mine.status_code != 200 or theirs.status_code != 200:
        raise RuntimeError(
            f"cycleml {mine.status_code} {mine.text[:300]}; "
            f"mlflow {theirs.status_code} {theirs.text[:300]}"
        )
    probabilities = list(mine.json()["predictions"][0]["probabilities"].values())
    answer = theirs.json()["predictions"][0]
    if len(answer) != len(probabilities) or any(
        abs(a - b) > 1e-6 for a, b in zip(answer, probabilities, strict=False)
    ):
        raise RuntimeError(f"the two servers disagree: cycleml {probabilities}, mlflow {answer}")
    return {"probabilities": probabilities}


def measure(project: Path, size: Size, model_name: str) -> dict[str, Any]:
    record = one_record(project)
    sides: dict[str, list[dict[str, Any]]] = {"cycleml": [], "mlflow": []}
    with Service.start(REPO, project) as service, mlflow_serve(project, model_name) as (mlf, pid):
        urls = {"cycleml": service.url + "/predict", "mlflow": mlf + "/invocations"}
        bodies = {
            "cycleml": json.dumps({"records": [record]}).encode(),
            "mlflow": json.dumps({"dataframe_records": [record]}).encode(),
        }
        pids = {"cycleml": service.process.pid, "mlflow": pid}
        _agree(urls["cycleml"], urls["mlflow"], record)
        for side in sides:  # warm-up: lazy imports, first-request caches
            load(urls[side], bodies[side], 1, 2)
        for _ in range(size.repeats):
            for side, results in sides.items():
                quiet(pids.values())
                one = load(urls[side], bodies[side], size.http_seconds, 1)
                quiet(pids.values())
                many = load(urls[side], bodies[side], size.http_seconds, size.clients)
                results.append(
                    {
                        "p50_ms": one["p50_ms"],
                        "p99_ms": one["p99_ms"],
                        "sequential_rps": one["requests_per_second"],
                        "concurrent_rps": many["requests_per_second"],
                        "concurrent_p99_ms": many["p99_ms"],
                        "errors": one["errors"] + many["errors"],
                        "requests": one["requests"] + many["requests"],
                        "rss_mb": tree_rss_mb(pids[side]),
                        "generator": many["generator"],
                    }
                )
    out = {side: median_of(results) for side, results in sides.items()}
    for side, results in sides.items():  # errors are summed, never a median
        out[side]["errors"] = sum(r["errors"] for r in results)
        out[side]["requests"] = sum(r["requests"] for r in results)
        out[side]["runs"] = results  # every run's figures, not only the medians
    out["clients"] = size.clients
    out["seconds_per_run"] = size.http_seconds
    out["throughput_ratio"] = out["cycleml"]["concurrent_rps"] / out["mlflow"]["concurrent_rps"]
    return out
