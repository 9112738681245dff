"""Retraining: labelled production rows become a new data partition, then `dvc repro`.

Raw data is immutable. The rows whose labels arrived (``POST /feedback``) since the last
partition are written as one new file, ``data/partitions/feedback-<time>.parquet``, with
the source's columns and types, and tracked by DVC (``dvc add``: a ``.dvc`` file to
commit, the data in the DVC cache). Ingest appends every partition to the source
(``data.partitions``), so ``dvc repro`` reruns the pipeline on the new data version and
the register stage decides: a model that beats the champion on test rows it never saw is
promoted, one that does not stays a challenger. A running service follows the
``champion`` alias and swaps versions without a restart.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cycleml.config import DataParams, Params
from cycleml.data.schema import Schema
from cycleml.files import write_parquet
from cycleml.model.tracking import redact
from cycleml.paths import Paths
from cycleml.serve.labels import allowed, typed_label

__all__ = [
    "PREFIX",
    "RetrainError",
    "RetrainResult",
    "dvc",
    "labelled_predictions",
    "partition_frame",
    "run",
    "watermark",
    "write_partition",
]

log = logging.getLogger(__name__)
PREFIX = "feedback-"
_STAMP = "%Y%m%dT%H%M%S.%fZ"


class RetrainError(ValueError):
    """Nothing (or too little) to retrain on, or the pipeline run failed."""


@dataclass(frozen=True)
class Partition:
    path: Path
    rows: int
    first_label: float
    last_label: float


def watermark(folder: Path) -> float:
    """The time of the newest label already in a partition (0 when there is none)."""
    stamps = []
    for file in folder.glob(f"{PREFIX}*.parquet"):
        try:
            moment = dt.datetime.strptime(file.name[len(PREFIX) : -len(".parquet")], _STAMP)
        except ValueError:
            continue
        stamps.append(moment.replace(tzinfo=dt.UTC).timestamp())
    return max(stamps, default=0.0)


def labelled_predictions(
    url: str, model_name: str, after: float, role: str = "served"
) -> pd.DataFrame:
    """Logged predictions whose label arrived after ``after``: their inputs, the label,
    the request id and the label's time."""
    import orjson
    import sqlalchemy as sa

    from cycleml.serve.predlog import FEEDBACK, PREDICTIONS

    p, f = PREDICTIONS.c, FEEDBACK.c
    query = (
        sa.select(p.request_id, p.inputs, f.label, f.ts)
        .select_from(PREDICTIONS.join(FEEDBACK, p.request_id == f.request_id))
        .where(p.model_name == model_name, f.ts > after)
        .order_by(f.ts)
    )
    if role == "served":
        query = query.where(p.role == "served")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            raw = pd.read_sql(query, conn)
    except sa.exc.OperationalError as err:
        raise RetrainError(
            f"cannot read the prediction log {redact(url)}: {redact(str(err.orig))}"
        ) from None
    finally:
        engine.dispose()
    rows = pd.DataFrame.from_records([orjson.loads(t) for t in raw["inputs"]])
    rows["_label"] = [orjson.loads(t) for t in raw["label"]]
    rows["_request_id"] = raw["request_id"].to_numpy()
    rows["_label_ts"] = raw["ts"].to_numpy()
    return rows


def _known_labels(rows: pd.DataFrame, paths: Paths) -> pd.DataFrame:
    """The rows whose label the schema knows, typed as it says; others (stored before
    /feedback checked labels) are skipped with a warning: one would fail validate."""
    if rows.empty or not paths.schema.exists():
        return rows
    from cycleml.files import read_json

    schema = Schema.model_validate(read_json(paths.schema))
    typed = pd.Series([typed_label(schema, v) for v in rows["_label"]], index=rows.index)
    if typed.isna().any():
        log.warning(
            "feedback labels: %d stored label(s) are not %s; skipped",
            int(typed.isna().sum()),
            allowed(schema),
        )
    return rows[typed.notna()].assign(_label=typed[typed.notna()])


def partition_frame(rows: pd.DataFrame, data: DataParams, raw: Path) -> pd.DataFrame:
    """Labelled rows as a table of the source's shape: its column names and types, the
    label in ``data.target``, a missing id filled with the request id."""
    out = rows.drop(columns=[c for c in rows.columns if c.startswith("_")]).copy()
    out[data.target] = rows["_label"].to_numpy()
    for col in data.id_columns:
        if col not in out or out[col].isna().any():
            fill = rows["_request_id"].astype(str)
            out[col] = out[col].fillna(fill) if col in out else fill
    if raw.exists():
        import pyarrow.parquet as pq

        types = pq.read_schema(raw)
        for name in types.names:
            if name not in out.columns:
                continue
            kind = types.field(name).type
            if str(kind).startswith("timestamp"):
                out[name] = pd.to_datetime(out[name], errors="coerce")
            elif str(kind) in {"double", "float", "int64", "int32"} and name not in data.id_columns:
                out[name] = pd.to_numeric(out[name], errors="coerce")
    return out


def write_partition(folder: Path, frame: pd.DataFrame, label_times: np.ndarray) -> Partition:
    """Write ``frame`` as a new partition named after its newest label's time."""
    last = float(np.max(label_times))
    # rounded up past the microseconds the name can hold, so the watermark read back from
    # the name is never below the newest label it holds (that label is not exported twice)
    stamp = dt.datetime.fromtimestamp((math.ceil(last * 1e6) + 1) / 1e6, dt.UTC).strftime(_STAMP)
    path = folder / f"{PREFIX}{stamp}.parquet"
    if path.exists():
        raise RetrainError(f"{path} exists already: these labels are in a partition")
    write_parquet(path, frame)
    return Partition(path, len(frame), float(np.min(label_times)), last)


def dvc(root: Path, *args: str, quiet: bool = False) -> None:
    """Run ``dvc <args>`` in ``root`` with this environment's tools first on PATH; with
    ``quiet`` its output is kept and shown only when it fails."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CYCLEML_ROOT", None)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=env,
        check=False,
        capture_output=quiet,
        text=True,
    )
    if done.returncode:
        tail = (done.stdout or "")[-2000:] + (done.stderr or "")[-2000:] if quiet else ""
        raise RetrainError(
            f"`dvc {' '.join(args)}` failed (exit {done.returncode})"
            + (f":\n{tail}" if tail else "; see above")
        )


@dataclass(frozen=True)
class RetrainResult:
    partition: Partition
    versioned: bool
    """Whether ``dvc add`` tracks the partition (the project is a DVC repository)."""
    decision: dict[str, Any] | None
    """reports/register.json after the pipeline ran (None with ``repro=False``)."""


def run(params: Params, paths: Paths, *, repro: bool = True, quiet: bool = False) -> RetrainResult:
    """New labelled predictions -> a partition (``dvc add``) -> ``dvc repro``.

    Raises:
        RetrainError: fewer than ``retrain.min_rows`` new labelled rows (nothing is
            written), or a DVC command failed.
    """
    from cycleml.files import read_json

    folder = paths.root / params.data.partitions.dir
    rows = labelled_predictions(
        paths.database_url(params.serving.prediction_log),
        params.register_.model_name,
        watermark(folder),
        params.retrain.role,
    )
    rows = _known_labels(rows, paths)
    if len(rows) < params.retrain.min_rows:
        raise RetrainError(
            f"{len(rows):,} new labelled prediction(s) since the last partition, fewer than "
            f"retrain.min_rows={params.retrain.min_rows}; wait for more feedback"
        )
    frame = partition_frame(rows, params.data, paths.raw)
    part = write_partition(folder, frame, rows["_label_ts"].to_numpy())
    versioned = (paths.root / ".dvc").is_dir()
    if versioned:
        dvc(paths.root, "add", "--quiet", str(part.path.relative_to(paths.root)), quiet=quiet)
    decision = None
    if repro:
        dvc(paths.root, "repro", quiet=quiet)
        decision = read_json(paths.report("register.json"))
    return RetrainResult(part, versioned, decision)
