"""Curves of a score or of training: calibration, gains and the learning-curve verdict.

Pure functions of arrays: no files, no MLflow. The evaluate stage writes the calibration
and gains tables; the train stage judges its learning curves with ``learning_verdict``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["brier_score", "calibration", "gains", "learning_verdict"]

# learning_verdict thresholds, relative to the validation loss so they hold for logloss and
# rmse alike. Measured on the demo (20k rows): a good model (depth 5) ends 0.2% above its
# minimum with a 6% train/valid gap; a deep one (depth 8, worse valid loss) shows a 20% gap;
# a 40-tree depth-2 model still drops 1.1% over its last 5 rounds.
_MAX_RISE = 0.02
"""Overfitting: the last round's valid loss is more than 2% above the minimum. Early
stopping lets the loss drift up for ``early_stopping_rounds``; a 2% climb in that window
means the trees past the minimum are memorising noise fast."""
_MAX_GAP = 0.15
"""Overfitting: at the round the model uses, train loss is more than 15% below valid loss:
the model knows its training rows much better than new ones."""
_TAIL_SHARE, _MIN_TAIL = 0.1, 5
_STILL_FALLING = 0.005
"""Underfitting: valid loss fell more than 0.5% over the last tenth of the rounds (at least
5): more rounds would still help, so training stopped too early."""


# --- calibration and gains -------------------------------------------------------------


def calibration(y: np.ndarray, score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability table of a binary score: mean predicted vs observed rate per quantile bin.

    Quantile bins hold equal numbers of rows, so each point is equally trustworthy even when
    scores crowd near 0. Tied scores never straddle bins, so there may be fewer bins.
    """
    score = np.asarray(score, dtype="float64")
    edges = np.unique(np.quantile(score, np.linspace(0, 1, bins + 1)))
    which = np.searchsorted(edges[1:-1], score, side="right")
    counts = np.bincount(which, minlength=len(edges) - 1)
    keep = counts > 0
    predicted = np.bincount(which, weights=score, minlength=len(counts))[keep] / counts[keep]
    observed = np.bincount(which, weights=np.asarray(y, "float64"), minlength=len(counts))
    return pd.DataFrame(
        {
            "mean_predicted": predicted,
            "observed_rate": observed[keep] / counts[keep],
            "rows": counts[keep].astype("int64"),
        }
    )


def brier_score(y: np.ndarray, score: np.ndarray) -> float:
    """Mean squared gap between the positive-class probability and the 0/1 outcome."""
    return float(np.mean((np.asarray(score, "float64") - np.asarray(y, "float64")) ** 2))


def gains(y: np.ndarray, score: np.ndarray, points: int = 20) -> pd.DataFrame:
    """Cumulative gains and lift: contact the top-scored share, find this share of positives.

    ``lift`` is how many times better than contacting at random that share is. Raises
    ValueError when ``y`` holds no positive row (nothing to find).
    """
    y = np.asarray(y, "float64")
    total = y.sum()
    if total <= 0:
        raise ValueError("gains need at least one positive row")
    found = np.concatenate([[0.0], np.cumsum(y[np.argsort(-np.asarray(score), kind="stable")])])
    contacted = np.unique(np.ceil(np.linspace(1, points, points) / points * len(y)).astype(int))
    share = contacted / len(y)
    share_found = found[contacted] / total
    return pd.DataFrame(
        {
            "share_contacted": share,
            "share_of_positives_found": share_found,
            "lift": share_found / share,
        }
    )


# --- learning curves -------------------------------------------------------------------


def learning_verdict(curves: dict[str, list[float]], best_iteration: int | None) -> dict[str, Any]:
    """Overfitting, underfitting or a good fit, from train and valid loss per round.

    Underfitting is checked first: if the valid loss is still falling steeply, more rounds
    help whatever the gap. Then overfitting: the valid loss ends well above its minimum, or
    at the round the model uses (``best_iteration``, else the last) the train loss is far
    below the valid loss. Thresholds: ``_STILL_FALLING``, ``_MAX_RISE``, ``_MAX_GAP``.
    """
    train, valid = np.asarray(curves.get("train", [])), np.asarray(curves.get("valid", []))
    if not len(valid) or len(train) != len(valid):
        return {"verdict": "unknown", "advice": "no learning curves to judge", "rounds": len(valid)}
    rounds = len(valid)
    used = best_iteration if best_iteration is not None and best_iteration < rounds else rounds - 1
    low = int(np.argmin(valid))
    scale = max(float(valid[low]), 1e-12)
    tail = min(max(_MIN_TAIL, int(rounds * _TAIL_SHARE)), rounds - 1)
    rise = float((valid[-1] - valid[low]) / scale)
    gap = float((valid[used] - train[used]) / max(float(valid[used]), 1e-12))
    drop = float((valid[-1 - tail] - valid[-1]) / scale) if tail else 0.0
    if drop > _STILL_FALLING:
        verdict = "underfitting"
        advice = (
            f"valid loss still fell {drop:.1%} over the last {tail} rounds: raise "
            "n_estimators (or learning_rate) so training can go on."
        )
    elif rise > _MAX_RISE or gap > _MAX_GAP:
        verdict = "overfitting"
        advice = (
            f"valid loss ends {rise:.1%} above its minimum and train loss is {gap:.1%} below "
            "valid: lower max_depth or raise min_child_weight (or reg_lambda)."
        )
    else:
        verdict = "good fit"
        advice = (
            f"train and valid loss agree (gap {gap:.1%}) and the valid loss has levelled "
            "off: no change needed."
        )
    return {
        "verdict": verdict,
        "advice": advice,
        "rounds": rounds,
        "best_iteration": best_iteration,
        "valid_min": float(valid[low]),
        "valid_min_round": low,
        "valid_end": float(valid[-1]),
        "rise_after_min": rise,
        "train_at_best": float(train[used]),
        "valid_at_best": float(valid[used]),
        "gap_at_best": gap,
        "tail_rounds": tail,
        "tail_drop": drop,
    }
