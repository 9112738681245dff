"""Bad data stops the pipeline with the column and the fix named, and leaves the previous
outputs and the model registry as they were.

One project is trained once per module through the real CLI on a user CSV (source kind
``file``), so a champion v1 is registered; each case then overwrites that CSV with a broken
variant and runs ``cycleml ingest`` and ``cycleml validate`` (stopping at the first that
fails), as ``dvc repro`` would.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cycleml.data.demo import generate_churn
from tests.conftest import STAGES, small_params

pytestmark = pytest.mark.integration
CYCLEML = Path(sys.executable).parent / "cycleml"
MODEL = "cycleml-churn"
SOURCE = Path("incoming") / "customers.csv"  # outside data/, as a user's export would be
GOOD = generate_churn(1500, 7)
OUTPUTS = (
    "data/raw/data.parquet",
    "reports/ingest.json",
    "data/interim/schema.json",
    "reports/validate.json",
    "contracts/customers.yaml",
    "metrics/evaluate.json",
    "mlflow.db",
)
"""Previous outputs a failed ingest or validate must leave byte-identical (plus models/)."""
WRITTEN_BY_INGEST = ("data/raw/data.parquet", "reports/ingest.json")
"""What ingest legitimately rewrites when it reads the file and validate then refuses it."""


def _env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "CYCLEML_ROOT"
    }
    # rich wraps stderr at 80 columns when it is not a terminal: keep each message on a line
    env.update(
        COLUMNS="10000", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", DVC_NO_ANALYTICS="1"
    )
    return env


def cycleml(stage: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CYCLEML), stage], cwd=root, env=_env(), capture_output=True, text=True, timeout=600
    )


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every previous output: the files in OUTPUTS and everything under models/."""
    files = [root / name for name in OUTPUTS]
    files += sorted(p for p in (root / "models").rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def registry(root: Path) -> tuple[dict[str, tuple[int | None, dict[str, str]]], str]:
    """Every version of the model (last update time, tags) and the champion's version."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    versions = {
        str(v.version): (v.last_updated_timestamp, dict(v.tags))
        for v in client.search_model_versions(f"name='{MODEL}'")
    }
    return versions, str(client.get_model_version_by_alias(MODEL, "champion").version)


@dataclass
class Trained:
    root: Path
    saved: dict[str, bytes]
    """The good CSV and every output, put back before each case."""
    outputs: dict[str, str]
    versions: dict[str, tuple[int | None, dict[str, str]]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CYCLEML_ROOT"):
        os.environ.pop(name, None)  # module scope: the autouse env fixture has not run yet
    root = tmp_path_factory.mktemp("bad-data")
    (root / SOURCE).parent.mkdir()
    GOOD.to_csv(root / SOURCE, index=False)
    raw = small_params(rows=1500, data__source={"kind": "file", "path": str(SOURCE), "sep": ","})
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for stage in STAGES:
        done = cycleml(stage, root)
        assert done.returncode == 0, f"{stage}: {done.stderr}"

    versions, champion = registry(root)
    assert list(versions) == ["1"] and champion == "1"
    outputs = snapshot(root)
    assert any(name.startswith("models/model/") for name in outputs)
    saved = {name: (root / name).read_bytes() for name in (str(SOURCE), *outputs)}
    yield Trained(root, saved, outputs, versions)


@pytest.fixture
def project(trained: Trained) -> Path:
    """The trained project as the pipeline left it: an earlier case's ingest may have
    rewritten data/raw from its bad file before validate refused it (and a failing case
    may have changed more), so every case starts from the same outputs."""
    for name, content in trained.saved.items():
        (trained.root / name).write_bytes(content)
    return trained.root


def _csv(frame: pd.DataFrame, **options: Any) -> bytes:
    return frame.to_csv(index=False, **options).encode()


def missing_column(good: pd.DataFrame) -> bytes:
    return _csv(good.drop(columns="tenure_months"))


def extra_column(good: pd.DataFrame) -> bytes:
    return _csv(good.assign(loyalty_points=np.arange(len(good)) % 7))


def wrong_dtype(good: pd.DataFrame) -> bytes:
    charges = good["monthly_charges"].astype(object)
    charges.iloc[:1200] = "high"  # text in a numeric column, most rows
    return _csv(good.assign(monthly_charges=charges))


def unseen_category(good: pd.DataFrame) -> bytes:
    contract = good["contract"].copy()
    contract.iloc[::5] = "Weekly"  # 20% of rows on a contract the model never saw
    return _csv(good.assign(contract=contract))


def all_nan_column(good: pd.DataFrame) -> bytes:
    return _csv(good.assign(support_calls=np.nan))  # the header is there, every value empty


def empty_file(good: pd.DataFrame) -> bytes:
    return b""


def header_only(good: pd.DataFrame) -> bytes:
    return _csv(good.iloc[:0])


def wrong_delimiter(good: pd.DataFrame) -> bytes:
    return _csv(good, sep=";")  # params say sep ','


def non_utf8(good: pd.DataFrame) -> bytes:
    payment = good["payment_method"].copy()
    payment.iloc[:50] = "Crédit agricole (prélèvement)"
    return good.assign(payment_method=payment).to_csv(index=False).encode("latin-1")


def duplicated_header(good: pd.DataFrame) -> bytes:
    renamed = ["monthly_charges" if c == "support_calls" else c for c in good.columns]
    return _csv(good.set_axis(renamed, axis=1))


CONTRACT_FIX = "Fix the data, or edit the contract if the change is intended"
CASES = [
    pytest.param(
        missing_column,
        "validate",
        [
            "column 'tenure_months' breaks required: the column is missing from the data.",
            CONTRACT_FIX,
        ],
        id="missing-column",
    ),
    pytest.param(
        extra_column,
        "validate",
        [
            "column 'loyalty_points' breaks columns: a new column the contract does not list; "
            "drop it with data.drop_columns, or add it to the contract to use it",
        ],
        id="extra-column",
    ),
    pytest.param(
        wrong_dtype,
        "validate",
        [
            "column 'monthly_charges' breaks type: not numeric as the contract says, e.g. ['high']",
            CONTRACT_FIX,
        ],
        id="wrong-dtype",
    ),
    pytest.param(
        unseen_category,
        "validate",
        ["column 'contract' breaks categories: ", "not an allowed category", "['Weekly']"]
        + [CONTRACT_FIX],
        id="unseen-category",
    ),
    pytest.param(
        all_nan_column,
        "validate",
        [
            "column 'support_calls' breaks required: the column is missing from the data "
            "(ingest dropped it: every value is missing)",
            CONTRACT_FIX,
        ],
        id="all-nan-column",
    ),
    pytest.param(
        empty_file,
        "ingest",
        [
            f"data.source: {SOURCE} is empty (no header, no rows); re-export the file, "
            "or point data.source.path at one with data",
        ],
        id="empty-file",
    ),
    pytest.param(
        header_only,
        "ingest",
        [
            f"data.source: {SOURCE} has a header but no data rows; re-export the file, "
            "or point data.source.path at one with rows",
        ],
        id="header-only",
    ),
    pytest.param(
        wrong_delimiter,
        "ingest",
        [
            "data.source.sep is ',' but the file reads as one column ('customer_id;signup_date",
            "looks ';'-separated; set data.source.sep: ';'",
        ],
        id="wrong-delimiter",
    ),
    pytest.param(
        non_utf8,
        "ingest",
        [
            "data.source: the file is not valid utf-8 (line 2, column 'payment_method', byte 0xe9",
            "set data.source.encoding, e.g. latin-1",
        ],
        id="non-utf8",
    ),
    pytest.param(
        duplicated_header,
        "ingest",
        [
            "data.source: the header names column(s) ['monthly_charges'] more than once; "
            "rename the duplicates in the file",
        ],
        id="duplicated-header",
    ),
]


@pytest.mark.parametrize(("write", "fails_at", "says"), CASES)
def test_bad_data_stops_naming_column_and_fix_and_keeps_outputs_and_registry(
    trained: Trained,
    project: Path,
    write: Callable[[pd.DataFrame], bytes],
    fails_at: str,
    says: list[str],
) -> None:
    before = snapshot(project)
    (project / SOURCE).write_bytes(write(GOOD))

    ran: dict[str, subprocess.CompletedProcess[str]] = {}
    for stage in ("ingest", "validate"):
        ran[stage] = cycleml(stage, project)
        if ran[stage].returncode:
            break
    # the stage expected to refuse the file is the first to fail: ingest passes bad *content*
    # on to validate, but must itself refuse a file it cannot read as the table it should be
    assert list(ran) == (["ingest"] if fails_at == "ingest" else ["ingest", "validate"])
    failed = ran[fails_at]
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    assert f"✗ {fails_at} failed:" in failed.stderr
    for text in says:
        assert text in failed.stderr

    after = snapshot(project)
    if fails_at == "ingest":
        assert after == before
    else:  # ingest read the bad file and rewrote its own outputs; nothing later moved
        assert after["data/raw/data.parquet"] != before["data/raw/data.parquet"]
        kept = {k: v for k, v in before.items() if k not in WRITTEN_BY_INGEST}
        assert {k: v for k, v in after.items() if k not in WRITTEN_BY_INGEST} == kept

    versions, champion = registry(project)
    assert versions == trained.versions
    assert champion == "1"
