"""`make audit`: known vulnerabilities in requirements.lock (pip-audit), said plainly.

Exit 1 when a pinned package has a known vulnerability; 0 when none has, or when the
vulnerability database (PyPI's JSON API) cannot be reached from this machine, which is
reported, not hidden: an offline audit proves nothing either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    pip_audit = Path(sys.executable).parent / "pip-audit"
    done = subprocess.run(
        [str(pip_audit), "-r", "requirements.lock", "--no-deps", "--disable-pip", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"audit: pip-audit failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return 1
    packages = report.get("dependencies", [])
    audited = [p for p in packages if "skip_reason" not in p]
    if not audited:
        print(
            f"audit: skipped, the vulnerability database is unreachable from here "
            f"({len(packages)} pinned packages not checked); run `make audit` online"
        )
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
