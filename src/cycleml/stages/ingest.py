"""Stage `ingest`: read the configured source and apply explicit cleaning rules.

Real tables are messy: numbers stored as text with blanks, ``?`` as a missing marker,
stray whitespace, duplicate rows. Each rule is a knob under ``data.clean`` and every
change it makes is counted in ``reports/ingest.json``, so nothing happens silently.
Output: ``data/raw/data.parquet`` (a DVC output, so each version is kept in the cache).
The report also records which version of the source was read (a file's md5, a SQL or URL
source's fingerprint) and warns when DVC could not see that version change.
"""

from __future__ import annotations

from cycleml.config import Params
from cycleml.data.cleaning import clean
from cycleml.data.sources import IngestError, IngestReport, read_all, source_version, unversioned
from cycleml.files import write_json, write_parquet
from cycleml.paths import Paths

__all__ = ["run"]


def run(params: Params, paths: Paths) -> IngestReport:
    """Read the source and the partitions, clean them, write ``data/raw/data.parquet``."""
    data = params.data
    found = IngestReport()
    frame = read_all(data, paths, found)
    if frame.empty:
        raise IngestError("data.source: the source returned no rows")
    cleaned, report = clean(frame, data)
    report.partitions = found.partitions
    if data.partitions.use_source:
        report.source = source_version(data.source)
        report.warnings = unversioned(data.source, paths)
    write_parquet(paths.raw, cleaned)
    write_json(paths.report("ingest.json"), report.__dict__)
    return report
