"""The Makefile's servers bind 127.0.0.1 whatever HOST the environment exports, and
`make audit` / `make check` never pass an audit that checked nothing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from typing import Any

import pytest

from cycleml.demo.harness import free_port
from tests.conftest import REPO

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make"),
]


def make(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``make`` in the repository, its ``install`` step taken as done (``-o install``)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "CYCLEML_HOST")}
    return subprocess.run(
        ["make", "--no-print-directory", "-o", "install", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def hosts(*args: str, **env: str) -> list[str]:
    """The --host of every server `make -n` would start."""
    done = make("-n", "serve", "ui", "monitor-ui", *args, **env)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    return [words[i + 1] for i, word in enumerate(words) if word == "--host"]


def test_an_exported_host_does_not_expose_the_servers() -> None:
    assert hosts(HOST="0.0.0.0") == ["127.0.0.1"] * 3
    assert hosts(HOST="0.0.0.0", CYCLEML_HOST="::1") == ["::1"] * 3  # asked by its own name
    assert hosts("HOST=10.1.2.3", HOST="0.0.0.0") == ["10.1.2.3"] * 3  # make's command line


def unreachable_pypi() -> dict[str, str]:
    """Every HTTPS request through a proxy where nothing listens: PyPI out of reach."""
    proxy = f"http://127.0.0.1:{free_port()}"
    return {"HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}


def test_make_audit_offline_says_not_audited_and_fails() -> None:
    done = make("audit", **unreachable_pypi())
    assert done.returncode != 0
    assert "not audited: the vulnerability database is unreachable" in done.stderr
    assert "SKIP_AUDIT=1" in done.stderr  # the way to skip it on purpose


def test_skipping_the_audit_is_said_and_passes_through_make_check() -> None:
    done = make("audit", "SKIP_AUDIT=1", **unreachable_pypi())
    assert done.returncode == 0, done.stderr
    assert "audit skipped on request" in done.stdout
    check = make("-n", "check", "SKIP_AUDIT=1").stdout.splitlines()
    assert check[-1] == "CYCLEML_SKIP_AUDIT=1 .venv/bin/python scripts/audit.py"
    assert make("-n", "check").stdout.splitlines()[-1] == ".venv/bin/python scripts/audit.py"


def audit_script() -> Any:
    spec = importlib.util.spec_from_file_location("audit", REPO / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_report_where_every_lookup_failed_is_not_a_clean_audit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    audit = audit_script()
    missing = {"name": "x", "skip_reason": "Dependency not found on PyPI and could not be audited"}
    assert audit.verdict({"dependencies": [missing, {**missing, "name": "y"}]}) == 2
    assert "not audited" in capsys.readouterr().err
    clean = {"name": "z", "version": "1.0", "vulns": []}
    assert audit.verdict({"dependencies": [missing, clean]}) == 0
    assert "1 packages checked, 0 known vulnerabilities, 1 not found" in capsys.readouterr().out
    vulnerable = {**clean, "vulns": [{"id": "PYSEC-1", "fix_versions": ["1.1"]}]}
    assert audit.verdict({"dependencies": [vulnerable]}) == 1
    assert "z 1.0: PYSEC-1 (fixed in 1.1)" in capsys.readouterr().out
