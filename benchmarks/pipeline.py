"""The pipeline as a user runs it: the whole demo pipeline (`dvc repro` in a fresh git +
DVC project), `dvc repro` with nothing changed, and `cycleml --help`.

The project this makes is the one every other section measures: its champion is the
model both sides of each comparison serve or score.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import BIN, REPO, Size, median, repeat, run


def make_project(root: Path, size: Size) -> Path:
    """A git + DVC copy of the repository's pipeline in ``root``: its source, dvc.yaml,
    contracts and params.yaml (the defaults; the demo rows cut for a tiny run)."""
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "contracts", root / "contracts")
    shutil.copytree(REPO / "data" / "partitions", root / "data" / "partitions")
    shutil.copytree(REPO / "data" / "external", root / "data" / "external")
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    if size.rows is not None:  # tiny: a small table and a quick model
        raw["data"]["source"]["rows"] = size.rows
        raw["tune"]["enabled"] = False
        raw["train"]["xgboost"]["n_estimators"] = 60
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    run(["git", "init", "-q"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(
        [
            "git",
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-qm",
            "benchmark project",
        ],
        root,
    )
    return root


def build(project: Path) -> float:
    """`dvc repro` of the whole pipeline: a registered champion; the seconds it took."""
    return run([str(BIN / "dvc"), "repro"], project).seconds


def measure(project: Path, size: Size) -> dict[str, Any]:
    whole = build(project)
    noop = repeat(max(3, size.repeats), lambda: run([str(BIN / "dvc"), "repro"], project))
    if any("Running stage" in r.output for r in noop):
        raise RuntimeError("`dvc repro` reran a stage with nothing changed:\n" + noop[0].output)
    helps = repeat(max(5, size.repeats), lambda: run([str(BIN / "cycleml"), "--help"], project))
    return {
        "demo_pipeline_s": whole,
        "repro_noop_s": median([r.seconds for r in noop]),
        "help_s": median([r.seconds for r in helps]),
    }
