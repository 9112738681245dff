"""Associations of categorical columns: bias-corrected Cramér's V, pair by pair."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

__all__ = ["association_matrix", "cramers_v"]


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013) of two integer-coded columns.

    Codes are 0..k-1, with -1 for missing (such rows are left out). The correction keeps
    many-valued columns from looking associated by chance: independent columns score ~0,
    identical ones 1. NaN when either column has a single value.
    """
    keep = (a >= 0) & (b >= 0)
    a, b = a[keep], b[keep]
    n = a.size
    if n < 2:
        return float("nan")
    width = int(b.max()) + 1
    table = np.bincount(a * width + b, minlength=(int(a.max()) + 1) * width)
    table = table.reshape(-1, width)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0].astype("float64")
    r, k = table.shape
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    phi2 = float(((table - expected) ** 2 / expected).sum()) / n
    phi2_corrected = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    r_corrected = r - (r - 1) ** 2 / (n - 1)
    k_corrected = k - (k - 1) ** 2 / (n - 1)
    denominator = min(r_corrected - 1, k_corrected - 1)
    if min(r, k) < 2 or denominator <= 0:
        return float("nan")
    return min(1.0, float(np.sqrt(phi2_corrected / denominator)))


def association_matrix(codes: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cramér's V of every pair of integer-coded columns (symmetric, 1 on the diagonal)."""
    names = list(codes)
    matrix = np.eye(len(names))
    for (i, left), (j, right) in combinations(enumerate(names), 2):
        matrix[i, j] = matrix[j, i] = cramers_v(codes[left], codes[right])
    return pd.DataFrame(matrix, index=names, columns=names)
