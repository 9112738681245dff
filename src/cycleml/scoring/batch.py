"""Batch scoring: a registered model over a CSV or Parquet file of any size.

The file is read and scored in chunks, so memory stays flat however many rows it has:
Parquet through ``pyarrow.parquet.ParquetFile.iter_batches``, CSV through
``pandas.read_csv(chunksize=...)``. Each chunk goes through the ingest text rules for the
model's input columns (:mod:`cycleml.scoring.inputs`) and then the version's scorer: the
compiled scorer registration verified against the Pipeline, or the Pipeline itself. The
output (CSV or Parquet, by the target's extension) is streamed to a temporary file beside
the target and renamed over it at the end, so a failure leaves no half file and an earlier
output untouched.

Each output row is the input row's id columns, the prediction (classification: the label,
with the model's own decision threshold for a binary problem, and ``probability_<class>``
per class; regression: the value) and the model's name and version, in input order. The
ids keep their type, so the output merges back on the input: a Parquet file's own types; a
CSV's text as written, which Parquet output stores as integers when every value is a
plain integer (no leading zeros, no sign but ``-``; empty is missing). A file with none of
the schema's id columns gets ``row`` instead: the row's position in the file, from 0.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cycleml.data.sources import SNIFF_BYTES, sniff_separator
from cycleml.files import atomic_path
from cycleml.model.decision import decide
from cycleml.scoring.inputs import arrow_inputs, is_text_type, prepare_inputs
from cycleml.scoring.loaded import LoadedModel
from cycleml.scoring.runtime import CompiledScorer

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["BatchError", "BatchReport", "check_output", "predict_file", "score_table"]

Format = Literal["csv", "parquet"]
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


ROW = "row"
"""The output's row-number column, written when the file has none of the schema's id
columns (no other output column has this name)."""
_PLAIN_INTEGER = r"^(0|-?[1-9][0-9]{0,17})?$"
"""CSV text that is an int64 and reads back as the same text (empty: missing). At most 18
digits: always within int64's range."""


class BatchError(ValueError):
    """Input the batch scorer cannot use: an unknown file type or missing columns."""


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


def _prediction_fields(model: LoadedModel) -> list[pa.Field]:
    schema = model.schema
    if schema.task == "regression":
        fields = [pa.field("prediction", pa.float64())]
    else:
        fields = [pa.field("prediction", pa.string())]
        fields += [pa.field(f"probability_{c}", pa.float64()) for c in schema.classes]
    return [*fields, pa.field("model_name", pa.string()), pa.field("model_version", pa.string())]


def score_table(
    frame: pd.DataFrame | pa.Table, model: LoadedModel, na_values: Sequence[str] | None = None
) -> pa.Table:
    """Predictions for ``frame``'s rows, in order, as an Arrow table (no id columns).

    An Arrow table goes to a compiled scorer as Arrow columns (``arrow_inputs``); anything
    else through pandas and ``prepare_inputs``.
    """
    schema = model.schema
    if isinstance(frame, pa.Table) and isinstance(model.scorer, CompiledScorer):
        n = frame.num_rows
        scores = model.scorer.columns(arrow_inputs(frame, schema, na_values), n)
    else:
        if isinstance(frame, pa.Table):
            frame = frame.to_pandas()
        n = len(frame)
        scores = model.scorer.frame(prepare_inputs(frame, schema, na_values))
    columns: list[Any]
    if schema.task == "regression":
        columns = [pa.array(scores, pa.float64())]
    else:
        chosen = decide(scores, model.threshold)
        columns = [pa.array(schema.classes, pa.string()).take(pa.array(chosen))]
        columns += [pa.array(scores[:, i], pa.float64()) for i in range(len(schema.classes))]
    columns += [_repeat(model.name, n), _repeat(model.version, n)]
    return pa.Table.from_arrays(columns, schema=pa.schema(_prediction_fields(model)))


def _repeat(text: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype="int32")), pa.array([text], pa.string())
    ).cast(pa.string())


def _format(path: Path) -> Format:
    name = path.name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise BatchError(f"{path}: unknown file type; use one of {', '.join(_SUFFIXES)}")


def check_output(target: Path) -> None:
    """Refuse, before any scoring, an OUTPUT that could not be written at the end: a
    folder, an unknown type, a path through a file, a folder this user cannot write in.
    Missing folders are fine (the write creates them); nothing is created here."""
    import tempfile

    try:
        if target.is_dir():
            raise BatchError(
                f"OUTPUT {target} is a folder; name a file in it, e.g. "
                f"{target / 'predictions.parquet'}"
            )
        _format(target)
        folder = next(p for p in target.absolute().parents if p.exists())  # "/" exists
        if not folder.is_dir():
            raise BatchError(f"OUTPUT {target}: {folder} is a file, not a folder; write elsewhere")
        tempfile.TemporaryFile(dir=folder).close()  # what the atomic write will need
    except OSError as err:
        raise BatchError(
            f"OUTPUT {target}: cannot write there ({err.strerror}); write to a folder this "
            "user can write in"
        ) from None


def _sniff_sep(path: Path) -> str:
    """The separator, guessed by ingest's rule (``sniff_separator``); ',' when unsure."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        sample = fh.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    return sniff_separator(sample)


@dataclass(frozen=True)
class _Input:
    """An input file: its columns (name in the file -> stripped name), rows if known,
    the arrow types of its id columns, and a reader of (inputs, ids) chunks."""

    columns: dict[str, str]
    total: int | None
    id_types: dict[str, pa.DataType]
    describe: str
    chunks: Callable[[list[str]], Iterator[tuple[pd.DataFrame | pa.Table, pa.Table]]]


def _parquet_input(
    path: Path, id_columns: list[str], chunk_rows: int, dictionary: Sequence[str] = ()
) -> _Input:
    """``dictionary``: input columns to read as Arrow dictionaries when they hold text (the
    compiled scorer's path: Parquet already stores them so, and no string is built)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path)
    text = [f.name for f in names if f.name.strip() in dictionary and is_text_type(f.type)]
    file = pq.ParquetFile(path, read_dictionary=[n for n in text if n.strip() not in id_columns])
    columns = {name: name.strip() for name in file.schema_arrow.names}
    id_types = {columns[f.name]: f.type for f in file.schema_arrow if columns[f.name] in id_columns}

    def chunks(wanted: list[str]) -> Iterator[tuple[pd.DataFrame | pa.Table, pa.Table]]:
        raw = [r for r, c in columns.items() if c in wanted]
        ids = [columns[r] for r in raw if columns[r] in id_types]
        for batch in file.iter_batches(batch_size=chunk_rows, columns=raw):
            table = pa.Table.from_batches([batch]).rename_columns([columns[r] for r in raw])
            yield table, table.select(ids)

    return _Input(columns, file.metadata.num_rows, id_types, str(path), chunks)


def _csv_input(
    path: Path, id_columns: list[str], chunk_rows: int, sep: str | None, typed_ids: bool
) -> _Input:
    """``typed_ids``: find which id columns hold integers (a first pass over those columns
    only), for an output that stores types; else every id is kept as its text."""
    sep = sep or _sniff_sep(path)
    header = pd.read_csv(path, sep=sep, nrows=0).columns
    columns = {str(name): str(name).strip() for name in header}
    id_types = {c: pa.string() for c in columns.values() if c in id_columns}
    if typed_ids and id_types:
        id_types = _csv_id_types(path, sep, columns, list(id_types), chunk_rows)

    def chunks(wanted: list[str]) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
        raw = [r for r, c in columns.items() if c in wanted]
        ids = [columns[r] for r in raw if columns[r] in id_types]
        # every value as its text, nothing made missing by pandas' own markers: the markers
        # are data.clean.na_values, applied by prepare_inputs exactly as ingest applies them
        with _read_text(path, sep, raw, chunk_rows) as reader:
            for frame in reader:
                frame = frame.rename(columns=columns)
                yield frame, pa.table({c: _id_array(frame[c], id_types[c]) for c in ids})

    return _Input(columns, None, id_types, f"{path} (separator {sep!r})", chunks)


def _read_text(path: Path, sep: str, raw: list[str], chunk_rows: int) -> Any:
    """A reader of ``raw`` columns in chunks, every value as the text in the file."""
    return pd.read_csv(path, sep=sep, usecols=raw, dtype=str, na_filter=False, chunksize=chunk_rows)


def _csv_id_types(
    path: Path, sep: str, columns: dict[str, str], ids: list[str], chunk_rows: int
) -> dict[str, pa.DataType]:
    """int64 for each id column whose every value is a plain integer or empty, else
    string: the types a merge back on the file expects, with no id's text changed."""
    integers = set(ids)
    raw = [r for r, c in columns.items() if c in integers]
    with _read_text(path, sep, raw, chunk_rows) as reader:
        for frame in reader:
            for r in raw:
                if columns[r] in integers and not _plain_integers(frame[r]):
                    integers.discard(columns[r])
            if not integers:
                break  # every id column is text: no need to read on
    return {c: pa.int64() if c in integers else pa.string() for c in ids}


def _plain_integers(values: pd.Series) -> bool:
    text = pa.array(values, pa.string())
    return bool(pc.all(pc.match_substring_regex(text, _PLAIN_INTEGER), min_count=0).as_py())


def _id_array(values: pd.Series, kind: pa.DataType) -> pa.Array:
    """A CSV id column's text as ``kind``: text as it is, or int64 (empty: missing)."""
    text = pa.array(values, pa.string())
    if kind == pa.string():
        return text
    return pc.cast(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text), kind)


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
            # an integer id with a missing value stays an integer (pandas would make 7 7.0)
            table.to_pandas(integer_object_nulls=True).to_csv(fh, header=not written, index=False)
            written = True

        yield write
        if not written:  # no rows: still a file with its header
            write(schema.empty_table())


def _prefetch(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """``items``, produced by a background thread up to ``depth`` ahead (Arrow and pandas
    release the GIL while they read). An error in the producer is raised here."""
    import queue
    import threading

    done = object()
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                ahead.put((item, None))
                if stop.is_set():  # the consumer has gone: stop reading
                    return
            ahead.put((done, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            ahead.put((done, err))

    thread = threading.Thread(target=produce, name="cycleml-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, err = ahead.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put, then let it end
            try:
                ahead.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


@contextmanager
def _in_background(write: Callable[[pa.Table], None]) -> Iterator[Callable[[pa.Table], None]]:
    """``write``, run on one background thread, one table at a time and in order; every
    write has finished (or raised) when the block exits."""
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cycleml-write") as pool:

        def later(table: pa.Table) -> None:
            if pending:
                pending.pop().result()  # at most one write in flight; its error surfaces
            pending.append(pool.submit(write, table))

        try:
            yield later
        finally:
            for future in pending:
                future.result()


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
        BatchError: Unknown file type, an OUTPUT that could not be written
            (``check_output``), or ``source`` lacks columns the model needs (all checked
            before anything is scored or written).
        FileNotFoundError: ``source`` does not exist.
    """
    if chunk_rows < 1:
        raise BatchError(f"chunk_rows must be at least 1, not {chunk_rows}")
    source, target = Path(source), Path(target)
    check_output(target)
    out_format = _format(target)
    schema = model.schema
    if _format(source) == "parquet":
        compiled = isinstance(model.scorer, CompiledScorer)
        text_inputs = schema.inputs if compiled else []
        reader = _parquet_input(source, schema.id_columns, chunk_rows, text_inputs)
    else:
        reader = _csv_input(source, schema.id_columns, chunk_rows, sep, out_format == "parquet")
    missing = [c for c in schema.inputs if c not in reader.columns.values()]
    if missing:
        raise BatchError(
            f"{reader.describe} lacks column(s) {', '.join(missing)} that {model.name} "
            f"v{model.version} was trained with; add them (other columns are ignored)"
        )
    ids = [c for c in schema.id_columns if c in reader.id_types]
    keys = [pa.field(c, reader.id_types[c]) for c in ids] or [pa.field(ROW, pa.int64())]
    out_schema = pa.schema(keys + _prediction_fields(model))
    before = _peak_rss_bytes()
    start = time.perf_counter()
    rows = 0
    # exits run in reverse: the writer closes the file before atomic_path renames it
    with (
        atomic_path(target) as tmp,
        _writer(tmp, out_format, out_schema, target.name.lower().endswith(".gz")) as write,
        _in_background(write) as write_later,
        _progress(progress, reader.total) as bar,
    ):
        task = bar.add_task(f"scoring {source.name}", total=reader.total)
        # the next chunk is read, and the last one written, while this one is scored
        chunks = _prefetch(reader.chunks(list(dict.fromkeys([*ids, *schema.inputs]))))
        for frame, id_table in chunks:
            predicted = score_table(frame, model, na_values)
            n = predicted.num_rows
            key_columns = id_table.columns if ids else [pa.array(np.arange(rows, rows + n))]
            write_later(pa.Table.from_arrays([*key_columns, *predicted.columns], schema=out_schema))
            rows += n
            bar.advance(task, n)
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
