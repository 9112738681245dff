"""HTTP load for the benchmarks: wrk (a standard load generator) when it is installed,
else the Python generator of ``benchmarks/load.py``. Both report the same figures.

wrk runs with ``--latency``, one connection per client, keep-alive, a POST body from a
small Lua script; its latency percentiles and error counts are parsed from its report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["generator", "load", "parse_wrk"]

_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*all")
f:close()
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def generator() -> str:
    """``wrk`` when it is on PATH, else ``python`` (benchmarks/load.py)."""
    return "wrk" if shutil.which("wrk") else "python"


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(report: str) -> dict[str, Any]:
    """Requests, requests/s, errors and latency p50/p99 (ms) from ``wrk --latency``."""
    requests = int(re.search(r"(\d+) requests in", report).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1))  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", report, re.M))
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", report):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    ):
        errors += sum(int(n) for n in found.groups())
    return {
        "requests": requests,
        "requests_per_second": rps,
        "errors": errors,
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
    }


def load(url: str, body: bytes, seconds: float, clients: int) -> dict[str, Any]:
    """``clients`` connections POSTing ``body`` to ``url`` back to back for ``seconds``."""
    if generator() == "wrk":
        with tempfile.TemporaryDirectory() as tmp:
            payload, script = Path(tmp) / "body.json", Path(tmp) / "post.lua"
            payload.write_bytes(body)
            script.write_text(_LUA.format(body=payload))
            threads = min(2, clients)
            done = subprocess.run(
                [
                    "wrk",
                    f"-t{threads}",
                    f"-c{clients}",
                    f"-d{max(1, round(seconds))}s",
                    "--latency",
                    "--timeout",
                    "10s",
                    "-s",
                    str(script),
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        return {**parse_wrk(done.stdout), "generator": "wrk"}
    return {**_python_load(url, body, seconds, clients), "generator": "python"}


def _python_load(url: str, body: bytes, seconds: float, clients: int) -> dict[str, Any]:
    """The fallback generator: asyncio clients on httpx (slower than wrk, same figures)."""
    import asyncio
    import time

    import httpx

    latencies: list[float] = []
    errors = 0

    async def client(deadline: float) -> None:
        nonlocal errors
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(timeout=10) as http:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    reply = await http.post(url, content=body, headers=headers)
                    errors += reply.status_code >= 400
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

    async def main() -> float:
        started = time.perf_counter()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(deadline) for _ in range(clients)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    ordered = sorted(latencies) or [0.0]

    def percentile(q: float) -> float:
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000

    return {
        "requests": len(latencies),
        "requests_per_second": len(latencies) / elapsed,
        "errors": errors,
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
    }
