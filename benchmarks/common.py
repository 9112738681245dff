"""What every benchmark section shares: the repository, timed child processes, medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
T = TypeVar("T")


@dataclass(frozen=True)
class Size:
    """How big a run is: ``full`` for `make bench`, ``tiny`` for the test suite."""

    name: str
    repeats: int
    rows: int | None
    """Demo rows of the benchmark project (None: params.yaml's own, the default)."""
    http_seconds: float
    clients: int
    in_process_records: int
    batch_rows: int
    tune_trials: int
    monitor_rows: int
    monitor_reference_rows: int
    monitor_train_rows: int


SIZES = {
    "full": Size("full", 3, None, 10, 32, 2000, 2_000_000, 16, 1_000_000, 1_000_000, 20_000),
    "tiny": Size("tiny", 1, 1500, 1, 4, 50, 20_000, 3, 3000, 3000, 1500),
}


def env() -> dict[str, str]:
    """The environment for child commands: the venv first on PATH, no stray MLflow URI."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {
        **base,
        "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    """The command's own peak resident memory, as GNU time (``/usr/bin/time``) reports it."""
    output: str


_TIME = Path("/usr/bin/time")


def run(
    cmd: Sequence[str],
    cwd: Path,
    extra_env: dict[str, str] | None = None,
    ok: Sequence[int] = (0,),
) -> Run:
    """Run ``cmd`` to completion: wall time, peak memory and output; raise when its exit
    status is not in ``ok``.

    The peak comes from GNU time, which forks the command from its own small process:
    ``wait4`` on a child forked from this (large) interpreter would count the memory the
    child shares with it until it execs.
    """
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        timed = [str(_TIME), "-f", "%M", "-o", str(peak_file), *cmd] if _TIME.exists() else cmd
        with (Path(tmp) / "out").open("w+b") as out:
            started = time.perf_counter()
            child = subprocess.Popen(
                timed,
                cwd=cwd,
                env={**env(), **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - started
            out.seek(0)
            text = out.read().decode(errors="replace")
        peak_kb = usage.ru_maxrss
        if peak_file.exists() and peak_file.read_text().strip().splitlines():
            peak_kb = int(peak_file.read_text().strip().splitlines()[-1])
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{text[-4000:]}")
    return Run(seconds, peak_kb / 1024, text)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def repeat(times: int, measure: Callable[[], T]) -> list[T]:
    return [measure() for _ in range(times)]


def median_of(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per key: the median of the numbers, the first value of anything else."""
    out: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        out[key] = median(values) if numeric else values[0]
    return out
