"""The statistics behind monitoring's verdicts: the population stability index and the
tests that tell a real shift or a real worsening from chance (chi-squared and
Kolmogorov-Smirnov per column, Welch's t-test on per-row losses, Hanley-McNeil for a
ROC AUC). Pure functions of arrays; scipy and sklearn.metrics load when first used."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cycleml.data.schema import Schema

__all__ = [
    "PSI_BINS",
    "category_psi",
    "column_p_value",
    "psi",
    "psi_p_value",
    "worse_by_chance",
]

PSI_BINS = 10


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of a numeric output: quantile bins of the reference,
    shares floored at 1e-4 so an empty bin does not divide by zero."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if not len(reference) or not len(current):
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, current), minlength=len(edges) + 1)
    e = np.maximum(expected / len(reference), 1e-4)
    a = np.maximum(actual / len(current), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def category_psi(reference: pd.Series, current: pd.Series) -> float:
    """Population stability index of a categorical output, one bin per category."""
    levels = sorted(set(reference.dropna().astype(str)) | set(current.dropna().astype(str)))
    shares = [
        side.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()
        for side in (reference, current)
    ]
    e, a = np.maximum(shares[0], 1e-4), np.maximum(shares[1], 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_p_value(value: float, n: int, m: int, bins: int = PSI_BINS) -> float:
    """How likely a PSI this large is by chance between ``n`` current and ``m`` reference
    values: PSI / (1/n + 1/m) is roughly chi-squared with bins - 1 degrees of freedom when
    nothing changed, so small windows get a large PSI by chance."""
    from scipy import stats

    return float(stats.chi2.sf(value / (1 / n + 1 / m), bins - 1)) if n and m else 1.0


def column_p_value(reference: pd.Series, current: pd.Series, categorical: bool) -> float:
    """How likely a difference this large is by chance: chi-squared on the category
    counts, or the two-sample Kolmogorov-Smirnov test."""
    from scipy import stats

    ref, cur = reference.dropna(), current.dropna()
    if not len(ref) or not len(cur):
        return 1.0
    if categorical:
        levels = sorted(set(ref.astype(str)) | set(cur.astype(str)))
        table = np.array(
            [
                ref.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy(),
                cur.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy(),
            ]
        )
        if table.shape[1] < 2:
            return 1.0
        return float(stats.chi2_contingency(table)[1])
    return float(
        stats.ks_2samp(ref.to_numpy(dtype="float64"), cur.to_numpy(dtype="float64")).pvalue
    )


def _row_losses(name: str, schema: Schema, y: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
    """Each row's share of a metric that is a mean over rows (None for other metrics)."""
    if name == "log_loss" and schema.task == "classification":
        picked = scores[np.arange(len(y)), y]
        return np.asarray(-np.log(np.clip(picked, 1e-15, 1.0)))
    if schema.task != "regression":
        return None
    error = y - scores
    if name == "rmse":
        return np.asarray(error**2)
    if name == "mae":
        return np.asarray(np.abs(error))
    if name == "mape":
        nonzero = y != 0
        return np.asarray(np.abs(error[nonzero] / y[nonzero]))
    return None


def _auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's standard error of a ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return float(np.sqrt(max(var, 0.0)))


def worse_by_chance(
    name: str,
    schema: Schema,
    reference: tuple[np.ndarray, np.ndarray],
    current: tuple[np.ndarray, np.ndarray],
) -> float | None:
    """One-sided p-value of the current rows being this much worse by chance alone: Welch's
    t-test on per-row losses (log_loss, rmse via squared errors, mae, mape), Hanley-McNeil
    for a binary roc_auc; None for metrics without a test here."""
    from scipy import stats

    losses = [_row_losses(name, schema, y, s) for y, s in (reference, current)]
    if losses[0] is not None and losses[1] is not None:
        if min(len(losses[0]), len(losses[1])) < 2:
            return None
        test = stats.ttest_ind(losses[1], losses[0], equal_var=False, alternative="greater")
        return float(test.pvalue)
    if name == "roc_auc" and schema.is_binary:
        from sklearn.metrics import roc_auc_score

        ses, aucs = [], []
        for y, s in (reference, current):
            positives = int(y.sum())
            aucs.append(float(roc_auc_score(y, s[:, 1])))
            ses.append(_auc_se(aucs[-1], positives, len(y) - positives))
        z = (aucs[0] - aucs[1]) / max(float(np.hypot(ses[0], ses[1])), 1e-12)
        return float(stats.norm.sf(z))
    return None
