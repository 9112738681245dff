"""`make loop` end to end on small data: a real DVC project, a real `bentoml serve`,
drifted traffic with late labels, monitor, retrain, and the service swapping versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import REPO

pytestmark = pytest.mark.e2e
CYCLEML = Path(sys.executable).parent / "cycleml"


def test_the_loop_detects_the_drift_retrains_and_serves_the_champion(tmp_path: Path) -> None:
    workspace = tmp_path / "loop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{CYCLEML.parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [
            *(str(CYCLEML), "loop", "--rows", "3000", "--traffic", "4000", "--trials", "2"),
            *("--workspace", str(workspace)),
            # small data: the fairness gaps are mostly noise; the gate is tested elsewhere
            *("--set", "evaluate.fairness.max_equalized_odds_difference=null"),
            *("--set", "evaluate.fairness.max_demographic_parity_difference=null"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((workspace / "reports" / "loop.json").read_text())

    # the concept drift is caught on the labelled traffic, not as data drift
    before = json.loads((workspace / "reports" / "monitor_v1.json").read_text())
    assert summary["monitor"]["before"] == "degraded"
    assert before["drift"]["drifted"] == []
    assert before["quality"]["degraded"]

    # the new data is a DVC-tracked partition the pipeline trained on
    partition = Path(summary["partition"])
    assert partition.exists() and Path(f"{partition}.dvc").exists()
    ingest = json.loads((workspace / "reports" / "ingest.json").read_text())
    assert ingest["partitions"] == {partition.name: summary["partition_rows"]}
    assert 3900 < summary["partition_rows"] <= 4000  # clean() drops the generator's duplicates

    # whatever the gate decided, the service answers with the registry's champion
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("cycleml-churn", "champion").version
    assert summary["versions"]["after"] == str(champion)
    assert summary["promoted"] == (str(champion) != summary["versions"]["before"])
    assert summary["promoted"], summary["register"]["reasons"]
    assert "promoted and serving" in done.stdout
    assert (workspace / "reports" / "monitor.html").exists()
