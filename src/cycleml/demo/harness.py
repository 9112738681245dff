"""Start and stop the HTTP service (``bentoml serve``) for a project root.

Used by ``cycleml loop`` and the tests: the service binds 127.0.0.1 on a free port, gets
a fresh admin token, logs to ``<root>/logs/service.log`` and is stopped, with its worker
processes, by its process group.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cycleml.names import STAGES

__all__ = ["Service", "demo_project", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """``bentoml serve`` of serving/service.py for one project root, on 127.0.0.1."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    @contextmanager
    def start(
        cls, repo: Path, root: Path, timeout: float = 120, token: str | None = None
    ) -> Iterator[Service]:
        """Serve ``root``'s project (its params.yaml and stores) with ``repo``'s
        serving/service.py; stopped, with its process group, when the block ends."""
        port, token = free_port(), token or secrets.token_hex(16)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "CYCLEML_ROOT": str(root),
            "CYCLEML_PARAMS": str(root / "params.yaml"),
            "CYCLEML_ADMIN_TOKEN": token,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "BENTOML_DO_NOT_TRACK": "true",
            # BentoML wipes $BENTOML_HOME/prometheus_multiproc_dir when a service starts:
            # one home per project, so services started side by side keep their metrics
            "BENTOML_HOME": str(root / ".bentoml"),
        }
        log = root / "logs" / "service.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        bentoml = Path(sys.executable).parent / "bentoml"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    str(bentoml),
                    "serve",
                    "service:CycleML",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=repo / "serving",
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = cls(f"http://127.0.0.1:{port}", token, process, log)
        try:
            service._wait_ready(timeout)
            yield service
        finally:
            service.stop()

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the service did not start; its log ends with:\n{tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def demo_project(repo: Path, root: Path, rows: int = 3000, trees: int = 100) -> None:
    """A small trained project in ``root`` to serve: ``repo``'s params on ``rows`` demo
    rows, no tuning, ``trees`` trees, the stages run by the CLI up to ``register``."""
    import yaml

    from cycleml.config import read_yaml

    raw = read_yaml((repo / "params.yaml").read_text(encoding="utf-8"))
    raw["data"]["source"]["rows"] = rows
    raw["tune"]["enabled"] = False
    raw["train"]["xgboost"]["n_estimators"] = trees
    (root / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for stage in (s for s in STAGES if s not in ("explore", "tune", "reference")):
        subprocess.run(["cycleml", stage], cwd=root, env=env, check=True, capture_output=True)
