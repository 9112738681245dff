"""`dvc repro` end to end in a temporary git + DVC copy of the project, on a small table."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import REPO, STAGES, houses_csv, small_params

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def sh(cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "contracts", root / "contracts")
    shutil.copytree(REPO / "data" / "partitions", root / "data" / "partitions")
    shutil.copytree(REPO / "data" / "external", root / "data" / "external")
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(small_params(rows=1500), sort_keys=False))
    sh(root, "git", "init", "-q")
    sh(root, str(BIN / "dvc"), "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return root


def test_repro_registers_a_champion_with_lineage_then_is_up_to_date(repo: Path) -> None:
    first = sh(repo, str(BIN / "dvc"), "repro")
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("cycleml-churn", "champion")
    tags = champion.tags
    head = sh(repo, "git", "rev-parse", "HEAD").stdout.strip()
    assert tags["cycleml.git_commit"] == head

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    raw_out = {o["path"]: o["md5"] for o in lock["stages"]["ingest"]["outs"]}
    assert tags["cycleml.data.raw.dvc_md5"] == raw_out["data/raw/data.parquet"]
    split_files = {
        f["relpath"]: f["md5"]
        for f in _dir_listing(repo, lock["stages"]["split"]["outs"], "data/split")
    }
    assert tags["cycleml.data.train.md5"] == split_files["train.parquet"]
    assert tags["cycleml.data.test.md5"] == split_files["test.parquet"]
    assert "cycleml.params_hash" in tags

    second = sh(repo, str(BIN / "dvc"), "repro")
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout
    assert "up to date" in sh(repo, str(BIN / "dvc"), "status").stdout

    summary = sh(repo, str(BIN / "cycleml"), "summary").stdout
    assert "@champion" in summary and "make ui" in summary


def _dir_listing(repo: Path, outs: list[dict[str, str]], path: str) -> list[dict[str, str]]:
    """The per-file hashes DVC keeps for a directory output (in its cache, by the .dir hash)."""
    import json

    digest = next(o["md5"] for o in outs if o["path"] == path)
    cache = repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    listing: list[dict[str, str]] = json.loads(cache.read_text())
    return listing


def test_changing_a_serving_knob_reruns_only_what_reads_it(repo: Path) -> None:
    sh(repo, str(BIN / "dvc"), "repro")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["register"]["criteria"]["classification"]["roc_auc"]["min"] = 0.6
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    again = sh(repo, str(BIN / "dvc"), "repro").stdout
    assert "Running stage 'register'" in again
    assert "Running stage 'train'" not in again and "Running stage 'ingest'" not in again


def test_own_data_by_changing_only_the_data_block(repo: Path) -> None:
    """A user's regression CSV: a two-key data block, task and split set, nothing else."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"] = {
        "source": {
            "kind": "file",
            "path": str(houses_csv(repo / "data" / "external" / "houses.csv")),
        },
        "target": "price",
    }
    params["task"] = "regression"
    params["split"]["strategy"] = "random"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(repo, str(BIN / "dvc"), "repro").stdout
    assert "skipped" in (repo / "reports" / "validate.json").read_text()  # demo's features
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert metrics["r2"] > 0.8 and "error_cost" in metrics
    assert "register: cycleml-churn v1 -> @champion" in out


def _breast_cancer_csv(path: Path, rows: int) -> str:
    """A real public table that ships with scikit-learn (569 tumours, 30 measurements): its
    first ``rows`` rows and 8 measurements (explore's figures are per column), the label as
    text; returns the file's md5."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    table = bunch.data.iloc[:rows, :8].copy()
    table["diagnosis"] = bunch.target.iloc[:rows].map({0: "malignant", 1: "benign"})
    table.to_csv(path, index=False)
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_a_changed_source_file_reruns_ingest_and_what_follows(repo: Path) -> None:
    """A file source in data/external/: replacing its contents at the same path is a change
    DVC sees (status names ingest, repro re-runs it and the rest, the new training run is
    tagged with the new file's md5); after that, repro is a no-op."""
    dvc = str(BIN / "dvc")
    source = repo / "data" / "external" / "breast_cancer.csv"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"] = {
        "source": {"kind": "file", "path": "data/external/breast_cancer.csv"},
        "target": "diagnosis",
        "positive_class": "malignant",
    }
    params["train"]["xgboost"]["n_estimators"] = 30
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first_md5 = _breast_cancer_csv(source, rows=400)
    sh(repo, dvc, "repro")
    assert _train_run_tags(repo)["cycleml.data.source.md5"] == first_md5

    second_md5 = _breast_cancer_csv(source, rows=340)  # new contents, same path
    status = sh(repo, dvc, "status").stdout
    assert status.startswith("ingest:") and "modified:           data/external" in status
    again = sh(repo, dvc, "repro").stdout
    for stage in STAGES:
        assert f"Running stage '{stage}'" in again
    assert _train_run_tags(repo)["cycleml.data.source.md5"] == second_md5
    assert json.loads((repo / "reports" / "ingest.json").read_text())["warnings"] == []

    third = sh(repo, dvc, "repro").stdout
    assert "Running stage" not in third and "up to date" in third


def _train_run_tags(repo: Path) -> dict[str, str]:
    run_id = json.loads((repo / "models" / "train_run.json").read_text())["run_id"]
    return MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_run(run_id).data.tags


def test_a_stage_killed_midway_leaves_nothing_half_written_and_repro_recovers(
    repo: Path,
) -> None:
    """SIGKILL to the whole `dvc repro` while train runs; the next repro completes and the
    outputs are whole (the model loads, the metrics parse, DVC calls it up to date)."""
    import signal
    import time

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    log = repo / "first-repro.log"
    with log.open("w") as sink:
        first = subprocess.Popen(
            [str(BIN / "dvc"), "repro"],
            cwd=repo,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while "Running stage 'train'" not in log.read_text():
            assert first.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "train never started"
            time.sleep(0.2)
        time.sleep(1.5)  # midway through fitting
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (repo / "reports" / "register.json").exists()  # it really stopped early

    again = sh(repo, str(BIN / "dvc"), "repro").stdout
    assert "Running stage 'train'" in again and "Running stage 'register'" in again
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(repo / "models" / "model"))
    assert hasattr(model, "predict_proba")
    assert json.loads((repo / "metrics" / "train.json").read_text())["best_iteration"] >= 0
    assert "up to date" in sh(repo, str(BIN / "dvc"), "status").stdout
