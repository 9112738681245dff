"""A store URI's credentials never reach a message: the service's start-up error, and the
CLI's registry errors, show the URI with its password masked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cycleml.demo.harness import free_port
from tests.conftest import repo_params
from tests.integration.test_faults import serve

pytestmark = pytest.mark.integration
PASSWORD = "s3cret-9f2e"


def test_the_service_start_up_error_masks_the_stores_password(tmp_path: Path) -> None:
    done = serve(tmp_path, f"http://alice:{PASSWORD}@127.0.0.1:{free_port()}")
    assert done.returncode != 0
    assert "cannot load cycleml-churn @champion: the MLflow store http://alice:***@127.0.0.1" in (
        done.stderr
    )
    assert PASSWORD not in done.stderr + done.stdout


def test_a_registry_command_on_an_unreachable_store_says_so_without_its_password(
    tmp_path: Path,
) -> None:
    raw = repo_params()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    uri = f"http://alice:{PASSWORD}@127.0.0.1:{free_port()}"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cycleml"), "registry", "promote", "@champion"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = " ".join(done.stderr.split())
    assert done.returncode == 1, said
    assert "the MLflow store http://alice:***@127.0.0.1" in said and "could not" in said
    assert PASSWORD not in done.stderr + done.stdout
