"""Load on a real `bentoml serve`: no failed request, flat memory, and a graceful
shutdown under load that loses no acknowledged prediction-log row (`make load` runs
60 s at 32 clients; CI runs a short version of the same code)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.load import run_load, shutdown_under_load, tree_rss_mb

from cycleml.demo.harness import Service
from tests.conftest import REPO, Project, small_params

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Service, dict]]:
    import json

    import pandas as pd

    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    project.run_stages(
        project.write_params(small_params()),
        "ingest",
        "validate",
        "split",
        "frame",
        "train",
        "evaluate",
        "register",
    )
    test = pd.read_parquet(project.paths.split("test")).head(1).drop(columns=["churn"])
    record = json.loads(test.to_json(orient="records", date_format="iso"))[0]
    with Service.start(REPO, tmp_path) as service:
        yield service, record


def test_sustained_load_fails_no_request_and_memory_stays_flat(
    served: tuple[Service, dict],
) -> None:
    service, record = served
    run_load(service.url, record, 2, 8)  # warm-up: first requests load lazily
    first = run_load(service.url, record, 6, 16)
    after_first = tree_rss_mb(service.process.pid)
    second = run_load(service.url, record, 6, 16)
    after_second = tree_rss_mb(service.process.pid)
    for result in (first, second):
        assert result.failed == 0, result.failures
        assert result.requests > 50
    # the same load again must not need more memory: no per-request leak
    assert after_second - after_first < 60, (after_first, after_second)


def test_graceful_shutdown_under_load_loses_no_acknowledged_row(
    served: tuple[Service, dict], tmp_path: Path
) -> None:
    service, record = served
    outcome = shutdown_under_load(service, record, tmp_path / "predictions.db", clients=16)
    assert outcome["acknowledged"] > 50, outcome
    assert outcome["lost"] == 0, outcome
    assert outcome["exit_code"] is not None and not os.path.exists(f"/proc/{service.process.pid}")
