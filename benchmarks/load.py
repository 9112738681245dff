"""Load on the HTTP service: concurrent clients for a while; failures, latency, memory.

    python benchmarks/load.py                          # `make load`: 60 s, 32 clients
    python benchmarks/load.py --seconds 10 --clients 8
    python benchmarks/load.py --url http://127.0.0.1:3000 --pid 12345   # a running service

Without ``--url`` a fresh small project is trained and served (127.0.0.1, a free port).
Each client sends one-record ``POST /predict`` requests back to back over keep-alive.
Reported: requests, failures (any non-200 or connection error), requests/s, latency
p50/p99, the service's resident memory (its whole process tree) before and after, and,
unless ``--no-shutdown``, a graceful shutdown under load: SIGTERM while clients are
sending, then every acknowledged answer's ``request_id`` is looked up in the prediction
log (none may be missing). Exit status 1 when a request failed or a row was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class LoadResult:
    seconds: float
    clients: int
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    """request_id of every answer the clients got (HTTP 200)."""

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000 if ordered else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "failed": self.failed,
            "failures": dict(self.failures),
            "requests_per_second": round(self.requests / self.seconds, 1),
            "p50_ms": round(self.percentile(0.5), 2),
            "p99_ms": round(self.percentile(0.99), 2),
        }


async def _client(
    url: str, body: bytes, stop: threading.Event, deadline: float, result: LoadResult
) -> None:
    import httpx

    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline and not stop.is_set():
            started = time.perf_counter()
            try:
                reply = await client.post("/predict", content=body, headers=headers)
            except httpx.HTTPError as err:
                result.requests += 1
                result.failures[type(err).__name__] += 1
                if stop.is_set():
                    return
                await asyncio.sleep(0.05)
                continue
            result.requests += 1
            result.latencies.append(time.perf_counter() - started)
            if reply.status_code == 200:
                result.acknowledged += [a["request_id"] for a in reply.json()["predictions"]]
            else:
                result.failures[f"HTTP {reply.status_code}"] += 1


def run_load(
    url: str,
    record: dict[str, Any],
    seconds: float,
    clients: int,
    stop: threading.Event | None = None,
) -> LoadResult:
    """``clients`` concurrent clients sending ``record`` for ``seconds`` (or until ``stop``)."""
    stop = stop or threading.Event()
    result = LoadResult(seconds=seconds, clients=clients)
    body = json.dumps({"records": [record]}).encode()

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_client(url, body, stop, deadline, result) for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    result.seconds = time.perf_counter() - started
    return result


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children, in MB."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def logged(db: Path, request_ids: list[str]) -> int:
    """How many of ``request_ids`` are rows of the prediction log."""
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TEMP TABLE wanted (request_id TEXT PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((r,) for r in request_ids))
        query = "SELECT COUNT(*) FROM predictions JOIN wanted USING (request_id)"
        return int(conn.execute(query).fetchone()[0])


def shutdown_under_load(
    service: Any, record: dict[str, Any], db: Path, clients: int, after: float = 3.0
) -> dict[str, Any]:
    """SIGTERM the service while ``clients`` send; count acknowledged rows in the log."""
    stop = threading.Event()
    holder: list[LoadResult] = []
    sender = threading.Thread(
        target=lambda: holder.append(run_load(service.url, record, after + 60, clients, stop))
    )
    sender.start()
    time.sleep(after)
    service.stop()  # SIGTERM to its process group, waits for the exit
    stop.set()
    sender.join()
    result = holder[0]
    unique = list(dict.fromkeys(result.acknowledged))
    found = logged(db, unique)
    return {
        "acknowledged": len(unique),
        "in_log": found,
        "lost": len(unique) - found,
        "exit_code": service.process.returncode,
    }


def _record(root: Path) -> dict[str, Any]:
    import pandas as pd

    test = pd.read_parquet(root / "data" / "split" / "test.parquet").head(1)
    records: list[dict[str, Any]] = json.loads(
        test.drop(columns=["churn"]).to_json(orient="records", date_format="iso")
    )
    return records[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--url", help="a running service (default: serve a fresh project)")
    parser.add_argument("--pid", type=int, help="the running service's PID (for its memory)")
    parser.add_argument("--no-shutdown", action="store_true", help="skip the SIGTERM test")
    args = parser.parse_args()
    if args.url:
        root = Path.cwd()
        result = run_load(args.url, _record(root), args.seconds, args.clients)
        print(json.dumps(result.summary(), indent=2))
        return 1 if result.failed else 0

    from cycleml.demo.harness import Service, demo_project

    with tempfile.TemporaryDirectory(prefix="cycleml-load-") as tmp:
        root = Path(tmp)
        demo_project(REPO, root)
        record = _record(root)
        with Service.start(REPO, root) as service:
            run_load(service.url, record, 3, args.clients)  # warm-up
            before = tree_rss_mb(service.process.pid)
            result = run_load(service.url, record, args.seconds, args.clients)
            after = tree_rss_mb(service.process.pid)
            report: dict[str, Any] = {
                **result.summary(),
                "rss_mb_before": round(before, 1),
                "rss_mb_after": round(after, 1),
            }
            if not args.no_shutdown:
                report["shutdown"] = shutdown_under_load(
                    service, record, root / "predictions.db", args.clients
                )
        print(json.dumps(report, indent=2))
        lost = report.get("shutdown", {}).get("lost", 0)
        return 1 if result.failed or lost else 0


if __name__ == "__main__":
    sys.exit(main())
