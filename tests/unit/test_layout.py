"""The package layout holds: import layers, the serving path, private names, dvc deps.

These run the same checks as ``make check`` so that CI, which runs ``make test``, keeps
them green too.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _imports(file: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every ``from cycleml... import`` in ``file``."""
    out = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cycleml"):
            out.append((node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names if a.name.startswith("cycleml"))
    return out


def test_import_layers_hold() -> None:
    """cli -> stages -> library -> leaves, as pyproject's import-linter contracts say."""
    done = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_service_imports_the_library_only() -> None:
    """serving/service.py loads no stage, CLI, demo, evaluation or tuning code."""
    banned = ("cycleml.stages", "cycleml.cli", "cycleml.demo", "cycleml.evaluation")
    found = [m for m, _ in _imports(REPO / "serving" / "service.py") if m.startswith(banned)]
    assert found == []


def test_no_private_name_crosses_a_module() -> None:
    """``from cycleml.x import _y`` nowhere in src, serving, benchmarks or scripts."""
    crossing = []
    for folder in ("src", "serving", "benchmarks", "scripts"):
        for file in sorted((REPO / folder).rglob("*.py")):
            for module, names in _imports(file):
                crossing += [
                    f"{file.relative_to(REPO)}: {module}.{n}" for n in names if n[0] == "_"
                ]
    assert crossing == []


def test_dvc_code_deps_are_the_code_each_stage_runs() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/stage_deps.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_deps_check_fails_on_a_missing_dep(tmp_path: Path) -> None:
    """The check above can fail: drop one module train runs from a copy of dvc.yaml."""
    dvc = tmp_path / "dvc.yaml"
    shutil.copy(REPO / "dvc.yaml", dvc)
    text = dvc.read_text(encoding="utf-8")
    dep = "      - src/cycleml/model/pipeline.py\n"
    assert dep in text
    dvc.write_text(text.replace(dep, "", 1), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "scripts/stage_deps.py", "--check", "--dvc-file", str(dvc)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "src/cycleml/model/pipeline.py" in done.stdout
