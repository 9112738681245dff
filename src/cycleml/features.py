"""The old home of the derived-features step, kept so that model versions registered
before the package layout changed (their skops files name ``cycleml.features``) still load.
New code imports :mod:`cycleml.model.features`.
"""

from cycleml.model.features import CATEGORICAL_KINDS, DerivedFeatures

__all__ = ["CATEGORICAL_KINDS", "DerivedFeatures"]
