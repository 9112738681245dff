"""Loading the model the pipeline just trained (``models/model``), before it is registered.

Registered versions are loaded by :func:`cycleml.scoring.loaded.load_model`, which also
brings their schema, threshold and compiled scorer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cycleml.paths import Paths

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["load_local_model"]


def load_local_model(paths: Paths) -> Pipeline:
    """The fitted Pipeline ``train`` saved in ``models/model`` (an MLflow model directory)."""
    import mlflow.sklearn

    model: Pipeline = mlflow.sklearn.load_model(str(paths.model_dir))
    return model
