"""BentoML's async task store under a real `bentoml serve`: in the project, private, and
without the credentials a client sent in its headers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from cycleml.demo.harness import Service, free_port
from tests.conftest import REPO, Project, small_params

pytestmark = pytest.mark.integration

SERVED_STAGES = ("ingest", "validate", "split", "frame", "train", "evaluate", "register")
SECRETS = {
    "authorization": "Bearer tok-3f9a1c7e5b2d",
    "cookie": "session=ck-8e4b6a2f0c1d",
    "x-api-key": "key-5d7c9e1b3a2f",
}


@contextmanager
def served(root: Path, home: Path) -> Iterator[Service]:
    """`bentoml serve` of ``root`` as `make serve` runs it, BentoML's home at ``home``
    (the harness puts that home in the project, which would hide where the store goes)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        CYCLEML_ROOT=str(root),
        CYCLEML_PARAMS=str(root / "params.yaml"),
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="true",
    )
    log = root / "service.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", "service:CycleML"]
            + ["--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO / "serving",
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(f"http://127.0.0.1:{port}", "", process, log)
    try:
        service._wait_ready(120)
        yield service
    finally:
        service.stop()


def result(url: str, task_id: str) -> httpx.Response:
    """The task's answer once it is done (then its result is in the store too)."""
    deadline = time.monotonic() + 30
    while True:
        got = httpx.get(url + "/predict_async/get", params={"task_id": task_id})
        if got.status_code == 200 or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_async_tasks_are_stored_in_the_project_private_and_without_headers(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project.run_stages(project.write_params(small_params()), *SERVED_STAGES)
    rows = pd.read_parquet(project.paths.split("test")).head(3).drop(columns=["churn"])
    body = {"records": json.loads(rows.to_json(orient="records", date_format="iso"))}
    home = tmp_path_factory.mktemp("bentoml-home")
    with served(project.root, home) as service:
        submitted = httpx.post(
            service.url + "/predict_async/submit?token=qs-1a2b3c4d", json=body, headers=SECRETS
        )
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["task_id"]
        got = result(service.url, task_id)
        assert got.status_code == 200 and len(got.json()["predictions"]) == 3, got.text
        # a retry runs from the stored request: its body and content type are enough
        retried = httpx.post(service.url + "/predict_async/retry", params={"task_id": task_id})
        assert retried.status_code == 200, retried.text
        again = result(service.url, retried.json()["task_id"])
        assert again.status_code == 200, again.text
        assert [a["probabilities"] for a in again.json()["predictions"]] == [
            a["probabilities"] for a in got.json()["predictions"]
        ]
        store = project.root / ".bentoml" / "task_result.db"
        files = sorted(store.parent.glob(store.name + "*"))  # with SQLite's -wal and -shm
        stored = b"".join(f.read_bytes() for f in files)
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}

    assert store in files and task_id.encode() in stored  # this task's row is in this file
    assert not (home / "task_result.db").exists()  # BentoML's default place
    assert modes == dict.fromkeys(modes, 0o600), modes
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    for secret in [*SECRETS.values(), "qs-1a2b3c4d"]:
        assert secret.encode() not in stored, f"{secret} was stored"
