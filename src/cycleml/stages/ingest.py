"""Stage `ingest`: read the configured source and apply explicit cleaning rules.

Real tables are messy: numbers stored as text with blanks, ``?`` as a missing marker,
stray whitespace, duplicate rows. Each rule is a knob under ``data.clean`` and every
change it makes is counted in ``reports/ingest.json``, so nothing happens silently.
Output: ``data/raw/data.parquet`` (a DVC output, so each version is kept in the cache).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cycleml.config import CleanRules, DataParams, DemoSource, FileSource, SqlSource
from cycleml.io import write_json, write_parquet
from cycleml.paths import Paths

__all__ = [
    "IngestError",
    "IngestReport",
    "clean",
    "partition_files",
    "read_all",
    "read_source",
    "run",
]


_MAX_UNPARSED_DATES = 0.02
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"
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
        return out


def _sniff_sep(source: FileSource) -> str:
    import fsspec

    with fsspec.open(source.path, "rb", compression="infer") as fh:
        sample = fh.read(64 * 1024).decode(source.encoding, errors="replace")
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


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
            from cycleml.demo import generate_churn

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


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])
    ]


def clean(frame: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, IngestReport]:
    """Apply ``data.clean`` rules and ``data.drop_columns``; pure, returns a new frame."""
    rules: CleanRules = data.clean
    report = IngestReport(rows_read=len(frame), columns_read=frame.shape[1])
    frame = frame.copy()
    frame.columns = [str(c).strip() if rules.strip_whitespace else str(c) for c in frame.columns]
    repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise IngestError(
            f"column(s) {repeated} appear more than once in the data; rename the duplicates "
            "in data.source so every column has its own name"
        )

    unknown = [c for c in data.drop_columns if c not in frame.columns]
    if unknown:
        raise IngestError(
            f"data.drop_columns: {unknown} not in the data; columns are {list(frame.columns)}"
        )
    for col in data.drop_columns:
        report.dropped_columns[col] = "data.drop_columns"
    frame = frame.drop(columns=list(data.drop_columns))

    keep_text = {*data.id_columns}
    markers = set(rules.na_values)
    for col in _text_columns(frame):
        values = _clean_text_column(
            col, frame[col], markers, rules, report, numeric=col not in keep_text
        )
        if values.dtype == object and col not in keep_text and col != data.time_column:
            values = _maybe_iso_dates(col, values, rules.numeric_text_threshold, report)
        frame[col] = values

    skip_cast = {data.target, *data.id_columns}
    for col in frame.columns:
        s = frame[col]
        if col not in skip_cast and (
            pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s)
        ):
            # one numeric type for every feature: missing values fit, schemas stay simple
            frame[col] = s.astype("float64")

    if data.time_column and data.time_column in frame.columns:
        frame[data.time_column] = _parse_time(frame[data.time_column], data, report)

    if rules.drop_empty_columns:
        for col in frame.columns[frame.isna().all()]:
            if col != data.target:
                report.dropped_columns[col] = "every value is missing"
                frame = frame.drop(columns=col)

    if rules.drop_duplicates:
        before = len(frame)
        frame = frame.drop_duplicates(ignore_index=True)
        report.duplicates_dropped = before - len(frame)

    report.rows_written = len(frame)
    return frame.reset_index(drop=True), report


def _clean_text_column(
    col: str,
    raw: pd.Series,
    markers: set[str],
    rules: CleanRules,
    report: IngestReport,
    numeric: bool,
) -> pd.Series:
    """One text column: whitespace stripped, missing markers made missing, and numbers
    stored as text parsed when at least ``numeric_text_threshold`` of the present values
    parse. Each rule runs once per distinct value, not once per row (a million rows of a
    few categories cost a few lookups); the result is what applying them row by row gives.
    """
    values = raw.astype("object")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    texts = [str(u).strip() if rules.strip_whitespace else u for u in uniques]
    marker = np.array([t in markers for t in texts], dtype=bool)
    if n := int(counts[marker].sum()):
        report.na_markers[col] = n
    kept = np.array([None if m else t for t, m in zip(texts, marker, strict=True)], dtype=object)
    n_present = int(counts[~marker].sum())
    if numeric and n_present:
        numbers = pd.to_numeric(pd.Series(kept, dtype=object), errors="coerce").astype("float64")
        parsed = numbers.notna().to_numpy()
        if counts[parsed].sum() / n_present >= rules.numeric_text_threshold:
            bad = ~parsed & ~marker
            if bad.any():  # as before: the first 50 bad rows, three distinct examples
                rows = np.flatnonzero(np.isin(codes, np.flatnonzero(bad)))[:50]
                examples = sorted({str(v) for v in values.iloc[rows]})[:3]
            else:
                examples = []
            report.numeric_from_text[col] = {
                "unparsed": int(counts[bad].sum()),
                "examples": examples,
            }
            table = np.append(numbers.to_numpy(), np.nan)  # code -1 (missing): NaN
            return pd.Series(table[codes], index=raw.index, dtype="float64")
    out = np.append(kept, np.array([None], dtype=object))[codes]
    missing = np.flatnonzero(codes < 0)
    out[missing] = values.to_numpy()[missing]  # missing values stay as they came
    return pd.Series(out, index=raw.index, dtype="object")


def _parse_time(raw: pd.Series, data: DataParams, report: IngestReport) -> pd.Series:
    """The time column as datetimes; fails when many values are not in the expected format."""
    if pd.api.types.is_datetime64_any_dtype(raw) and not data.time_format:
        return raw
    parsed = pd.to_datetime(raw, format=data.time_format or "ISO8601", errors="coerce")
    report.time_column_unparsed = int(parsed.isna().sum() - raw.isna().sum())
    if report.time_column_unparsed > _MAX_UNPARSED_DATES * max(int(raw.notna().sum()), 1):
        examples = raw[parsed.isna() & raw.notna()].astype(str).head(3).tolist()
        raise IngestError(
            f"data.time_column {data.time_column!r}: {report.time_column_unparsed:,} values "
            f"are not dates in the expected format (e.g. {examples}); set data.time_format, "
            "e.g. '%d/%m/%Y'"
        )
    return parsed


def _maybe_iso_dates(
    col: str, values: pd.Series, threshold: float, report: IngestReport
) -> pd.Series:
    """Text that is ISO dates becomes datetimes, so it is not mistaken for a category."""
    present = values.dropna().astype(str)
    if present.empty or not present.head(200).str.match(_ISO_DATE).all():
        return values
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    if parsed.notna().sum() < threshold * len(present):
        return values
    report.dates_from_text.append(col)
    return parsed


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


def run(data: DataParams, paths: Paths) -> IngestReport:
    """Read the source and the partitions, clean them, write ``data/raw/data.parquet``."""
    found = IngestReport()
    frame = read_all(data, paths, found)
    if frame.empty:
        raise IngestError("data.source: the source returned no rows")
    cleaned, report = clean(frame, data)
    report.partitions = found.partitions
    write_parquet(paths.raw, cleaned)
    write_json(paths.report("ingest.json"), report.__dict__)
    return report
