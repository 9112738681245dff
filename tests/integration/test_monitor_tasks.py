"""`cycleml monitor` for every task, on public tables shipped with scikit-learn: a
regression (the diabetes table) and a multiclass classification (the wine table, its
classes as text), each trained by the real stages, then monitored from a ``--current``
file with a target column and from a prediction log whose labels were stored as
/feedback stores them (JSON, typed by the model's schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cycleml.config import Params
from cycleml.model.tracking import configure
from cycleml.monitor import check as mon
from cycleml.monitor.window import load_seen_rows
from cycleml.scoring.loaded import LoadedModel, load_model
from cycleml.serve.labels import check_labels
from cycleml.serve.predlog import PredictionLog
from cycleml.serve.served import Served, score
from tests.conftest import STAGES, Project, module_project, small_params

pytestmark = pytest.mark.integration


def _train(project: Project, table: pd.DataFrame, **overrides: object) -> Params:
    """``table`` as the project's CSV source (target ``target``, no id columns), trained
    and registered by the real stages (explore left out: nothing later reads it)."""
    source = project.root / "table.csv"
    table.to_csv(source, index=False)
    raw = small_params(**overrides)
    raw["data"] = {
        "source": {"kind": "file", "path": str(source)},
        "target": "target",
        "positive_class": None,
        "id_columns": [],
    }
    params = project.write_params(raw)
    project.run_stages(params, *(s for s in STAGES if s != "explore"))
    return params


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Params]]:
    from sklearn.datasets import load_diabetes

    with module_project(tmp_path_factory, "diabetes") as project:
        table = load_diabetes(as_frame=True).frame  # 442 rows, a numeric target
        yield project, _train(project, table, split__strategy="random")


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Params]]:
    from sklearn.datasets import load_wine

    with module_project(tmp_path_factory, "wine") as project:
        loaded = load_wine(as_frame=True)
        table = loaded.frame.assign(target=loaded.target_names[loaded.target])
        # 178 rows: windows of the whole table are judged
        yield project, _train(project, table, monitor__min_rows=50, monitor__min_labelled=50)


def _champion(project: Project, params: Params) -> LoadedModel:
    client = configure(params.tracking, project.paths)
    return load_model(client, params.register_.model_name, "@champion")


def _check(project: Project, params: Params, frame: pd.DataFrame) -> mon.MonitorResult:
    model = _champion(project, params)
    client = configure(params.tracking, project.paths)
    result, _ = mon.check(
        pd.read_parquet(project.paths.reference),
        frame,
        model,
        params.monitor,
        window="test",
        reports_dir=project.root / "reports",
        seen=load_seen_rows(client, model.run_id),
    )
    return result


def _served_log(project: Project, params: Params, rows: pd.DataFrame, labels: list[object]) -> str:
    """``rows`` answered by the champion into a prediction log, then ``labels`` recorded
    for them as /feedback records them (typed by the schema, stored as JSON)."""
    model = _champion(project, params)
    url = project.paths.database_url(f"sqlite:///log-{len(rows)}-{id(labels)}.db")
    log = PredictionLog(url, flush_seconds=0.05)
    records = rows[model.schema.inputs].astype(object).where(rows.notna(), None)
    inputs = records.to_dict(orient="records")
    answers = score(Served(**vars(model)), inputs)
    log.add(model.name, inputs, answers)
    log.flush()
    typed = check_labels(model.schema, labels)
    log.record_labels([(a["request_id"], t) for a, t in zip(answers, typed, strict=True)])
    log.close()
    return url


def _from_log(project: Project, params: Params, url: str) -> pd.DataFrame:
    model = _champion(project, params)
    frame, _ = mon.from_log(url, model.name, lambda _: model)
    return frame


def test_regression_from_a_file_with_its_target(diabetes: tuple[Project, Params]) -> None:
    """The rows the model trained on, as a --current file: it fits them better than the
    held-out reference, and the change reads "better" (rmse went down)."""
    project, params = diabetes
    path = project.root / "trained-rows.parquet"
    pd.read_parquet(project.paths.split("train")).to_parquet(path)
    client = configure(params.tracking, project.paths)
    result = mon.run(params, project.paths, client, current=path)
    assert result.labelled_rows == result.rows > params.monitor.min_rows
    rmse = result.quality["metrics"]["rmse"]
    assert rmse["current"] < rmse["reference"]
    assert rmse["change"].endswith("% better") and not result.quality["degraded"]
    lines = "\n".join(mon.describe(result))
    assert "% better" in lines and "-" not in rmse["change"]
    assert "rows the model trained on: not checked (no data.id_columns" in lines
    assert Path(result.reports["quality"]).stat().st_size > 10_000  # Evidently's report
    assert result.verdict in {mon.OK, mon.DRIFT}


def test_regression_from_served_traffic_with_feedback_labels(
    diabetes: tuple[Project, Params],
) -> None:
    """Labels of a changed relation (the target rose by half) make the model worse."""
    project, params = diabetes
    rows = pd.read_csv(project.root / "table.csv")
    labels = (rows["target"] * 1.5 + 40).tolist()
    frame = _from_log(project, params, _served_log(project, params, rows, labels))
    assert frame["_label"].notna().all()
    result = _check(project, params, frame)
    assert result.verdict == mon.DEGRADED and result.exit_code == 4
    assert "rmse" in result.quality["degraded"]
    assert result.quality["metrics"]["rmse"]["change"].endswith("% worse")
    mean = result.quality["labels"]["mean"]
    assert mean["current"] == pytest.approx(np.mean(labels))


def test_multiclass_from_a_file_with_text_classes(wine: tuple[Project, Params]) -> None:
    project, params = wine
    model = _champion(project, params)
    assert model.schema.classes == ["class_0", "class_1", "class_2"]
    frame = mon.from_file(project.root / "table.csv", model, params.data)
    result = _check(project, params, frame)
    assert result.labelled_rows == result.rows == 178
    assert set(result.quality["metrics"]) >= {"roc_auc", "log_loss"}
    assert set(result.quality["labels"]) == {"class_0", "class_1", "class_2"}
    assert Path(result.reports["quality"]).stat().st_size > 10_000
    assert result.verdict != mon.TOO_SMALL


def test_multiclass_from_served_traffic_with_feedback_labels(wine: tuple[Project, Params]) -> None:
    project, params = wine
    rows = pd.read_csv(project.root / "table.csv")
    frame = _from_log(project, params, _served_log(project, params, rows, list(rows["target"])))
    result = _check(project, params, frame)
    assert result.labelled_rows == 178
    shares = result.quality["labels"]
    assert shares["class_1"]["current"] == pytest.approx((rows["target"] == "class_1").mean())
    assert "roc_auc" in result.quality["metrics"]


def test_multiclass_window_without_one_class(wine: tuple[Project, Params]) -> None:
    """A window whose labels hold two of the three classes: the metrics cover the classes
    present; Evidently's report, which fails on an absent class, is left out and said so."""
    project, params = wine
    rows = pd.read_csv(project.root / "table.csv")
    path = project.root / "two-classes.csv"
    rows[rows["target"] != "class_2"].to_csv(path, index=False)
    frame = mon.from_file(path, _champion(project, params), params.data)
    result = _check(project, params, frame)
    assert result.quality["labels"]["class_2"]["current"] == 0
    assert "log_loss" in result.quality["metrics"] and "quality" not in result.reports
    assert any("no labelled row of class(es) class_2" in note for note in result.notes)
