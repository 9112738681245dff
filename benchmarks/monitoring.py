"""Monitoring: `cycleml monitor` on a window of 1M rows x 30 columns against a 1M-row
reference: time and peak memory of the real command, in a fresh process.

A second project is trained on demo customers widened to 30 input columns (twelve more
usage and segment columns, eight numeric and four categorical). Its reference profile
is then replaced by ``monitor_reference_rows`` held-out-like rows scored by its champion,
and the window is a Parquet file of ``monitor_rows`` customers after a price rise (so
there is drift to find), which `cycleml monitor --current` reads, cleans and scores.
Each run is repeated beside a busy process (see ``benchmarks/neighbour.py``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from benchmarks.common import BIN, REPO, Size, median, median_of, run
from benchmarks.neighbour import busy_neighbour
from cycleml.names import STAGES

_STAGES = tuple(s for s in STAGES if s not in ("explore", "tune"))


def wide_churn(rows: int, seed: int, scenario: str = "none") -> pd.DataFrame:
    """Demo customers with twelve more columns: 18 + 12 = 30 model inputs."""
    from cycleml.data.demo import generate_churn

    frame = generate_churn(rows, seed, scenario)
    rng = np.random.default_rng(seed + 1)
    tenure = pd.to_numeric(frame["tenure_months"], errors="coerce").fillna(0).to_numpy()
    for i in range(8):
        frame[f"usage_{i + 1}"] = (rng.gamma(2.0, 10.0, rows) + 0.1 * i * tenure).round(2)
    for i, levels in enumerate((3, 5, 8, 12)):
        frame[f"segment_{i + 1}"] = rng.choice([f"s{k}" for k in range(levels)], rows)
    return frame


def make_project(root: Path, size: Size) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data = root / "data" / "external" / "wide.parquet"
    data.parent.mkdir(parents=True)
    wide_churn(size.monitor_train_rows, seed=7).to_parquet(data, index=False)
    raw["data"]["source"] = {"kind": "file", "path": "data/external/wide.parquet"}
    raw["tune"]["enabled"] = False
    raw["train"]["xgboost"]["n_estimators"] = 100
    # the model only has to exist: no gate may keep it out of the registry
    raw["register"]["criteria"] = {}
    raw["register"]["beat_baseline_by"] = None
    raw["evaluate"]["fairness"]["sensitive"] = []
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    for stage in _STAGES:
        run([str(BIN / "cycleml"), stage], root)
    return root


def _big_reference(root: Path, size: Size) -> int:
    """Replace the champion's reference profile with ``monitor_reference_rows`` rows."""
    from mlflow import MlflowClient

    from cycleml.config import load_params
    from cycleml.data.cleaning import clean
    from cycleml.monitor.reference import profile
    from cycleml.names import REFERENCE_ARTIFACT as ARTIFACT
    from cycleml.scoring.loaded import load_model

    params = load_params(root / "params.yaml")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    model = load_model(client, params.register_.model_name)
    frame, _ = clean(wide_churn(size.monitor_reference_rows, seed=41), params.data)
    reference = profile(frame, model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARTIFACT
        reference.to_parquet(path, index=False)
        client.log_artifact(model.run_id, str(path))
    return len(model.schema.inputs)


def _monitor(root: Path, window: Path) -> dict[str, Any]:
    # exit 3 (drift) is the expected verdict after a price rise
    done = run([str(BIN / "cycleml"), "monitor", "--current", str(window)], root, ok=(0, 3, 4))
    verdict = json.loads((root / "reports" / "monitor.json").read_text(encoding="utf-8"))
    return {"seconds": done.seconds, "peak_mb": done.peak_mb, "verdict": verdict["verdict"]}


def measure(root: Path, size: Size) -> dict[str, Any]:
    make_project(root, size)
    inputs = _big_reference(root, size)
    window = root / "window.parquet"
    wide_churn(size.monitor_rows, seed=43, scenario="price_rise").to_parquet(window, index=False)
    results, beside = [], []
    for _ in range(size.repeats):
        results.append(_monitor(root, window))
        with busy_neighbour():  # the same command with one core taken (issue 20)
            beside.append(_monitor(root, window)["seconds"])
    out = median_of(results)
    out["neighbour_seconds"] = median(beside)
    out.update(
        rows=size.monitor_rows, reference_rows=size.monitor_reference_rows, input_columns=inputs
    )
    return out
