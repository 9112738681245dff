"""Keep dvc.yaml's code deps equal to the code each stage runs.

Each stage ``cycleml <name>`` runs ``src/cycleml/stages/<name>.py`` and everything it
imports inside ``cycleml``, at module level or inside functions, transitively (plus the
``__init__.py`` of every package on the way that holds more than a docstring, since
Python runs it too). That set, written as
whole folders where a stage runs every module of one and as single files elsewhere, must
be exactly the stage's ``src/cycleml`` deps in dvc.yaml: then editing any code a stage
runs re-runs it, and editing code it does not run does not. The CLI layer is left out: it
parses and prints, and what it prints is not a stage output.

Only the ``src/cycleml`` lines are rewritten; every other dep (data, earlier stages'
outputs) stays as written. The data folders in ``DATA_DEPS`` must stay: without them DVC
would not see a changed source file or a new partition, and the check says so.

    python scripts/stage_deps.py            # show each stage's closure and what differs
    python scripts/stage_deps.py --check    # exit 1 when dvc.yaml differs (tests, CI)
    python scripts/stage_deps.py --write    # rewrite the src/cycleml deps in dvc.yaml
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "cycleml"
DATA_DEPS = {"ingest": ["data/external", "data/partitions"]}
"""Non-code deps a stage must list: where ingest's data lives (file sources in
data/external, ``cycleml.data.sources.SOURCE_DIR``; ``cycleml retrain``'s partitions)."""


def module_file(module: str) -> Path | None:
    """The file of ``module`` (``a.b`` -> src/a/b.py or src/a/b/__init__.py), if it exists."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(module: str, file: Path) -> set[str]:
    """``cycleml`` modules ``file`` imports anywhere in its body (``from x import y`` counts
    ``x.y`` too when ``y`` is a module)."""
    found: set[str] = set()
    is_package = file.name == "__init__.py"
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m) is not None}


def is_code(file: Path) -> bool:
    """False for a module that is only a docstring (a package's ``__init__.py`` here)."""
    body = ast.parse(file.read_text(encoding="utf-8")).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def closure(stage: str) -> set[Path]:
    """Every file under src/cycleml that ``cycleml <stage>`` runs (the CLI aside)."""
    todo, seen = [f"{PACKAGE}.stages.{stage}"], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        file = module_file(module)
        if file is not None:
            todo.extend(imported_modules(module, file) - seen)
    files = {module_file(m) for m in seen}
    return {f for f in files if f is not None and is_code(f)}


def as_deps(files: set[Path]) -> list[str]:
    """``files`` as dvc deps: a whole folder where every module of it is run, else files."""
    deps: set[str] = set()
    folders = {f.parent for f in files if f.parent != SRC / PACKAGE}
    whole = {d for d in folders if {f for f in d.glob("*.py") if is_code(f)} <= files}
    for f in files:
        deps.add(str((f.parent if f.parent in whole else f).relative_to(ROOT)))
    return sorted(deps)


def declared(dvc: dict, stage: str) -> list[str]:
    code = f"src/{PACKAGE}/"
    return sorted(
        d.rstrip("/") for d in dvc["stages"][stage].get("deps", []) if str(d).startswith(code)
    )


def stages(dvc_file: Path) -> list[str]:
    dvc = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))
    return [s for s in dvc["stages"] if module_file(f"{PACKAGE}.stages.{s}")]


def differences(dvc_file: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Per stage whose deps are wrong: (missing from dvc.yaml, listed but not run)."""
    dvc = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))
    out = {}
    for stage in stages(dvc_file):
        want, have = as_deps(closure(stage)), declared(dvc, stage)
        listed = {str(d).rstrip("/") for d in dvc["stages"][stage].get("deps", [])}
        data = [d for d in DATA_DEPS.get(stage, []) if d not in listed]
        if want != have or data:
            out[stage] = (sorted(set(want) - set(have)) + data, sorted(set(have) - set(want)))
    return out


def rewrite(dvc_file: Path) -> None:
    """Replace each stage's ``- src/cycleml...`` dep lines by its closure, in place."""
    lines = dvc_file.read_text(encoding="utf-8").splitlines(keepends=True)
    out: list[str] = []
    stage = None
    for line in lines:
        if m := re.match(r"^  (\w+):\s*$", line):
            stage = m.group(1)
        if m := re.match(rf"^(\s+)- src/{PACKAGE}/", line):
            if stage is not None and module_file(f"{PACKAGE}.stages.{stage}"):
                indent = m.group(1)
                out.extend(f"{indent}- {dep}\n" for dep in as_deps(closure(stage)))
                stage = None  # written once, at the first code dep
            continue
        out.append(line)
    dvc_file.write_text("".join(out), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml differs")
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    parser.add_argument("--dvc-file", type=Path, default=ROOT / "dvc.yaml")
    args = parser.parse_args()
    if args.write:
        rewrite(args.dvc_file)
    wrong = differences(args.dvc_file)
    for stage, (missing, extra) in wrong.items():
        print(f"{stage}: dvc.yaml misses {missing or 'nothing'}; lists unrun {extra or 'nothing'}")
    if not wrong:
        print(f"dvc.yaml: the code deps of {len(stages(args.dvc_file))} stages match their imports")
    return 1 if wrong and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
