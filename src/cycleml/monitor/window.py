"""The two sides a check compares, read: the current window (the prediction log by row
count, time or model version, or a ``--current`` file scored with a registered version),
made ready for the checks, and that version's reference profile."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cycleml.config import DataParams
from cycleml.data.schema import Schema
from cycleml.model.tracking import redact
from cycleml.monitor.reference import canonical_target, with_predictions
from cycleml.monitor.result import MonitorError
from cycleml.names import REFERENCE_ARTIFACT as ARTIFACT
from cycleml.names import SEEN_ROWS
from cycleml.scoring.inputs import prepare_inputs
from cycleml.scoring.loaded import LoadedModel
from cycleml.serve.labels import allowed, typed_label

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "from_file",
    "from_log",
    "load_reference",
    "load_seen_rows",
    "parse_since",
    "prepare_window",
]

log = logging.getLogger(__name__)
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``30m``, ``7d``, ``2w`` ago, or an ISO date/time, as a Unix time."""
    now = time.time() if now is None else now
    if match := _SINCE.match(text.strip()):
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise MonitorError(
            f"--since {text!r}: use a duration such as 24h, 30m, 7d, or an ISO date "
            "such as 2026-11-20 or 2026-11-20T08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _decode(texts: pd.Series) -> list[Any]:
    """JSON texts to Python values (one C-level parse per value)."""
    import orjson

    return [orjson.loads(t) if t is not None else None for t in texts]


def _json_columns(texts: pd.Series, schema: pa.Schema, infer: Sequence[str] = ()) -> pd.DataFrame:
    """JSON objects, one per text, as columns of ``schema``'s types, parsed by Arrow in
    C++ (absent fields are null). Fields outside the schema are ignored, but for those in
    ``infer``, whose type Arrow infers (id columns: text or numbers, as clients send them);
    when one of them mixes text and numbers, they are left out, with a warning."""
    import io

    import pyarrow.json as pj

    data = ("\n".join(texts)).encode()
    read = pj.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, 1 << 28)))
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=read,
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer" if infer else "ignore"
            ),
        )
    except pa.ArrowInvalid:
        if not infer:
            raise
        log.warning("prediction log: id column(s) %s mix text and numbers; left out", infer)
        return _json_columns(texts, schema)
    kept = [*schema.names, *(c for c in infer if c in table.column_names)]
    frame: pd.DataFrame = table.select(kept).to_pandas()
    return frame


def _log_types(model: LoadedModel) -> tuple[pa.Schema, pa.Schema]:
    """The Arrow types of a logged request record and of a logged answer."""
    schema = model.schema
    numeric = set(schema.numeric)
    inputs = pa.schema(
        [pa.field(c, pa.float64() if c in numeric else pa.string()) for c in schema.inputs]
    )
    if schema.task == "regression":
        answer = pa.schema([pa.field("prediction", pa.float64())])
    else:
        probabilities = pa.struct([pa.field(c, pa.float64()) for c in schema.classes])
        answer = pa.schema(
            [pa.field("prediction", pa.string()), pa.field("probabilities", probabilities)]
        )
    return inputs, answer


def _window_rows(raw: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """One chunk of log rows as a table: inputs, id columns, outputs, label, time and
    request id."""
    input_types, answer_types = _log_types(model)
    rows = _json_columns(raw["inputs"], input_types, model.schema.id_columns)
    answers = _json_columns(raw["outputs"], answer_types)
    rows["prediction"] = answers["prediction"].to_numpy()
    if "probabilities" in answers:
        for cls in model.schema.classes:
            rows[f"probability_{cls}"] = [
                p.get(cls) if isinstance(p, dict) else None for p in answers["probabilities"]
            ]
    rows["_label"] = _decode(raw["label"])
    rows["_ts"] = raw["ts"].to_numpy()
    rows["_request_id"] = raw["request_id"].to_numpy()
    return rows


def from_log(
    url: str,
    model_name: str,
    load: Callable[[str], LoadedModel],
    *,
    last: int | None = None,
    since: float | None = None,
    version: str | None = None,
    chunk_rows: int = 100_000,
) -> tuple[pd.DataFrame, LoadedModel]:
    """Served predictions from the prediction log, with their labels where they arrived.

    One model version per window (a reference belongs to one version): ``version``, or
    else the version that answered the newest row; ``load`` turns it into the model.
    Returns the rows, oldest first (inputs, id columns, prediction, probabilities,
    ``_label``, ``_ts``, ``_request_id``), and the model. Read in chunks, JSON parsed by Arrow.
    """
    import sqlalchemy as sa

    from cycleml.serve.predlog import FEEDBACK, PREDICTIONS

    p, f = PREDICTIONS.c, FEEDBACK.c
    engine = sa.create_engine(url)
    chunks: list[pd.DataFrame] = []
    try:
        with engine.connect() as conn:
            base = sa.and_(p.role == "served", p.model_name == model_name)
            if version is None:
                newest = conn.execute(
                    sa.select(p.model_version).where(base).order_by(p.ts.desc()).limit(1)
                ).scalar()
                if newest is None:
                    raise MonitorError(
                        f"the prediction log ({redact(url)}) has no served predictions of "
                        f"{model_name!r} yet; send traffic first, or monitor a file "
                        "with --current"
                    )
                version = str(newest)
            query = (
                sa.select(p.request_id, p.ts, p.inputs, p.outputs, f.label)
                .select_from(PREDICTIONS.outerjoin(FEEDBACK, p.request_id == f.request_id))
                .where(base, p.model_version == version)
                .order_by(p.ts.desc())
            )
            if since is not None:
                query = query.where(p.ts >= since)
            if last is not None:
                query = query.limit(last)
            model: LoadedModel | None = None
            for raw in pd.read_sql(query, conn, chunksize=chunk_rows):
                if raw.empty:
                    continue
                model = model or load(version)
                chunks.append(_window_rows(raw, model))
    except sa.exc.OperationalError as err:
        raise MonitorError(
            f"cannot read the prediction log {redact(url)}: {redact(str(err.orig))}"
        ) from None
    finally:
        engine.dispose()
    if model is None or not chunks:
        raise MonitorError(f"no served predictions of {model_name} v{version} in this window")
    rows = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    rows["_label"] = _known_labels(rows["_label"], model.schema)
    return rows.iloc[::-1].reset_index(drop=True), model


def _known_labels(labels: pd.Series, schema: Schema) -> list[Any]:
    """Stored labels as the schema types them; one it cannot take (stored before
    /feedback checked labels) becomes missing, with a warning that counts them, instead
    of stopping every later check."""
    typed = [typed_label(schema, v) if v is not None else None for v in labels]
    skipped = sum(t is None for t in typed) - int(labels.isna().sum())
    if skipped:
        log.warning(
            "feedback labels: %d stored label(s) are not %s; skipped", skipped, allowed(schema)
        )
    return typed


def from_file(path: Path, model: LoadedModel, data: DataParams) -> pd.DataFrame:
    """Rows of a CSV or Parquet file, read and cleaned as ingest reads and cleans the
    source (separator, encoding, missing markers, numbers stored as text), scored by
    ``model``; its target column, when present, gives the labels, and its id columns are
    kept (to tell rows the model trained on)."""
    from cycleml.config import FileSource
    from cycleml.data.cleaning import clean
    from cycleml.data.sources import IngestError, read_source

    options = data.source.model_dump() if isinstance(data.source, FileSource) else {}
    source = FileSource.model_validate({**options, "kind": "file", "path": str(path)})
    # every row is data to judge: keep duplicates and empty columns, drop nothing
    rules = data.clean.model_copy(update={"drop_duplicates": False, "drop_empty_columns": False})
    as_ingest = data.model_copy(update={"source": source, "clean": rules, "drop_columns": []})
    try:
        frame, _ = clean(read_source(source), as_ingest)
    except IngestError as err:
        raise MonitorError(f"--current {path}: {err}") from None
    missing = [c for c in model.schema.inputs if c not in frame.columns]
    if missing:
        raise MonitorError(
            f"{path} lacks column(s) {', '.join(missing)} that {model.name} v{model.version} "
            "was trained with; add them"
        )
    if frame.empty:
        raise MonitorError(f"{path} has no rows to monitor")
    out = with_predictions(frame, model, data.clean.na_values)
    for col in model.schema.id_columns:
        if col in frame.columns and col not in out.columns:
            out[col] = frame[col].to_numpy()
    target = data.target
    out["_label"] = frame[target].to_numpy() if target in frame.columns else None
    return out


def load_reference(client: MlflowClient, run_id: str, fallback: Path | None) -> pd.DataFrame:
    """The reference profile logged on ``run_id``; else ``fallback`` (models/reference.parquet)."""
    import tempfile

    import mlflow.artifacts

    try:
        with tempfile.TemporaryDirectory(prefix="cycleml-reference-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=ARTIFACT,
                dst_path=tmp,
                tracking_uri=client.tracking_uri,
            )
            return pd.read_parquet(local)
    except Exception:  # noqa: BLE001 - older runs have no profile: try the local one
        if fallback is not None and fallback.exists():
            return pd.read_parquet(fallback)
    raise MonitorError(
        f"training run {run_id} has no {ARTIFACT} (trained before monitoring existed?) and "
        "models/reference.parquet is missing: run `dvc repro` to build the reference"
    )


def load_seen_rows(client: MlflowClient, run_id: str) -> np.ndarray | None:
    """The keys of the rows ``run_id`` trained and early-stopped on (``schema.row_keys``),
    or None for a run logged before they were kept."""
    import tempfile

    import mlflow.artifacts

    try:
        with tempfile.TemporaryDirectory(prefix="cycleml-seen-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=SEEN_ROWS,
                dst_path=tmp,
                tracking_uri=client.tracking_uri,
            )
            return np.asarray(pd.read_parquet(local)["key"].to_numpy())
    except Exception:  # noqa: BLE001 - older runs have no such artifact
        return None


def prepare_window(
    current: pd.DataFrame, schema: Schema, na_values: list[str] | None
) -> pd.DataFrame:
    """``current``'s inputs cleaned as the model reads them, and its ``_label`` column as
    the target, in the model's class names (None where no label arrived)."""
    missing = [c for c in schema.inputs if c not in current.columns]
    if missing:
        raise MonitorError(f"the window lacks model input column(s): {', '.join(missing)}")
    cleaned = prepare_inputs(current, schema, na_values)
    current = current.copy(deep=False)  # columns below are replaced, never written into
    for col in schema.inputs:
        current[col] = cleaned[col]
    labels = (
        current["_label"]
        if "_label" in current
        else pd.Series(None, index=current.index, dtype="object")
    )
    try:  # typed as the reference's target (float64 for regression), or Evidently fails
        current[schema.target] = canonical_target(schema, labels).to_numpy()
    except ValueError as err:
        raise MonitorError(f"feedback labels: {err}") from None
    return current
