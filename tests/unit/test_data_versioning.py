"""DVC sees the user's data: file sources live in data/external/ (ingest's dependency), and a
source DVC cannot hash (a URL, a SQL query) carries a fingerprint param. Ingest records the
version it read (md5 or fingerprint) for the lineage tags, and warns when DVC is blind."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cycleml.config import ConfigError, parse_params
from cycleml.data.sources import SOURCE_DIR, source_version, unversioned
from cycleml.model.tracking import lineage_tags
from cycleml.stages import ingest
from tests.conftest import REPO, Project, small_params

pytestmark = pytest.mark.unit


def _table(path: Path, rows: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"x": range(rows), "y": ["Yes", "No"] * (rows // 2)})
    frame.to_csv(path, index=False)
    return path


def _params(source: dict[str, Any]) -> Any:
    return parse_params(small_params(data={"source": source, "target": "y"}))


def test_a_file_in_data_external_is_recorded_by_md5_and_tagged(project: Project) -> None:
    csv = _table(project.root / SOURCE_DIR / "churn.csv")
    params = _params({"kind": "file", "path": f"{SOURCE_DIR}/churn.csv"})

    report = ingest.run(params, project.paths)

    md5 = hashlib.md5(csv.read_bytes(), usedforsecurity=False).hexdigest()
    assert report.source == {"kind": "file", "path": "data/external/churn.csv", "md5": md5}
    assert report.warnings == []
    tags = lineage_tags(params, project.paths)  # read back from reports/ingest.json
    assert tags["cycleml.data.source.md5"] == md5
    assert tags["cycleml.data.source.path"] == "data/external/churn.csv"


def test_a_file_outside_data_external_warns_naming_the_fix(project: Project) -> None:
    _table(project.root / "churn.csv")
    params = _params({"kind": "file", "path": "churn.csv"})

    report = ingest.run(params, project.paths)

    [warning] = report.warnings
    assert warning.startswith("data.source.path: churn.csv is outside data/external/")
    assert "move the file into data/external/" in warning
    assert f"warning: {warning}" in report.lines()
    assert report.source["md5"]  # still recorded: the lineage holds either way


def test_a_link_in_data_external_counts_as_inside(project: Project, tmp_path: Path) -> None:
    """DVC follows links when it hashes the folder, so a big file kept elsewhere and linked
    into data/external/ is seen: no warning."""
    target = _table(tmp_path / "elsewhere" / "big.csv")
    link = project.root / SOURCE_DIR / "big.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    source = _params({"kind": "file", "path": "data/external/big.csv"}).data.source
    assert unversioned(source, project.paths) == []


def test_sql_without_fingerprint_warns_and_with_one_is_recorded(project: Project) -> None:
    db = project.root / "crm.db"
    with sqlite3.connect(db) as conn:
        pd.read_csv(_table(project.root / "t.csv")).to_sql("customers", conn, index=False)
    sql = {"kind": "sql", "url": f"sqlite:///{db}", "query": "SELECT * FROM customers"}

    blind = ingest.run(_params(sql), project.paths)
    [warning] = blind.warnings
    assert warning.startswith("data.source.fingerprint is not set and DVC cannot hash a SQL")
    assert blind.source == {"kind": "sql"}

    versioned = ingest.run(_params({**sql, "fingerprint": "2024-06-01"}), project.paths)
    assert versioned.warnings == []
    assert versioned.source == {"kind": "sql", "fingerprint": "2024-06-01"}
    tags = lineage_tags(_params(sql), project.paths)
    assert tags["cycleml.data.source.fingerprint"] == "2024-06-01"


def test_a_url_needs_a_fingerprint_and_is_not_recorded(project: Project) -> None:
    """A URL may carry credentials: only the kind and the fingerprint are recorded."""
    url = {"kind": "file", "path": "https://user:secret@example.org/churn.csv"}
    source = _params(url).data.source
    assert "cannot hash a URL" in unversioned(source, project.paths)[0]
    assert source_version(_params({**url, "fingerprint": 7}).data.source) == {
        "kind": "file",
        "fingerprint": "7",
    }


@pytest.mark.parametrize(("written", "read"), [("2024-06-01", "2024-06-01"), ("3", "3")])
def test_fingerprint_as_yaml_or_dvc_exp_run_writes_it(written: str, read: str) -> None:
    """``dvc exp run -S data.source.fingerprint=2024-06-01`` writes it unquoted: a date."""
    from cycleml.config import read_yaml

    source = {"kind": "sql", "url": "sqlite://", "query": "q", "fingerprint": read_yaml(written)}
    assert _params(source).data.source.fingerprint == read


def test_a_fingerprint_that_is_not_a_value_is_refused() -> None:
    source = {"kind": "sql", "url": "sqlite://", "query": "q", "fingerprint": ["a"]}
    with pytest.raises(ConfigError, match=r"data\.source\.fingerprint"):
        _params(source)


def test_stage_deps_keeps_the_data_folders_and_fails_without_them(tmp_path: Path) -> None:
    """``make deps`` rewrites only code deps; a dvc.yaml whose ingest lost data/external
    fails the check, named."""
    dvc = tmp_path / "dvc.yaml"
    shutil.copy(REPO / "dvc.yaml", dvc)
    script = [sys.executable, "scripts/stage_deps.py", "--dvc-file", str(dvc)]
    subprocess.run([*script, "--write"], cwd=REPO, check=True, capture_output=True)
    assert dvc.read_text(encoding="utf-8") == (REPO / "dvc.yaml").read_text(encoding="utf-8")

    text = dvc.read_text(encoding="utf-8")
    dvc.write_text("\n".join(x for x in text.splitlines() if "- data/external" not in x))
    done = subprocess.run([*script, "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1
    assert "ingest: dvc.yaml misses ['data/external']" in done.stdout
