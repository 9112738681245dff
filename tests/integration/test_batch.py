"""Batch scoring with the registered champion, against a real MLflow store."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from cycleml.model.pipeline import predict_scores
from cycleml.model.registry import champion_version
from cycleml.model.tracking import tracking_uri
from cycleml.scoring.batch import BatchError, predict_file
from cycleml.scoring.loaded import LoadedModel, load_model
from cycleml.scoring.runtime import PipelineScorer
from tests.conftest import Project, houses_csv, small_params

pytestmark = pytest.mark.integration

STAGES = ("ingest", "validate", "split", "frame", "train", "evaluate", "register")


def trained(project: Project) -> tuple[MlflowClient, LoadedModel]:
    """Run the pipeline (a champion is registered) and load the champion for scoring."""
    params = project.write_params(small_params())
    project.run_stages(params, *STAGES)
    client = MlflowClient(tracking_uri(params.tracking, project.paths))
    return client, load_model(client, params.register_.model_name)


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"customer_id": str, "model_version": str})


def test_predictions_equal_the_in_process_pipeline(project: Project) -> None:
    client, model = trained(project)
    assert model.alias == "champion"
    assert model.version == champion_version(client, model.name)
    assert model.schema.is_binary and 0 < model.threshold < 1
    # registration compiled and verified a scorer, saved with the version; batch uses it
    assert model.scorer.kind == "compiled"
    assert model.tags["cycleml.scorer"] == "compiled"
    assert int(model.tags["cycleml.scorer.rows_checked"]) > 0
    test = pd.read_parquet(project.paths.split("test"))
    scores = predict_scores(model.pipeline, model.schema, test)
    negative, positive = model.schema.classes
    labels = np.where(scores[:, 1] >= model.threshold, positive, negative)

    test_csv = project.root / "test.csv"
    test.to_csv(test_csv, index=False)
    for source, target in [
        (project.paths.split("test"), project.root / "out" / "p.parquet"),
        (test_csv, project.root / "out" / "p.csv"),
        (test_csv, project.root / "out" / "from_csv.parquet"),
    ]:
        report = predict_file(source, target, model, chunk_rows=64, progress=False)
        out = read(target)
        assert report.rows == len(out) == len(test), target
        assert list(out.columns) == [
            "customer_id",
            "prediction",
            *(f"probability_{c}" for c in model.schema.classes),
            "model_name",
            "model_version",
        ]
        assert out["customer_id"].tolist() == test["customer_id"].tolist()  # ids, in order
        for i, label in enumerate(model.schema.classes):
            np.testing.assert_allclose(out[f"probability_{label}"], scores[:, i], rtol=1e-12)
        assert out["prediction"].tolist() == labels.tolist()
        assert set(out["model_version"]) == {model.version}
        assert set(out["model_name"]) == {model.name}


def test_a_messy_csv_is_cleaned_as_ingest_cleaned_the_training_data(project: Project) -> None:
    """Regression from a ';'-separated file with '?' markers and numbers stored as text."""
    raw = small_params()
    source = houses_csv(project.root / "houses.csv")
    raw["data"] = {"source": {"kind": "file", "path": str(source)}, "target": "price"}
    raw["split"]["strategy"] = "random"
    params = project.write_params(raw)
    project.run_stages(params, *STAGES)
    client = MlflowClient(tracking_uri(params.tracking, project.paths))
    model = load_model(client, params.register_.model_name)
    assert model.schema.task == "regression"
    assert model.scorer.kind == "compiled"

    target = project.root / "prices.csv"
    report = predict_file(source, target, model, chunk_rows=500, progress=False)
    out = pd.read_csv(target)
    # no id column in the schema: each row's position, so rows match back by number
    assert list(out.columns) == ["row", "prediction", "model_name", "model_version"]
    ingested = pd.read_parquet(project.paths.raw)  # the same rows, cleaned by ingest
    assert report.rows == len(ingested) == len(out)
    assert out["row"].tolist() == list(range(len(out)))
    expected = predict_scores(model.pipeline, model.schema, ingested)
    np.testing.assert_allclose(out["prediction"], expected, rtol=1e-12)


def test_ids_keep_their_type_and_rows_without_ids_get_their_number(project: Project) -> None:
    """Integer ids stay integers from CSV and Parquet into CSV and Parquet, so the output
    merges back on the input (issue 14); ids that are not plain integers stay text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, model = trained(project)
    test = pd.read_parquet(project.paths.split("test")).head(300).drop(columns="churn")
    root = project.root
    numbered = test.assign(customer_id=np.arange(1000, 1000 + len(test)))
    gap = numbered.assign(customer_id=pd.array([None, *numbered["customer_id"][1:]], "Int64"))
    numbered.to_parquet(root / "ids.parquet")
    numbered.to_csv(root / "ids.csv", index=False)
    gap.to_parquet(root / "gap.parquet")
    gap.to_csv(root / "gap.csv", index=False)
    for source in ("ids.parquet", "ids.csv", "gap.parquet", "gap.csv"):
        for target in (root / "out.parquet", root / "out.csv"):
            predict_file(root / source, target, model, chunk_rows=64, progress=False)
            if target.suffix == ".parquet":
                assert pq.read_schema(target).field("customer_id").type == pa.int64(), source
            else:  # as written: 1000, never 1000.0; a missing id stays empty
                lines = target.read_text().splitlines()
                assert [line.split(",")[0] for line in lines[1:3]] == (
                    ["", "1001"] if source.startswith("gap") else ["1000", "1001"]
                ), source
            out = pd.read_parquet(target) if target.suffix == ".parquet" else pd.read_csv(target)
            original = numbered if source.startswith("ids") else gap.dropna()
            merged = original.merge(out, on="customer_id", validate="one_to_one")
            assert len(merged) == len(original), (source, target)

    # leading zeros would not survive an integer: such ids stay text, exactly as written
    zeros = test.assign(customer_id=[f"{i:05d}" for i in range(len(test))])
    zeros.to_csv(root / "zeros.csv", index=False)
    predict_file(root / "zeros.csv", root / "zeros.parquet", model, progress=False)
    out = pd.read_parquet(root / "zeros.parquet")
    assert out["customer_id"].tolist() == zeros["customer_id"].tolist()

    # a file without the id column: each row's position in it, across chunks
    test.drop(columns="customer_id").to_parquet(root / "no_ids.parquet")
    for target in (root / "rows.parquet", root / "rows.csv"):
        predict_file(root / "no_ids.parquet", target, model, chunk_rows=64, progress=False)
        out = pd.read_parquet(target) if target.suffix == ".parquet" else pd.read_csv(target)
        assert list(out.columns)[:2] == ["row", "prediction"]
        assert out["row"].tolist() == list(range(len(test)))


class _FailsOnSecondChunk:
    """A scorer that scores one chunk, then breaks: a failure in the middle of a file."""

    def __init__(self, scorer: Any) -> None:
        self.scorer, self.calls = scorer, 0
        self.kind, self.reason = scorer.kind, scorer.reason

    def _once(self) -> None:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("disk full")

    def frame(self, x: pd.DataFrame) -> Any:
        self._once()
        return self.scorer.frame(x)

    def columns(self, columns: Any, n: int) -> Any:
        self._once()
        return self.scorer.columns(columns, n)


def test_bad_input_writes_nothing(project: Project) -> None:
    _, model = trained(project)
    test = pd.read_parquet(project.paths.split("test"))
    out_dir = project.root / "out"
    out_dir.mkdir()
    for name, drop in [("no_tenure.parquet", "tenure_months"), ("no_contract.csv", "contract")]:
        source = project.root / name
        rows = test.drop(columns=[drop, "churn"])
        if name.endswith(".parquet"):
            rows.to_parquet(source)
        else:
            rows.to_csv(source, index=False)
        with pytest.raises(BatchError, match=rf"{name}.*lacks column\(s\) {drop}"):
            predict_file(source, out_dir / "new.parquet", model, progress=False)
        assert not (out_dir / "new.parquet").exists()

    previous = out_dir / "previous.csv"
    previous.write_text("an earlier output\n")
    with pytest.raises(BatchError, match="tenure_months"):
        predict_file(project.root / "no_tenure.parquet", previous, model, progress=False)
    for scorer in (model.scorer, PipelineScorer(model.pipeline, model.schema)):
        broken = dataclasses.replace(model, scorer=_FailsOnSecondChunk(scorer))
        with pytest.raises(RuntimeError, match="disk full"):
            predict_file(
                project.paths.split("test"), previous, broken, chunk_rows=50, progress=False
            )
    assert previous.read_text() == "an earlier output\n"  # untouched, not half-replaced
    assert sorted(p.name for p in out_dir.iterdir()) == ["previous.csv"]  # no temp files left

    # a folder as OUTPUT is refused before a row is scored, not at the rename at the end
    folder = project.root / "scored.parquet"
    folder.mkdir()
    counted = _FailsOnSecondChunk(model.scorer)
    with pytest.raises(BatchError, match=r"OUTPUT .*scored.parquet is a folder"):
        predict_file(
            project.paths.split("test"),
            folder,
            dataclasses.replace(model, scorer=counted),
            chunk_rows=50,
            progress=False,
        )
    assert counted.calls == 0 and not any(folder.iterdir())


# Scores a file in a fresh interpreter and reports how much its peak memory grew while
# scoring (the model is loaded first), so nothing the test process did earlier hides it.
_MEASURE = """
import dataclasses, json, resource, sys
from mlflow import MlflowClient
from cycleml.scoring.batch import predict_file
from cycleml.scoring.loaded import load_model
uri, name, source, target, chunk, scorer = sys.argv[1:]
model = load_model(MlflowClient(uri), name)
if scorer == "sklearn":  # the Pipeline itself scores
    model = dataclasses.replace(model, scorer=None)
assert model.scorer.kind == scorer
unit = 1 if sys.platform == "darwin" else 1024
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
report = predict_file(source, target, model, chunk_rows=int(chunk), progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
print(json.dumps({"rows": report.rows, "mb": (after - before) / 2**20,
                  "rows_per_s": report.rows_per_second}))
"""


def measure(project: Project, client: MlflowClient, model: LoadedModel, *args: Any) -> Any:
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, client.tracking_uri, model.name, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=project.root,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_large_file_is_scored_in_bounded_memory(project: Project) -> None:
    pytest.importorskip("resource")
    from cycleml.data.demo import generate_churn

    client, model = trained(project)
    rows = 300_000
    source = project.root / "big.parquet"
    generate_churn(rows, seed=11).to_parquet(source, index=False)  # raw: "?" markers and all
    target = project.root / "scored.parquet"

    chunked = measure(project, client, model, source, target, 50_000, "sklearn")
    assert chunked["rows"] == rows
    assert pd.read_parquet(target, columns=["prediction"])["prediction"].notna().all()
    whole = measure(project, client, model, source, project.root / "whole.parquet", rows, "sklearn")
    # chunks of 50k rows need a fraction of what the whole file and its predictions take
    # (measured: about 230 MB against 740 MB)
    assert chunked["mb"] < 400, chunked
    assert chunked["mb"] < 0.6 * whole["mb"], (chunked, whole)
    # the compiled scorer's Arrow path needs less than the Pipeline's, chunked or not
    # (measured: no growth above what loading the model took)
    fast = measure(project, client, model, source, target, 50_000, "compiled")
    fast_whole = measure(project, client, model, source, target, rows, "compiled")
    assert fast["rows"] == rows
    assert fast["mb"] <= chunked["mb"] and fast_whole["mb"] < 0.6 * whole["mb"], (fast, whole)
