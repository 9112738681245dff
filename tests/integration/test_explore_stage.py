"""Stage `explore` in-process on a small demo table, against a real MLflow store."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow import MlflowClient

from cycleml.files import read_json
from cycleml.model.tracking import tracking_uri
from cycleml.stages import explore
from tests.conftest import Project, small_params

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_explore_writes_report_figures_tables_and_logs_to_mlflow(project: Project) -> None:
    params = project.write_params(small_params())
    project.run_stages(params, "ingest", "validate")
    paths = project.paths
    stale = paths.report("explore") / "distributions_9.png"  # from an earlier, wider table
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")

    exp = explore.run(params, paths)

    assert not stale.exists()

    schema = read_json(paths.schema)
    page = paths.report("explore.html").read_text(encoding="utf-8")
    for feature in [*schema["numeric"], *schema["categorical"]]:
        assert feature in page
    assert page.count("data:image/png;base64,") >= 5  # self-contained

    figures = sorted(paths.report("explore").glob("*.png"))
    names = {f.stem for f in figures}
    assert {"distributions_1", "target_rate_1", "correlation", "cramers_v", "missing"} <= names
    assert len(figures) <= 8  # a handful of figures, not one per column
    for figure in figures:
        assert figure.read_bytes()[:8] == PNG_MAGIC

    rates = pd.read_csv(paths.plot("explore/target_rate.csv"))
    assert list(rates.columns) == ["feature", "bucket", "rows", "target_rate"]
    assert set(rates["feature"]) == {*schema["numeric"], *schema["categorical"]}
    assert rates["target_rate"].between(0, 1).all()
    missing = pd.read_csv(paths.plot("explore/missing.csv"))
    assert list(missing.columns) == ["column", "missing_share"]

    report = read_json(paths.report("explore.json"))
    assert report["rows"] == exp.rows and report["findings"] == exp.findings
    assert {row["column"] for row in report["summary"]} == set(missing["column"])

    client = MlflowClient(tracking_uri(params.tracking, paths))
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    assert experiment is not None
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.mlflow.runName = 'explore'"
    )
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "explore")}
    assert {f"explore/{f.name}" for f in figures} <= logged
    assert {"explore/target_rate.csv", "explore/missing.csv"} <= logged
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"explore.html", "explore.json"} <= top
