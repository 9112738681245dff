"""`cycleml monitor` on large windows: time and peak memory.

Run from the project root after `make run` (a champion with a reference profile):

    .venv/bin/python benchmarks/bench_monitor.py [--rows 1000000]

Two windows of demo customers (a price rise, so there is drift to find), each monitored
by the real command in a fresh process with its outputs in a temporary project root:

* ``log``: a prediction log (SQLite) holding ``--rows`` served predictions, a fifth of
  them labelled, read by ``cycleml monitor --last N``;
* ``file``: the same customers as a Parquet file, scored by the champion first
  (``cycleml monitor --current``).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml


def populate_log(db: Path, frame: object, params: object) -> None:
    """``frame``'s rows as served predictions of the champion, as the service logs them."""
    import numpy as np
    import pandas as pd

    from cycleml.model.tracking import configure
    from cycleml.paths import project_paths
    from cycleml.scoring.batch import score_table
    from cycleml.scoring.loaded import load_model
    from cycleml.serve.predlog import PredictionLog

    assert isinstance(frame, pd.DataFrame)
    model = load_model(configure(params.tracking, project_paths()), params.register_.model_name)  # type: ignore[attr-defined]
    PredictionLog(f"sqlite:///{db}").close()  # the tables
    scored = score_table(frame, model).to_pandas()
    inputs = frame[model.schema.inputs].astype(object).where(frame.notna(), None)
    texts = inputs.to_json(orient="records", lines=True, date_format="iso").splitlines()
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    classes = model.schema.classes
    outputs = [
        json.dumps(
            {"prediction": p, "probabilities": {c: float(row[i]) for i, c in enumerate(classes)}}
        )
        for p, row in zip(
            scored["prediction"],
            scored[[f"probability_{c}" for c in classes]].to_numpy(),
            strict=True,
        )
    ]
    now = time.time()
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO predictions VALUES (?, ?, ?, ?, 'served', ?, ?, ?)",
            (
                (i, now, model.name, model.version, t, json.dumps(p), o)
                for i, t, p, o in zip(ids, texts, scored["prediction"], outputs, strict=True)
            ),
        )
        labelled = np.arange(0, len(frame), 5)
        conn.executemany(
            "INSERT INTO feedback VALUES (?, ?, ?)",
            ((ids[k], now, json.dumps(str(frame["churn"].iloc[k]))) for k in labelled),
        )


def monitor(root: Path, params_file: Path, *args: str) -> dict[str, float]:
    """One `cycleml monitor` process: wall time and its own peak resident memory."""
    import os

    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "cycleml"),
                "monitor",
                "-p",
                str(params_file),
                *args,
            ],
            env={**os.environ, "CYCLEML_ROOT": str(root)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if child.returncode not in (0, 3, 4):
            out.seek(0)
            sys.exit(out.read().decode(errors="replace")[-4000:])
    summary = json.loads((root / "reports" / "monitor.json").read_text())
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "verdict": summary["verdict"]}


def prepare(root: Path, rows: int) -> None:
    """The window as a log and as a file, in ``root`` (run in its own process, so the
    measured processes do not inherit its memory through fork)."""
    from cycleml.config import load_params
    from cycleml.data.cleaning import clean
    from cycleml.data.demo import generate_churn
    from cycleml.paths import project_paths

    paths = project_paths()
    params = load_params(paths.params)
    raw = yaml.safe_load(paths.params.read_text())
    raw["tracking"]["tracking_uri"] = paths.database_url(params.tracking.tracking_uri)
    raw["serving"]["prediction_log"] = f"sqlite:///{root / 'log.db'}"
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    frame, _ = clean(generate_churn(rows, 31, "price_rise"), params.data)
    frame.to_parquet(root / "window.parquet", index=False)
    start = time.perf_counter()
    populate_log(root / "log.db", frame, params)
    print(f"prepared a {len(frame):,}-row log in {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(
            [sys.executable, __file__, "--prepare", str(root), "--rows", str(args.rows)],
            check=True,
        )
        cases = [
            ("log", ("--last", str(args.rows))),
            ("file", ("--current", str(root / "window.parquet"))),
        ]
        print(f"{'window':<8} {'rows':>10} {'s':>7} {'peak MB':>8}  verdict")
        for label, extra in cases:
            r = monitor(root, root / "params.yaml", *extra)
            size = f"{args.rows:>10,} {r['seconds']:>7.1f} {r['peak_mb']:>8,.0f}"
            print(f"{label:<8} {size}  {r['verdict']}")


if __name__ == "__main__":
    main()
