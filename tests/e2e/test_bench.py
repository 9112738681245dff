"""`make bench` on a tiny size: every section runs for real (a DVC project, both HTTP
servers, batch, tuning, monitoring) and the results and the table are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.suite import SECTIONS, TARGETS

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def test_the_suite_runs_every_section_on_a_tiny_size(tmp_path: Path) -> None:
    results, markdown = tmp_path / "latest.json", tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\nhand-written notes stay\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.suite",
            "--size",
            "tiny",
            "--results",
            str(results),
            "--markdown",
            str(markdown),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads(results.read_text())
    assert set(found["sections"]) == set(SECTIONS)
    for name, section in found["sections"].items():
        assert "error" not in section, (name, section)
    # both sides of each comparison were measured in this run, on the same model
    realtime = found["sections"]["realtime"]
    for side in ("cycleml", "mlflow"):
        assert realtime[side]["requests"] > 0 and realtime[side]["errors"] == 0, realtime
    assert found["sections"]["in_process"]["scorer"] == "compiled"
    batch = found["sections"]["batch"]
    assert batch["cycleml"]["rows_per_s"] > 0 and batch["pipeline"]["rows_per_s"] > 0
    assert found["sections"]["monitoring"]["input_columns"] == 30
    assert found["sections"]["tuning"]["one_worker"]["trials"] == 3
    assert len(found["targets"]) == len(TARGETS)
    assert all(isinstance(t["met"], bool) for t in found["targets"])
    text = markdown.read_text()
    assert "hand-written notes stay" in text
    assert "| throughput at 4 concurrent clients |" in text
    assert text.count("<!-- results:start -->") == 1
