"""Every well-known file location, built from one root.

The root is the current directory (where ``dvc.yaml`` lives) unless ``CYCLEML_ROOT`` says
otherwise. Nothing is created here: stages create what they write, when they write it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cycleml.names import REFERENCE_ARTIFACT, SCHEMA_ARTIFACT

__all__ = ["Paths", "project_paths"]


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    # data
    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw" / "data.parquet"

    @property
    def schema(self) -> Path:
        return self.root / "data" / "interim" / SCHEMA_ARTIFACT

    @property
    def split_dir(self) -> Path:
        return self.root / "data" / "split"

    def split(self, part: str) -> Path:
        return self.split_dir / f"{part}.parquet"

    # model
    @property
    def model_dir(self) -> Path:
        return self.root / "models" / "model"

    @property
    def best_params(self) -> Path:
        return self.root / "models" / "best_params.json"

    @property
    def baselines(self) -> Path:
        return self.root / "models" / "baselines.json"

    @property
    def train_run(self) -> Path:
        return self.root / "models" / "train_run.json"

    @property
    def reference(self) -> Path:
        """Held-out rows with the model's predictions: what monitoring compares with."""
        return self.root / "models" / REFERENCE_ARTIFACT

    # metrics, plots, reports
    def metrics(self, stage: str) -> Path:
        return self.root / "metrics" / f"{stage}.json"

    def plot(self, name: str) -> Path:
        return self.root / "plots" / name

    def report(self, name: str) -> Path:
        return self.root / "reports" / name

    def database_url(self, url: str) -> str:
        """``url`` with a relative SQLite path made absolute under the root, so every
        process (stages, servers, ``mlflow ui``) opens the same file."""
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            return prefix + str(self.root / url.removeprefix(prefix))
        return url

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlruns(self) -> Path:
        return self.root / "mlruns"


def project_paths(root: Path | str | None = None) -> Paths:
    """Paths under ``root``, else ``$CYCLEML_ROOT``, else the current directory."""
    chosen = root if root is not None else os.environ.get("CYCLEML_ROOT") or Path.cwd()
    return Paths(Path(chosen).resolve())
