"""Reading a project's data: ``data.source`` (demo, file or SQL) and the labelled
partitions ``cycleml retrain`` appends. Errors name the setting and the fix.

DVC re-runs ingest when its dependencies change, and it can only hash files it is told
about: ingest depends on the folder ``data/external/`` (dvc.yaml), where file sources
live. A source outside it, at a URL or behind a SQL query is invisible to DVC, so ingest
warns unless ``data.source.fingerprint`` (a param, hence a dependency) versions it.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cycleml.config import DataParams, DemoSource, FileSource, SqlSource
from cycleml.paths import Paths

__all__ = [
    "SOURCE_DIR",
    "IngestError",
    "IngestReport",
    "partition_files",
    "read_all",
    "read_source",
    "sniff_separator",
    "source_version",
    "unversioned",
]

SNIFF_BYTES = 64 * 1024
"""How much of a CSV file the separator is guessed from."""
SOURCE_DIR = "data/external"
"""Where file sources live: a dependency of the ingest stage in dvc.yaml, so DVC hashes
every file in it and a changed file re-runs ingest and what follows."""
_MANGLED = re.compile(r"\.\d+$")  # pandas' name for a repeated header: x, x.1, x.2


class IngestError(ValueError):
    """The source cannot be read, or the data contradicts the data block."""


@dataclass
class IngestReport:
    rows_read: int = 0
    columns_read: int = 0
    rows_written: int = 0
    na_markers: dict[str, int] = field(default_factory=dict)
    """Per column: values turned into missing because they matched ``na_values``."""
    numeric_from_text: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per column: text converted to numbers, with the values that did not parse."""
    dropped_columns: dict[str, str] = field(default_factory=dict)
    duplicates_dropped: int = 0
    time_column_unparsed: int = 0
    dates_from_text: list[str] = field(default_factory=list)
    """Text columns holding ISO dates (2024-01-31), parsed so they are not categories."""
    partitions: dict[str, int] = field(default_factory=dict)
    """Rows read from each partition file (data.partitions), after the source."""
    source: dict[str, str] = field(default_factory=dict)
    """Which version of data.source was read (see :func:`source_version`): lineage."""
    warnings: list[str] = field(default_factory=list)
    """Why DVC would miss a change to the source, with the fix (see :func:`unversioned`):
    printed, not fatal, since a one-off run outside the pipeline needs no versioning."""

    def lines(self) -> list[str]:
        out = [f"read {self.rows_read:,} rows x {self.columns_read} columns"]
        if self.partitions:
            parts = sum(self.partitions.values())
            out.append(f"  of which {parts:,} from {len(self.partitions)} partition(s)")
        for col, n in self.na_markers.items():
            out.append(f"{col}: {n:,} missing marker(s) -> missing")
        for col, info in self.numeric_from_text.items():
            bad = info["unparsed"]
            extra = f", {bad:,} unparsable -> missing {info['examples']}" if bad else ""
            out.append(f"{col}: text -> numeric{extra}")
        for col, why in self.dropped_columns.items():
            out.append(f"{col}: dropped ({why})")
        if self.time_column_unparsed:
            out.append(f"{self.time_column_unparsed:,} time value(s) not parsed -> missing")
        if self.dates_from_text:
            out.append(f"text -> dates: {', '.join(self.dates_from_text)}")
        if self.duplicates_dropped:
            out.append(f"{self.duplicates_dropped:,} duplicate row(s) dropped")
        out.append(f"wrote {self.rows_written:,} rows")
        out += [f"warning: {w}" for w in self.warnings]
        return out


def sniff_separator(sample: str) -> str:
    """A CSV's separator guessed from its first bytes (``,;\\t|``); ``,`` when unsure.

    The one rule: ingest reads ``data.source`` with it and ``cycleml predict`` reads its
    input file with it, so both split a file the same way.
    """
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _sniff_sep(source: FileSource) -> str:
    import fsspec

    with fsspec.open(source.path, "rb", compression="infer") as fh:
        sample = fh.read(SNIFF_BYTES).decode(source.encoding, errors="replace")
    return sniff_separator(sample)


def _read_file(source: FileSource) -> pd.DataFrame:
    fmt = source.format
    if fmt == "auto":
        fmt = "parquet" if source.path.lower().endswith((".parquet", ".pq")) else "csv"
    if fmt == "parquet":
        return pd.read_parquet(source.path)
    sep = source.sep or _sniff_sep(source)
    frame = pd.read_csv(
        source.path,
        sep=sep,
        encoding=source.encoding,
        header=0 if source.header else None,
        index_col=False,
        keep_default_na=False,  # missing markers are ours to decide (data.clean.na_values)
        na_values=[],
        # regex separators such as \s+ need the python parser, which only takes the default
        # low_memory; the C parser reads whole columns at once so types are not guessed twice
        engine="python" if len(sep) > 1 else "c",
        low_memory=len(sep) > 1,
    )
    if frame.shape[1] == 1 and source.sep is not None:
        _refuse_wrong_sep(source, sep, frame)
    if frame.empty and source.header:
        raise IngestError(
            f"data.source: {source.path} has a header but no data rows; re-export the file, "
            "or point data.source.path at one with rows"
        )
    empty = [c for c in frame.columns if frame[c].astype(str).str.strip().eq("").all()]
    if source.sep is None and len(empty) > frame.shape[1] / 2:
        raise IngestError(
            f"data.source: {len(empty)} of {frame.shape[1]} columns are empty with the separator "
            f"guessed as {sep!r}; set data.source.sep, e.g. '\\s+' for aligned columns"
        )
    if frame.shape[1] == 1 and source.sep is None:
        raise IngestError(
            f"data.source: read one column only (separator guessed as {sep!r}); "
            "set data.source.sep, e.g. ',' ';' '\\t' or '\\s+' for aligned columns"
        )
    if source.columns is not None:
        if frame.shape[1] != len(source.columns):
            raise IngestError(
                f"data.source.columns: {len(source.columns)} names for {frame.shape[1]} fields"
            )
        frame.columns = pd.Index(source.columns)
    if source.header and any(_MANGLED.search(str(c)) for c in frame.columns):
        _refuse_duplicate_header(source, sep)
    if source.header and _looks_like_data(list(frame.columns)):
        raise IngestError(
            f"data.source: the header {list(frame.columns)[:4]}... looks like a data row; "
            "for a file without a header set data.source.header: false and name the columns"
        )
    return frame


def _refuse_wrong_sep(source: FileSource, sep: str, frame: pd.DataFrame) -> None:
    """One column read with the configured separator while the first line holds another
    common one: the file uses that separator, so say which to set."""
    first = str(frame.columns[0]) if source.header else str(frame.iat[0, 0]) if len(frame) else ""
    others = [d for d in (",", ";", "\t", "|") if d != sep and d in first]
    if others:
        likely = max(others, key=first.count)
        raise IngestError(
            f"data.source.sep is {sep!r} but the file reads as one column "
            f"({first[:60]!r}...) and looks {likely!r}-separated; set data.source.sep: "
            f"{likely!r}, or remove data.source.sep to sniff it"
        )


def _refuse_duplicate_header(source: FileSource, sep: str) -> None:
    """pandas renames a repeated header name ``x`` to ``x.1``; a table whose columns are
    told apart only by position is refused, naming the repeated names."""
    first = pd.read_csv(
        source.path,
        sep=sep,
        encoding=source.encoding,
        header=None,
        nrows=1,
        dtype=str,
        keep_default_na=False,
        index_col=False,
        engine="python" if len(sep) > 1 else "c",
    )
    names = [str(n).strip() for n in first.iloc[0].tolist()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise IngestError(
            f"data.source: the header names column(s) {repeated} more than once; rename the "
            "duplicates in the file so every column has its own name"
        )


def _undecodable_at(source: FileSource) -> str:
    """Where the first byte the encoding cannot read is: line and column (best effort)."""
    import fsspec

    try:
        sep = source.sep or _sniff_sep(source)
        names = list(source.columns or [])
        with fsspec.open(source.path, "rb", compression="infer") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode(source.encoding)
                except UnicodeDecodeError as err:
                    byte = raw[err.start : err.start + 1].hex()
                    if number == 1 and source.header:
                        return f"the header, byte 0x{byte}"
                    fields = _split_line(raw.decode(source.encoding, errors="replace"), sep)
                    bad = next(i for i, f in enumerate(fields) if "\ufffd" in f)
                    where = f"line {number}"
                    if bad < len(names):
                        where += f", column {names[bad]!r}"
                    return f"{where}, byte 0x{byte}"
                if number == 1 and source.header:
                    names = [n.strip() for n in _split_line(text, sep)]
    except Exception:  # noqa: BLE001 - only a better message; the error is raised anyway
        return ""
    return ""


def _split_line(line: str, sep: str) -> list[str]:
    line = line.rstrip("\r\n")
    if len(sep) == 1:
        return next(csv.reader([line], delimiter=sep))
    return re.split(sep, line.strip())


def _looks_like_data(names: list[object]) -> bool:
    """Several header names are numbers (39, 77516): the file has no header row."""
    numbers = int(pd.to_numeric(pd.Series([str(n) for n in names]), errors="coerce").notna().sum())
    return numbers >= 2 and numbers >= len(names) / 4


def read_source(source: DemoSource | FileSource | SqlSource) -> pd.DataFrame:
    """Read the whole source table into memory."""
    try:
        if isinstance(source, DemoSource):
            from cycleml.data.demo import generate_churn

            return generate_churn(source.rows, source.seed, source.scenario)
        if isinstance(source, FileSource):
            return _read_file(source)
        import sqlalchemy

        engine = sqlalchemy.create_engine(source.url)
        try:
            with engine.connect() as conn:
                return pd.read_sql(sqlalchemy.text(source.query), conn)
        finally:
            engine.dispose()
    except FileNotFoundError as err:
        raise IngestError(f"data.source.path: file not found: {err.filename or err}") from None
    except UnicodeDecodeError as err:
        # the position in the error is within pandas' read buffer, not the file: find it
        where = _undecodable_at(source) if isinstance(source, FileSource) else ""
        raise IngestError(
            f"data.source: the file is not valid {getattr(source, 'encoding', 'utf-8')} "
            f"({where + ': ' if where else ''}{err.reason}); set data.source.encoding, "
            "e.g. latin-1"
        ) from None
    except pd.errors.EmptyDataError:
        where = getattr(source, "path", "the file")
        raise IngestError(
            f"data.source: {where} is empty (no header, no rows); re-export the file, "
            "or point data.source.path at one with data"
        ) from None
    except pd.errors.ParserError as err:
        raise IngestError(
            f"data.source: the file is not a well-formed table ({err}); check "
            "data.source.sep and data.source.header"
        ) from None
    except OSError as err:
        where = getattr(source, "path", "")
        raise IngestError(f"data.source.path: cannot read {where!r}: {err}") from None
    except Exception as err:
        import sqlalchemy.exc

        if isinstance(err, sqlalchemy.exc.SQLAlchemyError):
            first = str(getattr(err, "orig", None) or err).splitlines()[0]
            raise IngestError(
                f"data.source (sql): {first}; check data.source.url and query"
            ) from None
        raise


def _is_url(path: str) -> bool:
    return "://" in path


def source_version(source: DemoSource | FileSource | SqlSource) -> dict[str, str]:
    """What identifies the data the source held, for the ingest report and the model's
    lineage tags: a local file's path and md5 (DVC 3's hash of a file, the one in its
    ``.dvc`` file after ``dvc add``), and the fingerprint when one is set. A URL is left
    out: it may carry credentials."""
    found: dict[str, str] = {"kind": source.kind}
    if isinstance(source, FileSource) and not _is_url(source.path):
        found["path"] = source.path
        if Path(source.path).is_file():
            with Path(source.path).open("rb") as fh:
                digest = hashlib.file_digest(fh, lambda: hashlib.md5(usedforsecurity=False))
            found["md5"] = digest.hexdigest()
    if not isinstance(source, DemoSource) and source.fingerprint is not None:
        found["fingerprint"] = source.fingerprint
    return found


def unversioned(source: DemoSource | FileSource | SqlSource, paths: Paths) -> list[str]:
    """Why a change to the source's data would re-run nothing, with the fix: a local file
    outside ``data/external/``, or a URL or SQL source, without a fingerprint."""
    if isinstance(source, DemoSource) or source.fingerprint is not None:
        return []
    if isinstance(source, SqlSource) or _is_url(source.path):
        what = "a SQL query" if isinstance(source, SqlSource) else "a URL"
        return [
            f"data.source.fingerprint is not set and DVC cannot hash {what}, so changed data "
            "re-runs nothing; set data.source.fingerprint to text that changes with the data "
            "(e.g. its load date) and change it whenever the data does"
        ]
    watched = Path(os.path.abspath(paths.root / SOURCE_DIR))
    if Path(os.path.abspath(source.path)).is_relative_to(watched):  # links kept: DVC follows
        return []
    return [
        f"data.source.path: {source.path} is outside {SOURCE_DIR}/, the folder DVC watches, "
        f"so a changed file re-runs nothing; move the file into {SOURCE_DIR}/ and point "
        "data.source.path at it (or set data.source.fingerprint and change it with the file)"
    ]


def partition_files(folder: Path, last: int | None = None) -> list[Path]:
    """The partition files in ``folder``, oldest first (names sort by time), maybe only
    the newest ``last``."""
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    return files[-last:] if last else files


def _read_partitions(data: DataParams, paths: Paths, report: IngestReport) -> list[pd.DataFrame]:
    frames = []
    for file in partition_files(paths.root / data.partitions.dir, data.partitions.last):
        frame = pd.read_parquet(file)
        report.partitions[file.name] = len(frame)
        frames.append(frame)
    return frames


def read_all(data: DataParams, paths: Paths, report: IngestReport) -> pd.DataFrame:
    """The source (unless ``data.partitions.use_source`` is false) and then every
    partition, as one table; a partition column the source lacks is an error."""
    frames = [read_source(data.source)] if data.partitions.use_source else []
    if frames and frames[0].empty:
        raise IngestError("data.source: the source returned no rows")
    parts = _read_partitions(data, paths, report)
    if not frames and not parts:
        raise IngestError(
            f"data.partitions.use_source is false but {data.partitions.dir} holds no partition; "
            "run `cycleml retrain` first or set data.partitions.use_source: true"
        )
    if frames:
        known = {str(c).strip() for c in frames[0].columns}
        for name, part in zip(report.partitions, parts, strict=True):
            extra = sorted(str(c) for c in part.columns if str(c).strip() not in known)
            if extra:
                raise IngestError(
                    f"{data.partitions.dir}/{name}: column(s) {extra} are not in data.source; "
                    "remove the partition or add the columns to the source"
                )
            part.columns = [str(c) for c in part.columns]
    tables = frames + parts
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)
