"""Batch scoring throughput and memory: the champion over a large demo file.

Run from the project root after `make run` (a champion must be registered):

    .venv/bin/python benchmarks/bench_batch.py [--rows 300000] [--chunk-rows 50000]

Each case runs in a fresh interpreter, so its peak-memory growth is its own: one with
``--chunk-rows`` per format, and one scoring the whole file as a single chunk, which is
what reading the file and its predictions at once costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_CASE = """
import json, sys
from cycleml.batch import load_model, predict_file
from cycleml.config import load_params
from cycleml.paths import project_paths
from cycleml.tracking import configure

params = load_params(project_paths().params)
model = load_model(configure(params.tracking, project_paths()), params.register_.model_name)
source, target, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
report = predict_file(source, target, model, chunk_rows=chunk, progress=False,
                      na_values=params.data.clean.na_values)
print(json.dumps({"rows": report.rows, "seconds": report.seconds,
                  "rows_per_s": report.rows_per_second, "peak_mb": report.peak_rss_delta_mb}))
"""


def case(source: Path, target: Path, chunk_rows: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CASE, str(source), str(target), str(chunk_rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()

    from cycleml.demo import generate_churn

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame = generate_churn(args.rows, seed=11)
        frame.to_parquet(folder / "in.parquet", index=False)
        frame.to_csv(folder / "in.csv", index=False)
        del frame
        cases = [
            ("parquet -> parquet", "in.parquet", "out.parquet", args.chunk_rows),
            ("csv -> csv", "in.csv", "out.csv", args.chunk_rows),
            ("parquet, one chunk", "in.parquet", "whole.parquet", args.rows),
        ]
        print(f"{'case':<20} {'chunk':>9} {'rows':>10} {'s':>6} {'rows/s':>9} {'peak MB':>8}")
        for label, source, target, chunk in cases:
            r = case(folder / source, folder / target, chunk)
            print(
                f"{label:<20} {chunk:>9,} {r['rows']:>10,.0f} {r['seconds']:>6.1f} "
                f"{r['rows_per_s']:>9,.0f} {r['peak_mb']:>+8.0f}"
            )


if __name__ == "__main__":
    main()
