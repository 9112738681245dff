"""`make audit`: known vulnerabilities in requirements.lock (pip-audit), said plainly.

Exit 0 when no pinned package has a known vulnerability, 1 when one has, 2 when nothing
could be audited (the vulnerability database, PyPI's JSON API, is out of reach, or
pip-audit failed): an audit that checked nothing must not pass as a clean one. Set
``CYCLEML_SKIP_AUDIT=1`` (``make audit SKIP_AUDIT=1``, ``make check SKIP_AUDIT=1``) to skip
it on purpose, offline; that is said too, and exits 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SKIP_ENV = "CYCLEML_SKIP_AUDIT"
NOT_AUDITED = 2
# how requests reports a database it could not reach (pip-audit then dies with a traceback)
_NETWORK_ERRORS = ("ConnectionError", "ProxyError", "ConnectTimeout", "ReadTimeout", "SSLError")


def not_audited(why: str) -> int:
    print(
        f"audit: not audited: {why}; run `make audit` where PyPI is reachable, or skip it "
        f"on purpose with `make check SKIP_AUDIT=1` ({SKIP_ENV}=1)",
        file=sys.stderr,
    )
    return NOT_AUDITED


def verdict(report: dict[str, Any]) -> int:
    """Print what pip-audit's JSON report found; the exit status it deserves."""
    packages = report.get("dependencies", [])
    audited = [p for p in packages if "skip_reason" not in p]
    if not audited:  # each lookup failed: the database answered nothing usable
        return not_audited(
            f"the vulnerability database gave no answer for any of the {len(packages)} "
            "pinned packages"
        )
    found = [(p["name"], p["version"], v) for p in audited for v in p.get("vulns", [])]
    for name, version, vuln in found:
        fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
        print(f"audit: {name} {version}: {vuln['id']} (fixed in {fixes})")
    skipped = len(packages) - len(audited)
    print(
        f"audit: {len(audited)} packages checked, {len(found)} known vulnerabilities"
        + (f", {skipped} not found in the database" if skipped else "")
    )
    return 1 if found else 0


def main() -> int:
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        print(f"audit: audit skipped on request ({SKIP_ENV}); no package was checked")
        return 0
    pip_audit = Path(sys.executable).parent / "pip-audit"
    done = subprocess.run(
        [
            str(pip_audit),
            *("-r", "requirements.lock", "--no-deps", "--disable-pip"),
            *("-f", "json", "--progress-spinner", "off"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        # the error's own words, without urllib3's nested "(Caused by ...)" chain
        last = (done.stderr.strip().splitlines() or ["no output"])[-1].split(" (Caused by")[0]
        if any(f"requests.exceptions.{name}" in done.stderr for name in _NETWORK_ERRORS):
            return not_audited(f"the vulnerability database is unreachable ({last})")
        return not_audited(f"pip-audit failed: {last}")
    return verdict(report)


if __name__ == "__main__":
    sys.exit(main())
