"""Shared fixtures: an isolated project folder per test, with its own MLflow store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from cycleml import names
from cycleml.config import Params, apply_overrides, parse_params
from cycleml.paths import Paths, project_paths

REPO = Path(__file__).resolve().parents[1]
STAGES = names.STAGES
"""The pipeline's stages in dvc.yaml order (re-exported for the tests)."""

# Environment that must not leak in from the developer's shell or between tests.
_ISOLATED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CYCLEML_ROOT")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ISOLATED_ENV:
        # set-then-delete makes monkeypatch restore "absent" afterwards, also removing what
        # the test's code set (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI)
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def repo_params() -> dict[str, Any]:
    """The repository's params.yaml as a plain mapping, to modify per test."""
    loaded: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    return loaded


def small_params(rows: int = 2000, **overrides: Any) -> dict[str, Any]:
    """The default params on a small demo table with a quick model."""
    raw = repo_params()
    raw["data"]["source"]["rows"] = rows
    raw["train"]["xgboost"]["n_estimators"] = 60
    raw["tune"]["enabled"] = False  # tests that tune turn it on themselves
    return apply_overrides(raw, {key.replace("__", "."): v for key, v in overrides.items()})


def houses_csv(path: Path, rows: int = 1500) -> Path:
    """A public-data-like regression file: ';'-separated, '?' markers, numbers as text."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    size = rng.uniform(30, 200, rows)
    rooms = rng.integers(1, 6, rows)
    district = rng.choice(["north", "south", "east"], rows)
    price = 1000 * size + 15000 * rooms + np.where(district == "north", 40000, 0)
    price = price + rng.normal(0, 10000, rows)
    table = pd.DataFrame(
        {"size m2": size.round(1).astype(str), "rooms": rooms, "district": district, "price": price}
    )
    table.loc[rng.choice(rows, 30, replace=False), "size m2"] = "?"
    table.to_csv(path, sep=";", index=False)
    return path


class Project:
    """A throwaway project root: params.yaml plus the paths every stage uses."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: Paths = project_paths(root)

    def write_params(self, raw: dict[str, Any]) -> Params:
        self.paths.params.write_text(yaml.safe_dump(raw, sort_keys=False))
        return parse_params(raw)

    def run_stages(self, params: Params, *names: str) -> dict[str, Any]:
        """Run stages in-process, in pipeline order; return each stage's result."""
        from cycleml.stages import (
            evaluate,
            explore,
            frame,
            ingest,
            reference,
            register,
            split,
            train,
            tune,
            validate,
        )

        steps = {
            "ingest": lambda: ingest.run(params, self.paths),
            "validate": lambda: validate.run(params, self.paths),
            "explore": lambda: explore.run(params, self.paths),
            "split": lambda: split.run(params, self.paths),
            "frame": lambda: frame.run(params, self.paths),
            "tune": lambda: tune.run(params, self.paths),
            "train": lambda: train.run(params, self.paths),
            "evaluate": lambda: evaluate.run(params, self.paths),
            "reference": lambda: reference.run(params, self.paths),
            "register": lambda: register.run(params, self.paths),
        }
        chosen = names or tuple(steps)
        return {name: steps[name]() for name in chosen}


@contextmanager
def module_project(factory: pytest.TempPathFactory, name: str) -> Iterator[Project]:
    """A project for a module-scoped fixture: its own folder as the working directory and
    no MLflow or cycleml location from the environment (the autouse fixture that clears
    them runs per test, after module fixtures)."""
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CYCLEML_ROOT"):
        os.environ.pop(variable, None)
    root = factory.mktemp(name)
    before = Path.cwd()
    os.chdir(root)
    try:
        yield Project(root)
    finally:
        os.chdir(before)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.chdir(tmp_path)
    yield Project(tmp_path)
    shutil.rmtree(tmp_path / "mlruns", ignore_errors=True)
