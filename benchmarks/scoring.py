"""Scoring without HTTP: one record in process, and a large file in batch.

* in process: the champion's compiled scorer on one record (a dict, as the service gets
  it) against ``Pipeline.predict_proba`` on a one-row DataFrame; p50 over many records.
* batch: ``cycleml predict`` Parquet -> Parquet on ``batch_rows`` demo rows (raw, as a
  file would hold them) against ``Pipeline.predict_proba`` on the same rows already in
  memory, each in a fresh process: rows/s and the process's peak resident memory.
  ``cycleml predict`` reports its scoring time (read, score, write); the command's wall
  time, interpreter start and model loading included, is reported beside it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import BIN, Size, median, median_of, repeat, run

_PIPELINE = """
import json, sys, time
from pathlib import Path
import mlflow.artifacts, pandas as pd
from cycleml.data.schema import Schema
from cycleml.model.loading import load_pipeline
name, source, schema_file = sys.argv[1:]
local = mlflow.artifacts.download_artifacts(f"models:/{name}@champion")
pipeline = load_pipeline(Path(local), f"{name} @champion")
schema = Schema.model_validate_json(open(schema_file).read())
frame = pd.read_parquet(source)[schema.inputs]
from cycleml.scoring.inputs import prepare_inputs
frame = prepare_inputs(frame, schema)  # the ingest text rules, as predict applies them
started = time.perf_counter()
pipeline.predict_proba(frame)
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(frame)}))
"""


def in_process(project: Path, size: Size, model_name: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    from cycleml.scoring.loaded import load_model

    model = load_model(MlflowClient(f"sqlite:///{project / 'mlflow.db'}"), model_name)
    test = pd.read_parquet(project / "data" / "split" / "test.parquet")
    records = json.loads(test[model.schema.inputs].to_json(orient="records", date_format="iso"))
    records = (records * (size.in_process_records // len(records) + 1))[: size.in_process_records]
    frames = [pd.DataFrame([r]) for r in records[: max(10, len(records) // 10)]]

    def p50(score: Any, items: list[Any]) -> float:
        for item in items[:20]:  # warm-up
            score(item)
        times = []
        for item in items:
            started = time.perf_counter()
            score(item)
            times.append(time.perf_counter() - started)
        return float(np.percentile(times, 50) * 1000)

    scorer, pipeline = model.scorer, model.pipeline
    return {
        "scorer": scorer.kind,
        "trees": int(pipeline.steps[-1][1].get_booster().num_boosted_rounds()),
        "cycleml_p50_ms": median(
            repeat(size.repeats, lambda: p50(lambda r: scorer.records([r]), records))
        ),
        "pipeline_p50_ms": median(
            repeat(
                size.repeats,
                lambda: p50(lambda f: pipeline.predict_proba(f[model.schema.inputs]), frames),
            )
        ),
        "records": len(records),
    }


def batch_file(folder: Path, size: Size) -> Path:
    """``size.batch_rows`` raw demo rows in a Parquet file, as a client's file would hold them."""
    from cycleml.data.demo import generate_churn

    source = folder / "batch.parquet"
    if not source.exists():
        generate_churn(size.batch_rows, seed=123).to_parquet(source, index=False)
    return source


def predict_file(project: Path, source: Path, output: Path) -> dict[str, Any]:
    """``cycleml predict SOURCE OUTPUT`` in a fresh process: its own scoring rate (read,
    score, write), the command's wall time and its peak memory."""
    done = run([str(BIN / "cycleml"), "predict", str(source), str(output)], project)
    found = re.search(r"([\d,.]+) s, ([\d,]+) rows/s", done.output)
    if found is None:
        raise RuntimeError(f"cycleml predict said:\n{done.output}")
    return {
        "rows_per_s": float(found.group(2).replace(",", "")),
        "scoring_s": float(found.group(1).replace(",", "")),
        "wall_s": done.seconds,
        "peak_mb": done.peak_mb,
    }


def predict_rate(project: Path, source: Path, output: Path) -> float:
    """Rows per second of one ``cycleml predict`` run (its scoring time)."""
    return float(predict_file(project, source, output)["rows_per_s"])


def batch(project: Path, size: Size, model_name: str, folder: Path) -> dict[str, Any]:
    source = batch_file(folder, size)
    schema_file = project / "data" / "interim" / "schema.json"

    def cycleml() -> dict[str, Any]:
        found = predict_file(project, source, folder / "out.parquet")
        return {**found, "wall_rows_per_s": size.batch_rows / found["wall_s"]}

    def pipeline() -> dict[str, Any]:
        done = run(
            [sys.executable, "-c", _PIPELINE, model_name, str(source), str(schema_file)],
            project,
            {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"},
        )
        result = json.loads(done.output.strip().splitlines()[-1])
        return {"rows_per_s": result["rows"] / result["seconds"], "peak_mb": done.peak_mb}

    mine, theirs = [], []
    for _ in range(size.repeats):
        mine.append(cycleml())
        theirs.append(pipeline())
    return {"rows": size.batch_rows, "cycleml": median_of(mine), "pipeline": median_of(theirs)}
