"""Fuzz the HTTP service with Schemathesis, from its own OpenAPI document.

    python -m tests.fuzz.run --examples 150     # `make fuzz`: a fresh small project, served
    python -m tests.fuzz.run --url http://127.0.0.1:3000 --token "$CYCLEML_ADMIN_TOKEN"

Every generated request (valid, invalid and malformed) must get a documented answer: no
5xx, status codes and bodies as the document says, errors that name the problem and
never echo the payload (tests/fuzz/hooks.py). Exit status: Schemathesis' (0: clean).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "no_payload_echo",
    "client_errors_name_the_problem",
)


def fuzz(url: str, token: str, examples: int, seed: int = 7) -> tuple[int, int, str]:
    """Run Schemathesis against ``url``; returns its exit status, the number of requests
    it generated and its output."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{url}/docs.json",
            *("--checks", ",".join(CHECKS)),
            *("--max-examples", str(examples)),
            *("--seed", str(seed)),
            *("--header", f"Authorization: Bearer {token}"),
            "--no-color",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    found = re.search(r"(\d+) generated", output)
    return done.returncode, int(found[1]) if found else 0, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=150, help="per API operation")
    parser.add_argument("--url", help="a running service (default: serve a fresh project)")
    parser.add_argument("--token", default=os.environ.get("CYCLEML_ADMIN_TOKEN", ""))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.url:
        status, requests, output = fuzz(args.url, args.token, args.examples, args.seed)
    else:
        status, requests, output = _fuzz_a_fresh_project(args.examples, args.seed)
    print(output[-6000:])
    print(f"fuzz: {requests} requests generated, exit status {status}")
    return status


def _fuzz_a_fresh_project(examples: int, seed: int) -> tuple[int, int, str]:
    from cycleml.demo.harness import Service, demo_project

    with tempfile.TemporaryDirectory(prefix="cycleml-fuzz-") as tmp:
        root = Path(tmp)
        demo_project(REPO, root, trees=60)
        with Service.start(REPO, root) as service:
            return fuzz(service.url, service.token, examples, seed)


if __name__ == "__main__":
    sys.exit(main())
