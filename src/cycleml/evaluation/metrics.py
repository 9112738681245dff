"""Test-set metrics under the names users see in `dvc metrics` and MLflow."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from cycleml.config import LOWER_IS_BETTER
from cycleml.model.decision import DEFAULT_THRESHOLD, decide

__all__ = ["advantage", "better", "classification_metrics", "regression_metrics", "task_metrics"]


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """accuracy, precision, recall, f1, roc_auc, pr_auc, log_loss.

    Binary: precision/recall/f1 of the positive class at ``threshold``. Multiclass: macro
    averages, the argmax decision, and one-vs-rest AUCs.
    """
    n_classes = proba.shape[1]
    labels = np.arange(n_classes)
    pred = decide(proba, threshold)
    if n_classes == 2:
        average, pos = "binary", proba[:, 1]
        roc_auc = skm.roc_auc_score(y_true, pos)
        pr_auc = skm.average_precision_score(y_true, pos)
    else:
        average = "macro"
        # one-vs-rest over the classes present: a class absent from this split has no AUC
        present = np.unique(y_true)
        onehot = np.eye(n_classes)[y_true][:, present]
        roc_auc = skm.roc_auc_score(onehot, proba[:, present], average="macro")
        pr_auc = skm.average_precision_score(onehot, proba[:, present], average="macro")
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "precision": float(skm.precision_score(y_true, pred, average=average, zero_division=0)),
        "recall": float(skm.recall_score(y_true, pred, average=average, zero_division=0)),
        "f1": float(skm.f1_score(y_true, pred, average=average, zero_division=0)),
        "roc_auc": float(roc_auc),
        "pr_auc": float(pr_auc),
        "log_loss": float(skm.log_loss(y_true, proba, labels=labels)),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """rmse, mae, r2, mape (mape skips rows whose target is 0, where it is undefined)."""
    nonzero = y_true != 0
    mape = (
        float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero])))
        if nonzero.any()
        else float("nan")
    )
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
        "mape": mape,
    }


def advantage(metric: str, candidate: float, incumbent: float) -> float:
    """How far ``candidate`` is ahead of ``incumbent`` on ``metric`` (negative: behind),
    whichever way the metric improves: the one place that knows the direction."""
    gap = candidate - incumbent
    return -gap if metric in LOWER_IS_BETTER else gap


def better(metric: str, candidate: float, incumbent: float) -> bool:
    """Whether ``candidate`` beats ``incumbent`` on ``metric`` (direction-aware, strict)."""
    return advantage(metric, candidate, incumbent) > 0


def task_metrics(
    task: str, y: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """The task's metrics for encoded targets ``y`` and model ``scores``."""
    if task == "classification":
        return classification_metrics(y, scores, threshold)
    return regression_metrics(y, scores)
