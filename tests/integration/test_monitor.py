"""`cycleml monitor` against a real trained model, its reference profile and a real
prediction log: quiet on the reference distribution, data drift on a shifted column,
degradation (concept drift) when the target's relation to the features changes, no
verdict on a window too small to judge, and rows the model trained on left out of model
quality."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from cycleml.config import Params
from cycleml.data.cleaning import clean
from cycleml.data.demo import generate_churn
from cycleml.model.tracking import configure
from cycleml.monitor import check as mon
from cycleml.monitor.window import load_seen_rows
from cycleml.scoring.loaded import LoadedModel, load_model
from cycleml.serve.predlog import PredictionLog
from cycleml.serve.served import Served, score
from tests.conftest import Project, module_project, small_params

pytestmark = pytest.mark.integration
CYCLEML = Path(sys.executable).parent / "cycleml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Params]]:
    with module_project(tmp_path_factory, "monitored") as project:
        params = project.write_params(small_params(rows=4000))
        project.run_stages(params)
        yield project, params


def champion(project: Project, params: Params) -> LoadedModel:
    client = configure(params.tracking, project.paths)
    return load_model(client, params.register_.model_name, "@champion")


def window(project: Project, params: Params, scenario: str, rows: int = 3000) -> Path:
    """Demo customers of ``scenario`` (a seed training never saw) as a file, labels in.
    Ids of their own: the generator numbers every table's customers from C0000001."""
    path = project.root / f"current-{scenario}-{rows}.parquet"
    frame = generate_churn(rows, 4242, scenario)
    frame["customer_id"] = [f"N{i:07d}" for i in range(rows)]
    frame.to_parquet(path)
    return path


def check(project: Project, params: Params, path: Path) -> mon.MonitorResult:
    model = champion(project, params)
    frame = mon.from_file(path, model, params.data)
    client = configure(params.tracking, project.paths)
    result, _ = mon.check(
        pd.read_parquet(project.paths.reference),
        frame,
        model,
        params.monitor,
        window=str(path),
        reports_dir=project.root / "reports",
        seen=load_seen_rows(client, model.run_id),
    )
    return result


def test_reference_profile_holds_held_out_rows_with_predictions(
    trained: tuple[Project, Params],
) -> None:
    project, params = trained
    reference = pd.read_parquet(project.paths.reference)
    valid = pd.read_parquet(project.paths.split("valid"))
    test = pd.read_parquet(project.paths.split("test"))
    assert len(reference) == len(valid) + len(test)
    assert {"prediction", "probability_Yes", "probability_No", "churn"} <= set(reference.columns)
    assert reference["probability_Yes"].between(0, 1).all()
    assert set(reference["churn"]) == {"Yes", "No"}


def test_no_drift_on_data_from_the_reference_distribution(trained: tuple[Project, Params]) -> None:
    project, params = trained
    result = check(project, params, window(project, params, "none"))
    assert result.verdict == "ok", result.drift["drifted"]
    assert result.drift["drifted"] == []
    assert not result.prediction["drifted"]
    assert result.quality["degraded"] == []
    assert result.exit_code == 0


def test_a_shifted_column_is_data_drift(trained: tuple[Project, Params]) -> None:
    project, params = trained
    result = check(project, params, window(project, params, "price_rise"))
    assert result.verdict == "drift"
    assert result.drift["drifted"] == ["monthly_charges"]
    assert result.drift["columns"]["monthly_charges"]["p_value"] < 1e-6
    assert result.exit_code == 3


def test_an_unseen_category_is_reported_and_drifts(trained: tuple[Project, Params]) -> None:
    project, params = trained
    result = check(project, params, window(project, params, "new_contract"))
    assert result.verdict == "drift"
    contract = result.data_quality["columns"]["contract"]
    assert "Quarterly" in contract["new_categories"]
    assert 0.15 < contract["new_category_share"] < 0.35


def test_a_changed_target_relation_is_degradation_not_data_drift(
    trained: tuple[Project, Params],
) -> None:
    project, params = trained
    result = check(project, params, window(project, params, "churn_propensity"))
    assert result.drift["drifted"] == []  # the features did not move
    assert result.verdict == "degraded"
    assert "log_loss" in result.quality["degraded"]
    assert result.quality["metrics"]["log_loss"]["change"].endswith("% worse")
    labels = result.quality["labels"]["Yes"]
    assert labels["current"] > labels["reference"] + 0.08  # churn rose
    assert result.exit_code == 4


def test_too_few_rows_are_not_ok_but_too_small_and_say_so(trained: tuple[Project, Params]) -> None:
    """60 rows after a price rise: the drift figures are not judged, and neither the
    verdict nor the exit status claims the model is fine."""
    project, params = trained
    path = window(project, params, "price_rise", rows=60)
    done = _cli(project, "monitor", "--current", str(path))
    assert done.returncode == 5, done.stderr
    assert "too_small" in done.stdout and "● ok" not in done.stdout
    assert "drift: not checked (60 rows, needs 200: monitor.min_rows)" in done.stdout
    assert "model quality: not checked (60 labelled rows, needs 200" in done.stdout
    summary = json.loads((project.root / "reports" / "monitor.json").read_text())
    assert summary["verdict"] == "too_small"
    assert summary["drift"]["not_checked"].startswith("not checked (60 rows")
    assert summary["prediction"]["not_checked"] == summary["drift"]["not_checked"]


def test_rows_the_model_trained_on_are_left_out_of_model_quality(
    trained: tuple[Project, Params],
) -> None:
    """A window holding training rows (matched on customer_id) besides held-out test rows:
    only the test rows are judged, and the result says how many were left out."""
    project, params = trained
    unseen = pd.read_parquet(project.paths.split("test"))
    seen = pd.read_parquet(project.paths.split("train")).head(500)
    path = project.root / "with-training-rows.parquet"
    pd.concat([unseen, seen], ignore_index=True).to_parquet(path)
    result = check(project, params, path)
    assert result.labelled_rows == len(unseen) + 500
    assert result.quality["trained_rows"] == {"left_out": 500}
    assert result.quality["rows"] == len(unseen)
    lines = mon.describe(result)
    assert "rows the model trained on: 500 left out of model quality" in lines


def test_the_prediction_log_window_by_version_rows_and_time(
    trained: tuple[Project, Params],
) -> None:
    project, params = trained
    model = champion(project, params)
    served = Served(**vars(model))
    url = project.paths.database_url("sqlite:///log-window.db")
    log = PredictionLog(url, flush_seconds=0.05)
    frame, _ = clean(generate_churn(400, 9, "none"), params.data)
    columns = [*model.schema.inputs, "customer_id"]  # as clients send them, ids beside
    records = frame[columns].astype(object).where(frame.notna(), None)
    rows = records.to_dict(orient="records")
    answers = score(served, rows)
    log.add(model.name, rows, answers)
    log.flush()
    for answer, truth in list(zip(answers, frame["churn"], strict=True))[:250]:
        log.feedback(answer["request_id"], truth)
    log.close()

    def load(version: str) -> LoadedModel:
        assert version == model.version
        return model

    current, found = mon.from_log(url, model.name, load, chunk_rows=150)
    assert found is model and len(current) == len(rows)
    assert current["_label"].notna().sum() == 250
    logged = dict(zip(current["_request_id"], current["prediction"], strict=True))
    assert logged == {a["request_id"]: a["prediction"] for a in answers}
    assert current["monthly_charges"].dtype == "float64"
    sent = {a["request_id"]: r["contract"] for a, r in zip(answers, rows, strict=True)}
    assert dict(zip(current["_request_id"], current["contract"], strict=True)) == sent
    ids = {a["request_id"]: r["customer_id"] for a, r in zip(answers, rows, strict=True)}
    assert dict(zip(current["_request_id"], current["customer_id"], strict=True)) == ids
    newest, _ = mon.from_log(url, model.name, load, last=100)
    assert len(newest) == 100
    with pytest.raises(mon.MonitorError, match="no served predictions"):
        mon.from_log(url, model.name, load, since=mon.parse_since("1h") + 7200)
    with pytest.raises(mon.MonitorError, match="no served predictions"):
        mon.from_log(url, model.name, load, version="99")


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["COLUMNS"] = "200"  # one line per finding
    return subprocess.run(
        [str(CYCLEML), *args], cwd=project.root, capture_output=True, text=True, env=env
    )


def test_cli_writes_every_output_and_exits_with_the_verdict(
    trained: tuple[Project, Params],
) -> None:
    project, params = trained
    path = window(project, params, "price_rise")

    def snapshots() -> int:
        from evidently.ui.workspace import Workspace

        workspace = Workspace(str(project.root / "monitoring"))
        found = workspace.search_project("cycleml")
        return len(workspace.list_runs(found[0].id)) if found else 0

    before = snapshots()  # other tests of this module ran the command too
    done = _cli(project, "monitor", "--current", str(path))
    assert done.returncode == 3, done.stderr
    assert "drift" in done.stdout and "monthly_charges" in done.stdout
    summary = json.loads((project.root / "reports" / "monitor.json").read_text())
    assert summary["verdict"] == "drift"
    metrics = json.loads((project.root / "metrics" / "monitor.json").read_text())
    assert metrics["drifted_columns"] == 1 and metrics["labelled_rows"] == 3000
    assert (project.root / "reports" / "monitor.html").stat().st_size > 10_000
    assert (project.root / "reports" / "monitor_quality.html").exists()
    assert snapshots() == before + 2  # drift + quality


def test_cli_errors_name_the_problem(trained: tuple[Project, Params]) -> None:
    project, _ = trained
    bad = project.root / "bad.parquet"
    generate_churn(300, 1, "none").drop(columns=["tenure_months"]).to_parquet(bad)
    done = _cli(project, "monitor", "--current", str(bad))
    assert done.returncode == 1
    assert "tenure_months" in done.stderr


def test_unknown_labels_are_an_error_naming_the_target(trained: tuple[Project, Params]) -> None:
    project, params = trained
    path = project.root / "typo.parquet"
    frame = generate_churn(300, 3, "none")
    frame.loc[:10, "churn"] = "Maybe"
    frame.to_parquet(path)
    with pytest.raises(mon.MonitorError, match="'churn'.*Maybe"):
        check(project, params, path)


def test_a_csv_window_is_read_and_cleaned_as_ingest_reads_the_source(
    trained: tuple[Project, Params],
) -> None:
    project, params = trained
    path = project.root / "window.csv"
    generate_churn(2000, 77, "none").to_csv(path, sep=";", index=False)  # '?' and ' ' inside
    frame = mon.from_file(path, champion(project, params), params.data)
    assert len(frame) == 2000  # duplicates kept: every row is judged
    assert frame["total_charges"].dtype == "float64"  # text with blanks, as in ingest
    assert frame["payment_method"].isna().sum() > 0  # the '?' marker is missing
    assert "?" not in set(frame["payment_method"].dropna())
    assert set(frame["_label"]) == {"Yes", "No"}
