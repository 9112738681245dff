"""Faults: a service whose MLflow store is missing or unreachable at start fails fast,
with a clear message and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cycleml.demo.harness import free_port
from tests.conftest import REPO, small_params

pytestmark = pytest.mark.integration
BENTOML = Path(sys.executable).parent / "bentoml"


def serve(root: Path, tracking_uri: str) -> subprocess.CompletedProcess[str]:
    raw = small_params()
    raw["tracking"]["tracking_uri"] = tracking_uri
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(CYCLEML_ROOT=str(root), CYCLEML_PARAMS=str(root / "params.yaml"))
    port = str(free_port())
    return subprocess.run(
        [str(BENTOML), "serve", "service:CycleML", "--host", "127.0.0.1", "--port", port],
        cwd=REPO / "serving",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("sqlite:///{root}/a-file/mlflow.db", "a-file"),  # a folder that cannot exist
        ("http://127.0.0.1:{port}", "Max retries exceeded"),
        ("sqlite:///mlflow.db", "has no version '@champion'"),  # a fresh, empty store
    ],
)
def test_serve_without_a_usable_store_exits_1_saying_what_to_check(
    tmp_path: Path, uri: str, says: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    done = serve(tmp_path, uri.format(port=free_port(), root=tmp_path))
    assert done.returncode != 0
    assert "cycleml service: cannot load cycleml-churn @champion" in done.stderr
    assert says in done.stderr
    assert "MLFLOW_TRACKING_URI" in done.stderr and "dvc repro" in done.stderr


def _mlflow_server(store: Path, port: int) -> subprocess.Popen[bytes]:
    """A real MLflow tracking server (the team-mode registry) on 127.0.0.1."""
    import time
    import urllib.request

    mlflow = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen(
        [
            *(str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"),
            *("--artifacts-destination", str(store / "artifacts"), "--workers", "1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return process
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "no mlflow server"
            time.sleep(0.5)


def test_a_registry_lost_while_serving_is_reported_and_the_model_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import signal
    import time

    import httpx
    import pandas as pd

    from cycleml.demo.harness import Service
    from tests.conftest import Project

    port = free_port()
    store = tmp_path / "store"
    registry = _mlflow_server(store, port)
    try:
        monkeypatch.chdir(tmp_path)
        project = Project(tmp_path)
        raw = small_params(rows=1500)
        raw["tracking"]["tracking_uri"] = f"http://127.0.0.1:{port}"
        raw["serving"]["reload_seconds"] = 1
        stages = ("ingest", "validate", "split", "frame", "train", "evaluate", "register")
        project.run_stages(project.write_params(raw), *stages)
        test = pd.read_parquet(project.paths.split("test")).head(3).drop(columns=["churn"])
        body = {"records": json.loads(test.to_json(orient="records", date_format="iso"))}

        with Service.start(REPO, tmp_path) as service:
            assert httpx.get(service.url + "/metadata").json()["registry"]["reachable"]
            os.killpg(registry.pid, signal.SIGKILL)  # the registry is gone
            registry.wait()
            deadline = time.monotonic() + 60
            while httpx.get(service.url + "/metadata").json()["registry"]["reachable"]:
                assert time.monotonic() < deadline, "the lost registry was never reported"
                time.sleep(0.5)
            meta = httpx.get(service.url + "/metadata").json()
            assert meta["registry"]["error"] and meta["registry"]["serving"] == "1"
            answer = httpx.post(service.url + "/predict", json=body, timeout=30)
            assert answer.status_code == 200 and answer.json()["model_version"] == "1"
            gauge = [
                line
                for line in httpx.get(service.url + "/metrics").text.splitlines()
                if line.startswith("cycleml_registry_reachable")
            ]
            assert gauge and all(line.endswith(" 0.0") for line in gauge), gauge

            registry = _mlflow_server(store, port)  # back again
            deadline = time.monotonic() + 60
            while not httpx.get(service.url + "/metadata").json()["registry"]["reachable"]:
                assert time.monotonic() < deadline, "the registry's return was never noticed"
                time.sleep(0.5)
    finally:
        if registry.poll() is None:
            os.killpg(registry.pid, signal.SIGTERM)
            registry.wait(30)


def test_the_service_listens_on_loopback_only_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bentoml serve` with no --host (as a user might run it): serving.host decides."""
    import signal
    import time
    import urllib.request

    import psutil

    from tests.conftest import Project

    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    raw = small_params(rows=800)
    raw["serving"]["port"] = port = free_port()
    stages = ("ingest", "validate", "split", "frame", "train", "evaluate", "register")
    project.run_stages(project.write_params(raw), *stages)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        CYCLEML_ROOT=str(tmp_path),
        CYCLEML_PARAMS=str(tmp_path / "params.yaml"),
        BENTOML_HOME=str(tmp_path / ".bentoml"),
    )
    process = subprocess.Popen(
        [str(BENTOML), "serve", "service:CycleML"],
        cwd=REPO / "serving",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
        listening = [
            c.laddr
            for p in tree
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening, "found no listening socket"
        assert all(address.ip in ("127.0.0.1", "::1") for address in listening), listening
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
