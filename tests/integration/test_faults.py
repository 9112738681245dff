"""Faults: a service whose MLflow store is missing or unreachable at start fails fast,
with a clear message and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cycleml.server import free_port
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
