"""`cycleml retrain`: labelled predictions become an immutable partition that ingest
appends; a worse dataset does not replace the champion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cycleml.config import Params
from cycleml.data.cleaning import clean
from cycleml.data.demo import generate_churn
from cycleml.data.sources import IngestError
from cycleml.model.registry import champion_version
from cycleml.model.tracking import configure
from cycleml.monitor import retrain
from cycleml.scoring.loaded import load_model
from cycleml.serve.predlog import PredictionLog
from cycleml.serve.served import Served, score
from cycleml.stages.ingest import run as ingest
from tests.conftest import Project, small_params

pytestmark = pytest.mark.integration


def log_traffic(project: Project, params: Params, rows: int, seed: int, shuffle: bool) -> int:
    """Serve demo customers with the champion, log them, post their labels (shuffled:
    a dataset whose labels say nothing)."""
    client = configure(params.tracking, project.paths)
    served = Served(**vars(load_model(client, params.register_.model_name, "@champion")))
    frame, _ = clean(generate_churn(rows, seed, "none"), params.data)
    frame["customer_id"] = [f"N{seed}-{i}" for i in range(len(frame))]
    records = frame[[*served.schema.inputs, "customer_id"]]
    records = records.astype(object).where(records.notna(), None).to_dict(orient="records")
    truth = frame["churn"].to_numpy()
    if shuffle:
        truth = np.random.default_rng(seed).permutation(truth)
    log = PredictionLog(project.paths.database_url(params.serving.prediction_log), 0.05)
    answers = score(served, records)
    log.add(served.name, records, answers)
    log.flush()
    for answer, label in zip(answers, truth, strict=True):
        log.feedback(answer["request_id"], str(label))
    log.close()
    return len(answers)


def test_partition_has_the_source_shape_and_too_few_rows_write_nothing(
    project: Project,
) -> None:
    params = project.write_params(small_params(rows=1500, retrain__min_rows=5000))
    project.run_stages(params)
    logged = log_traffic(project, params, 600, seed=11, shuffle=False)
    folder = project.root / "data" / "partitions"

    with pytest.raises(retrain.RetrainError, match="retrain.min_rows=5000"):
        retrain.run(params, project.paths, repro=False)
    assert not folder.exists() or not list(folder.glob("*.parquet"))

    params = project.write_params(small_params(rows=1500, retrain__min_rows=100))
    done = retrain.run(params, project.paths, repro=False)
    assert done.partition.rows == logged and done.decision is None
    part = pd.read_parquet(done.partition.path)
    raw = pd.read_parquet(project.paths.raw)
    assert set(part.columns) <= set(raw.columns) and "churn" in part.columns
    assert part["customer_id"].str.startswith("N11-").all()
    assert part["signup_date"].dtype == raw["signup_date"].dtype
    assert part["monthly_charges"].dtype == "float64"
    assert set(part["churn"]) <= {"Yes", "No"}

    # the same labels are never exported twice
    with pytest.raises(retrain.RetrainError, match="0 new labelled"):
        retrain.run(params, project.paths, repro=False)

    report = ingest(params, project.paths)
    assert report.partitions == {done.partition.path.name: logged}
    assert len(pd.read_parquet(project.paths.raw)) == len(raw) + logged


def test_ingest_reads_partitions_only_when_told_and_refuses_unknown_columns(
    project: Project,
) -> None:
    folder = project.root / "data" / "partitions"
    params = project.write_params(small_params(rows=500, data__partitions__use_source=False))
    with pytest.raises(IngestError, match="holds no partition; run `cycleml retrain`"):
        ingest(params, project.paths)

    folder.mkdir(parents=True)
    generate_churn(300, 5, "none").to_parquet(folder / "feedback-20260101T000000.000000Z.parquet")
    assert ingest(params, project.paths).rows_read == 300

    params = project.write_params(small_params(rows=500))
    extra = generate_churn(100, 6, "none").assign(loyalty_card="gold")
    extra.to_parquet(folder / "feedback-20260102T000000.000000Z.parquet")
    with pytest.raises(IngestError, match=r"loyalty_card.*not in data.source"):
        ingest(params, project.paths)


def test_a_worse_dataset_does_not_replace_the_champion(project: Project) -> None:
    params = project.write_params(small_params(rows=2000, retrain__min_rows=100))
    project.run_stages(params)
    client = configure(params.tracking, project.paths)
    name = params.register_.model_name
    assert champion_version(client, name) == "1"

    log_traffic(project, params, 1500, seed=12, shuffle=True)
    retrain.run(params, project.paths, repro=False)
    params = project.write_params(
        small_params(rows=2000, retrain__min_rows=100, data__partitions__use_source=False)
    )
    results = project.run_stages(params)  # what `dvc repro` runs, in process
    decision = results["register"]
    assert champion_version(client, name) == "1"
    assert not (decision.registered and decision.alias == "champion")
    assert decision.reasons  # it says why
    assert Path(project.root / "reports" / "register.json").exists()
