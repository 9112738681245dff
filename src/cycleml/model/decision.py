"""The decision rule: model scores -> the class a caller acts on. The one place it lives.

Binary models decide positive when P(positive class) >= the version's threshold (chosen by
evaluate, stored on the registered version as ``test_decision_threshold``); multiclass
models take the most probable class; regression scores are the prediction itself.
Evaluation, batch scoring, the service and monitoring all call :func:`decide`, so the rule
that judged a version is the rule that serves it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "decide"]

DEFAULT_THRESHOLD = 0.5
"""The binary threshold when none was chosen (``evaluate.threshold`` or a version's tag)."""


def decide(scores: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class indices (int64) for class-probability ``scores`` of shape (rows, classes).

    Two columns: index 1 where ``scores[:, 1] >= threshold``; more: the argmax. Regression
    scores (one dimension) are returned as they are.
    """
    if scores.ndim == 1:
        return scores
    if scores.shape[1] == 2:
        return np.asarray(scores[:, 1] >= threshold, dtype="int64")
    return np.asarray(scores.argmax(axis=1), dtype="int64")
