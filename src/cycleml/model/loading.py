"""Deserialising a saved model safely: the one place a Pipeline is read back from disk.

A model file is code as much as data: unpickling one runs whatever its ``__reduce__``
says, and skops runs the constructors of the types it is told to trust. So cycleml loads
only what it saves itself, skops files (:data:`SKOPS_FILE`), and trusts only the types its
own pipelines contain (:data:`TRUSTED_TYPES`), never the list an artifact's MLmodel file
offers. The format is read from the MLmodel file before anything is deserialised; pickle
and cloudpickle are refused without being opened.

Registered versions are loaded by :func:`cycleml.scoring.loaded.load_model`, which also
brings their schema, threshold and compiled scorer; the model ``train`` just saved is
loaded by :func:`load_local_model`. Both go through :func:`load_pipeline`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cycleml.model.registry import RegistryError
from cycleml.paths import Paths

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = [
    "SKOPS_FILE",
    "TRUSTED_TYPES",
    "UnsafeModelError",
    "load_local_model",
    "load_pipeline",
    "untrusted_types",
]

SKOPS_FILE = "model.skops"
"""Where ``mlflow.sklearn`` writes a skops model inside its model directory."""

TRUSTED_TYPES: tuple[str, ...] = (
    "cycleml.model.features.DerivedFeatures",
    "cycleml.features.DerivedFeatures",  # its old home: versions registered before the move
    "numpy.dtype",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
)
"""The types skops may construct besides its own defaults (sklearn's estimators and
transformers, numpy arrays, Python containers): exactly what a cycleml pipeline holds.
``train`` refuses to save a pipeline with anything else, so every version it registers
loads with this list; a type is added here, in code review, never read from an artifact."""


class UnsafeModelError(RegistryError):
    """A saved model cycleml will not deserialise: not skops, or a type it does not trust.

    A :class:`RegistryError`, so the CLI reports it as one paragraph and exits 1.
    """


def untrusted_types(pipeline: Pipeline) -> list[str]:
    """The types in ``pipeline`` that skops would refuse without :data:`TRUSTED_TYPES`;
    raises when one is not on that list, so no pipeline is saved that cycleml cannot load."""
    import skops.io as sio

    found = sio.get_untrusted_types(data=sio.dumps(pipeline))
    unknown = [name for name in found if name not in TRUSTED_TYPES]
    if unknown:
        raise UnsafeModelError(
            f"the pipeline holds types cycleml does not trust to load: {', '.join(unknown)}. "
            "Use steps built from sklearn, xgboost and cycleml.model.features; if a new step "
            "type is safe to construct from a file, add it to TRUSTED_TYPES in "
            "cycleml/model/loading.py"
        )
    return list(found)


def load_pipeline(model_dir: Path, what: str) -> Pipeline:
    """The sklearn Pipeline saved in the MLflow model directory ``model_dir``.

    ``what`` names the model in errors (e.g. ``cycleml-churn version 3``).

    Raises:
        UnsafeModelError: not saved with skops by cycleml, holds a type outside
            :data:`TRUSTED_TYPES`, or is not a Pipeline.
    """
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from skops.io.exceptions import UntrustedTypesFoundException

    _require_skops(_sklearn_flavor(model_dir, what), what)
    try:
        model = sio.load(model_dir / SKOPS_FILE, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException:
        found = sio.get_untrusted_types(file=model_dir / SKOPS_FILE)
        unknown = ", ".join(name for name in found if name not in TRUSTED_TYPES)
        raise UnsafeModelError(
            f"{what} holds types cycleml does not trust to load ({unknown}); it was refused "
            "before any of them was constructed. cycleml trusts only the types its own "
            "pipelines contain (TRUSTED_TYPES in cycleml/model/loading.py), never the list "
            "in the model's MLmodel file. Re-register the model with `cycleml train`."
        ) from None
    if not isinstance(model, Pipeline):
        raise UnsafeModelError(
            f"{what} holds a {type(model).__name__}, not the sklearn Pipeline cycleml "
            "saves; re-register the model with `cycleml train`."
        )
    return model


def load_local_model(paths: Paths) -> Pipeline:
    """The fitted Pipeline ``train`` saved in ``models/model`` (an MLflow model directory)."""
    return load_pipeline(paths.model_dir, f"the trained model in {paths.model_dir}")


def _sklearn_flavor(model_dir: Path, what: str) -> dict[str, Any]:
    """The ``sklearn`` flavor of the directory's MLmodel file, read as plain YAML."""
    import yaml

    try:
        config = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
        flavor = config["flavors"]["sklearn"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        flavor = None
    if not isinstance(flavor, dict):
        raise UnsafeModelError(
            f"{what} has no readable MLmodel file with an sklearn flavor, so its format is "
            "unknown and it is not loaded; re-register the model with `cycleml train`."
        )
    return flavor


def _require_skops(flavor: dict[str, Any], what: str) -> None:
    """Refuse every format but skops before the model file is opened.

    MLflow takes a flavor without ``serialization_format`` to be pickle; so does this.
    """
    found = flavor.get("serialization_format", "pickle")
    if found != "skops":
        raise UnsafeModelError(
            f"{what} is stored as {str(found)[:40]!r} (sklearn flavor serialization_format in its "
            "MLmodel file) and was not loaded: deserialising a pickle-based model runs code "
            "from the artifact. cycleml loads only skops models. Re-register it with "
            "`cycleml train`, which saves skops, or log the pipeline with "
            "mlflow.sklearn.log_model(..., serialization_format='skops') and register that."
        )
