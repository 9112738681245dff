"""Batch scoring: a registered model over a CSV or Parquet file of any size.

The file is read and scored in chunks, so memory stays flat however many rows it has:
Parquet through ``pyarrow.parquet.ParquetFile.iter_batches``, CSV through
``pandas.read_csv(chunksize=...)``. Each chunk goes through the ingest text rules for the
model's input columns (``prepare_inputs``) and then ``modeling.predict_scores``, the one
scoring path training and evaluation use. The output (CSV or Parquet, by the target's
extension) is streamed to a temporary file beside the target and renamed over it at the
end, so a failure leaves no half file and an earlier output untouched.

Each output row is the input row's id columns, the prediction (classification: the label,
with the model's own decision threshold for a binary problem, and ``probability_<class>``
per class; regression: the value) and the model's name and version, in input order.
"""

from __future__ import annotations

import csv
import gzip
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from cycleml.io import atomic_path
from cycleml.modeling import predict_scores
from cycleml.schema import Schema

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from rich.progress import Progress
    from sklearn.pipeline import Pipeline

__all__ = [
    "BatchError",
    "BatchReport",
    "LoadedModel",
    "load_model",
    "predict_file",
    "prepare_inputs",
    "score_table",
]

Format = Literal["csv", "parquet"]
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_SNIFF_BYTES = 64 * 1024
_THRESHOLD_TAG = "test_decision_threshold"


class BatchError(ValueError):
    """Input the batch scorer cannot use: an unknown file type or missing columns."""


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version, ready to score: the pipeline and what it needs."""

    name: str
    version: str
    pipeline: Pipeline
    schema: Schema
    threshold: float = 0.5
    """Binary decision threshold: positive when P(positive class) >= threshold."""
    alias: str | None = None
    run_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    """The registered version's tags: lineage, test metrics, approval status."""


@dataclass(frozen=True)
class BatchReport:
    source: Path
    target: Path
    model_name: str
    model_version: str
    rows: int
    seconds: float
    peak_rss_delta_mb: float | None
    """Growth of the process's peak resident memory while scoring (None: not measurable).
    Zero when scoring stayed below a peak the process had reached before."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def lines(self) -> list[str]:
        memory = (
            f", peak memory +{self.peak_rss_delta_mb:,.0f} MB"
            if self.peak_rss_delta_mb is not None
            else ""
        )
        return [
            f"{self.rows:,} rows scored by {self.model_name} v{self.model_version} "
            f"-> {self.target}",
            f"{self.seconds:,.1f} s, {self.rows_per_second:,.0f} rows/s{memory}",
        ]


def load_model(client: MlflowClient, name: str, ref: str = "@champion") -> LoadedModel:
    """Load a registered version (``@champion``, ``@challenger``, ``3``) from ``client``'s store.

    The pipeline and the training run's ``schema.json`` are fetched from the store the
    client points at (not from MLflow's global tracking URI). The decision threshold is the
    one evaluate chose for this version (tag ``test_decision_threshold``), so batch
    decisions match the ones the version was judged and registered on.

    Raises:
        RegistryError: ``ref`` names no version of ``name``.
    """
    import tempfile

    import mlflow.artifacts
    import mlflow.sklearn

    from cycleml.registry import resolve
    from cycleml.stages.evaluate import _DEFAULT_THRESHOLD

    version = resolve(client, name, ref)
    number = str(version.version)
    with tempfile.TemporaryDirectory(prefix="cycleml-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, number),
            dst_path=str(Path(tmp) / "model"),
            tracking_uri=client.tracking_uri,
        )
        pipeline: Pipeline = mlflow.sklearn.load_model(local)
        schema_file = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path="schema.json",
            dst_path=tmp,
            tracking_uri=client.tracking_uri,
        )
        schema = Schema.model_validate_json(Path(schema_file).read_text(encoding="utf-8"))
    alias = ref.lstrip("@") if not ref.lstrip("@").isdigit() else None
    if alias is None and version.aliases:
        alias = sorted(version.aliases)[0]
    return LoadedModel(
        name=name,
        version=number,
        pipeline=pipeline,
        schema=schema,
        threshold=float(version.tags.get(_THRESHOLD_TAG, _DEFAULT_THRESHOLD)),
        alias=alias,
        run_id=str(version.run_id),
        tags=dict(version.tags or {}),
    )


def _default_na_values() -> list[str]:
    from cycleml.config import CleanRules

    return list(CleanRules().na_values)


def _clean_text(values: pd.Series, markers: set[str]) -> pd.Series:
    """Values as stripped text, markers as missing (ingest's rule); once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = [None if (text := str(u).strip()) in markers else text for u in uniques]
    table = np.asarray([*cleaned, None], dtype=object)  # code -1 (missing) picks the None
    return pd.Series(table[codes], index=values.index, dtype="object")


def prepare_inputs(
    frame: pd.DataFrame, schema: Schema, na_values: Sequence[str] | None = None
) -> pd.DataFrame:
    """The model's input columns, cleaned as ingest cleaned the training data.

    Text is stripped and the missing markers (``data.clean.na_values``) become missing;
    then each column takes the type training gave it, decided by the schema rather than
    guessed per chunk: numeric columns become float64 (unparsable text -> missing, as in
    ingest), categorical ones text. Other inputs (sources of derived features, such as a
    date) are left for the pipeline's own parsing. Rows are never dropped or reordered.
    """
    markers = set(_default_na_values() if na_values is None else na_values)
    numeric, categorical = set(schema.numeric), set(schema.categorical)
    out: dict[str, pd.Series] = {}
    for col in schema.inputs:
        values = frame[col]
        if not pd.api.types.is_numeric_dtype(values) or col in categorical:
            if not pd.api.types.is_datetime64_any_dtype(values):
                values = _clean_text(values, markers)
        if col in numeric:
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        out[col] = values
    return pd.DataFrame(out, index=frame.index)


def _prediction_fields(model: LoadedModel) -> list[pa.Field]:
    schema = model.schema
    if schema.task == "regression":
        fields = [pa.field("prediction", pa.float64())]
    else:
        fields = [pa.field("prediction", pa.string())]
        fields += [pa.field(f"probability_{c}", pa.float64()) for c in schema.classes]
    return [*fields, pa.field("model_name", pa.string()), pa.field("model_version", pa.string())]


def score_table(
    frame: pd.DataFrame, model: LoadedModel, na_values: Sequence[str] | None = None
) -> pa.Table:
    """Predictions for ``frame``'s rows, in order, as an Arrow table (no id columns)."""
    schema = model.schema
    scores = predict_scores(model.pipeline, schema, prepare_inputs(frame, schema, na_values))
    n = len(frame)
    columns: list[Any]
    if schema.task == "regression":
        columns = [pa.array(scores, pa.float64())]
    else:
        if schema.is_binary:
            chosen = (scores[:, 1] >= model.threshold).astype("int64")
        else:
            chosen = scores.argmax(axis=1)
        columns = [pa.array(schema.decode_target(chosen), pa.string())]
        columns += [pa.array(scores[:, i], pa.float64()) for i in range(len(schema.classes))]
    columns += [pa.array([model.name] * n, pa.string()), pa.array([model.version] * n, pa.string())]
    return pa.Table.from_arrays(columns, schema=pa.schema(_prediction_fields(model)))


def _format(path: Path) -> Format:
    name = path.name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise BatchError(f"{path}: unknown file type; use one of {', '.join(_SUFFIXES)}")


def _sniff_sep(path: Path) -> str:
    """The separator, guessed as ingest guesses it; ',' when unsure."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        sample = fh.read(_SNIFF_BYTES).decode("utf-8", errors="replace")
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


@dataclass(frozen=True)
class _Input:
    """An input file: its columns (name in the file -> stripped name), rows if known,
    the arrow types of its id columns, and a reader of (inputs, ids) chunks."""

    columns: dict[str, str]
    total: int | None
    id_types: dict[str, pa.DataType]
    describe: str
    chunks: Callable[[list[str]], Iterator[tuple[pd.DataFrame, pa.Table]]]


def _parquet_input(path: Path, id_columns: list[str], chunk_rows: int) -> _Input:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    columns = {name: name.strip() for name in file.schema_arrow.names}
    id_types = {columns[f.name]: f.type for f in file.schema_arrow if columns[f.name] in id_columns}

    def chunks(wanted: list[str]) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
        raw = [r for r, c in columns.items() if c in wanted]
        ids = [columns[r] for r in raw if columns[r] in id_types]
        for batch in file.iter_batches(batch_size=chunk_rows, columns=raw):
            table = pa.Table.from_batches([batch]).rename_columns([columns[r] for r in raw])
            yield table.to_pandas(), table.select(ids)

    return _Input(columns, file.metadata.num_rows, id_types, str(path), chunks)


def _csv_input(path: Path, id_columns: list[str], chunk_rows: int, sep: str | None) -> _Input:
    sep = sep or _sniff_sep(path)
    header = pd.read_csv(path, sep=sep, nrows=0).columns
    columns = {str(name): str(name).strip() for name in header}
    id_types = {c: pa.string() for c in columns.values() if c in id_columns}

    def chunks(wanted: list[str]) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
        raw = [r for r, c in columns.items() if c in wanted]
        ids = [columns[r] for r in raw if columns[r] in id_types]
        # every value as its text, nothing made missing by pandas' own markers: the markers
        # are data.clean.na_values, applied by prepare_inputs exactly as ingest applies them
        with pd.read_csv(
            path, sep=sep, usecols=raw, dtype=str, na_filter=False, chunksize=chunk_rows
        ) as reader:
            for frame in reader:
                frame = frame.rename(columns=columns)
                yield frame, pa.table({c: pa.array(frame[c], pa.string()) for c in ids})

    return _Input(columns, None, id_types, f"{path} (separator {sep!r})", chunks)


@contextmanager
def _writer(
    path: Path, fmt: Format, schema: pa.Schema, compressed: bool
) -> Iterator[Callable[[pa.Table], None]]:
    """A function that appends a table to ``path``: Parquet, or CSV with one header."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(path, schema) as parquet:
            yield parquet.write_table
        return
    opener: Any = gzip.open if compressed else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        written = False

        def write(table: pa.Table) -> None:
            nonlocal written
            table.to_pandas().to_csv(fh, header=not written, index=False)
            written = True

        yield write
        if not written:  # no rows: still a file with its header
            write(schema.empty_table())


def _peak_rss_bytes() -> int | None:
    """The process's peak resident memory, where the platform reports it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _progress(enabled: bool, total: int | None) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class Rows(ProgressColumn):
        def render(self, task: Task) -> Text:
            done = f"{task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "")
            speed = f", {task.speed:,.0f} rows/s" if task.speed else ""
            return Text(f"{done} rows{speed}")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        Rows(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def predict_file(
    source: Path | str,
    target: Path | str,
    model: LoadedModel,
    chunk_rows: int = 100_000,
    progress: bool = True,
    *,
    na_values: Sequence[str] | None = None,
    sep: str | None = None,
) -> BatchReport:
    """Score every row of ``source`` with ``model``; write the predictions to ``target``.

    Args:
        source: ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``; extra columns are ignored.
        target: Output file; its extension picks CSV or Parquet. Written atomically.
        model: From ``load_model``.
        chunk_rows: Rows read, scored and written at a time; bounds memory.
        progress: Show a progress bar (rows, rows/s) on stderr.
        na_values: Text read as missing (ingest's ``data.clean.na_values``; its defaults
            when None). Unlike pandas' defaults this includes ``?`` and ``-``.
        sep: CSV separator; guessed from the first 64 KiB when None, as ingest does.

    Raises:
        BatchError: Unknown file type, or ``source`` lacks columns the model needs
            (checked before anything is written).
        FileNotFoundError: ``source`` does not exist.
    """
    if chunk_rows < 1:
        raise BatchError(f"chunk_rows must be at least 1, not {chunk_rows}")
    source, target = Path(source), Path(target)
    out_format = _format(target)
    schema = model.schema
    if _format(source) == "parquet":
        reader = _parquet_input(source, schema.id_columns, chunk_rows)
    else:
        reader = _csv_input(source, schema.id_columns, chunk_rows, sep)
    missing = [c for c in schema.inputs if c not in reader.columns.values()]
    if missing:
        raise BatchError(
            f"{reader.describe} lacks column(s) {', '.join(missing)} that {model.name} "
            f"v{model.version} was trained with; add them (other columns are ignored)"
        )
    ids = [c for c in schema.id_columns if c in reader.id_types]
    out_schema = pa.schema(
        [pa.field(c, reader.id_types[c]) for c in ids] + _prediction_fields(model)
    )
    before = _peak_rss_bytes()
    start = time.perf_counter()
    rows = 0
    # exits run in reverse: the writer closes the file before atomic_path renames it
    with (
        atomic_path(target) as tmp,
        _writer(tmp, out_format, out_schema, target.name.lower().endswith(".gz")) as write,
        _progress(progress, reader.total) as bar,
    ):
        task = bar.add_task(f"scoring {source.name}", total=reader.total)
        for frame, id_table in reader.chunks(list(dict.fromkeys([*ids, *schema.inputs]))):
            predicted = score_table(frame, model, na_values)
            write(pa.Table.from_arrays([*id_table.columns, *predicted.columns], schema=out_schema))
            rows += len(frame)
            bar.advance(task, len(frame))
    seconds = time.perf_counter() - start
    after = _peak_rss_bytes()
    delta = (after - before) / 2**20 if before is not None and after is not None else None
    return BatchReport(
        source=source,
        target=target,
        model_name=model.name,
        model_version=model.version,
        rows=rows,
        seconds=seconds,
        peak_rss_delta_mb=delta,
    )
