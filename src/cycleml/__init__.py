"""cycleml: the machine-learning lifecycle, local-first, on DVC, MLflow, XGBoost and friends."""

__version__ = "0.1.0"
