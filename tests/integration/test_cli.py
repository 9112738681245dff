from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import STAGES, repo_params

pytestmark = pytest.mark.integration
CYCLEML = Path(sys.executable).parent / "cycleml"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CYCLEML), *args], cwd=cwd, capture_output=True, text=True)


def test_help_lists_every_stage(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for stage in STAGES:
        assert stage in result.stdout


def test_help_keeps_the_order_of_the_commands() -> None:
    """The stages in pipeline order, then what operates their results, the registry last."""
    import typer
    from typer.core import TyperGroup

    from cycleml.cli.app import app

    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    assert group.list_commands(typer.Context(group)) == [
        *(stage for stage in STAGES if stage != "reference"),
        "summary",
        "lineage",
        "predict",
        "reference",
        "monitor",
        "retrain",
        "loop",
        "registry",
    ]


def test_loop_refuses_a_malformed_set_before_it_starts(tmp_path: Path) -> None:
    result = run("loop", "--set", "tune.n_trials", cwd=tmp_path)
    assert result.returncode == 2
    assert "--set 'tune.n_trials': use KEY=VALUE, e.g. tune.n_trials=2" in result.stderr
    assert not (tmp_path / "loop").exists()


def test_bad_params_exit_2_naming_the_key(tmp_path: Path) -> None:
    raw = repo_params()
    raw["split"]["seeed"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = run("ingest", cwd=tmp_path)
    assert result.returncode == 2
    assert "split.seeed: unknown key" in result.stderr
    assert not (tmp_path / "data").exists()


def test_validation_failure_exits_1_and_keeps_previous_outputs(tmp_path: Path) -> None:
    raw = repo_params()
    raw["data"]["source"]["rows"] = 300
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert run("ingest", cwd=tmp_path).returncode == 0
    assert run("validate", cwd=tmp_path).returncode == 0
    schema = (tmp_path / "data/interim/schema.json").read_text()

    raw["data"]["target"] = "churned"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = run("validate", cwd=tmp_path)
    assert result.returncode == 1
    assert "data.target" in result.stderr and "'churned'" in result.stderr
    assert (tmp_path / "data/interim/schema.json").read_text() == schema


def test_make_ui_serves_the_registry_over_http(tmp_path: Path) -> None:
    """The same command `make ui` runs, against a store holding a registered champion."""
    import json
    import socket
    import time
    import urllib.request

    raw = repo_params()
    raw["data"]["source"]["rows"] = 800
    raw["train"]["xgboost"]["n_estimators"] = 30
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    for stage in STAGES:
        assert run(stage, cwd=tmp_path).returncode == 0, stage

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [
            str(mlflow),
            "ui",
            "--backend-store-uri",
            "sqlite:///mlflow.db",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/alias?name=cycleml-churn&alias=champion"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    body = json.load(response)
                break
            except OSError:
                assert server.poll() is None, "mlflow ui exited"
                assert time.monotonic() < deadline, "mlflow ui did not answer in 90 s"
                time.sleep(0.5)
    finally:
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    version = body["model_version"]
    assert version["aliases"] == ["champion"]
    tags = {t["key"]: t["value"] for t in version["tags"]}
    assert tags["cycleml.decision"] == "champion" and "cycleml.data.train.md5" in tags


def test_predict_refuses_an_unwritable_output_before_loading_any_model(tmp_path: Path) -> None:
    """A fresh project (no store, no model): the OUTPUT is refused first, naming the fix."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params()))
    (tmp_path / "scored.csv").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    for output, says in [
        ("scored.csv", "OUTPUT scored.csv is a folder; name a file in it"),
        ("a-file/scored.csv", "a-file is a file, not a folder"),
    ]:
        result = run("predict", "rows.csv", output, cwd=tmp_path)
        assert result.returncode == 1
        assert says in " ".join(result.stderr.split()), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "params.yaml", "scored.csv"]


def test_registry_list_with_nothing_registered_says_why(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params()))
    result = run("registry", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "has no versions yet" in result.stdout and "dvc repro" in result.stdout
    reports = tmp_path / "reports"
    reports.mkdir()
    refusal = {"model_name": "cycleml-churn", "registered": False, "reasons": ["roc_auc low"]}
    (reports / "register.json").write_text(json.dumps(refusal))
    result = run("registry", "list", cwd=tmp_path)
    assert "did not" in result.stdout and "roc_auc low" in result.stdout, result.stdout
