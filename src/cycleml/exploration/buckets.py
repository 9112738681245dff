"""Buckets of a column: its most frequent categories (the rest pooled), or quantile bins.

A bucket is what the target rate is shown per, and what associations are computed on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cycleml.exploration.formatting import format_number

__all__ = ["MISSING", "OTHER", "category_buckets", "category_codes", "numeric_buckets"]

OTHER = "(other)"
MISSING = "(missing)"


def _unique_labels(values: np.ndarray) -> list[str]:
    """Short labels for sorted distinct numbers, as precise as needed to stay distinct."""
    for digits in (4, 6, 9, 17):
        labels = [format_number(float(v), digits) for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(float(v)) for v in values]


def category_buckets(column: pd.Series, max_categories: int) -> pd.Series:
    """Text categories: the ``max_categories`` most frequent, the rest pooled as (other)."""
    text = column.map(str, na_action="ignore")
    counts = text.value_counts().sort_index(kind="stable")
    top = list(counts.sort_values(ascending=False, kind="stable").index[:max_categories])
    pooled = text.where(text.isin(top) | text.isna(), OTHER).fillna(MISSING)
    order = top + [b for b in (OTHER, MISSING) if bool((pooled == b).any())]
    return pd.Series(pd.Categorical(pooled, categories=order), index=column.index)


def numeric_buckets(column: pd.Series, bins: int) -> pd.Series:
    """Quantile bins (ties merged), or one bucket per value when there are few values."""
    x = column.astype("float64").to_numpy()
    present = ~np.isnan(x)
    distinct = np.unique(x[present])
    codes = np.full(x.shape, -1, dtype="int64")
    if len(distinct) <= bins:
        labels = _unique_labels(distinct)
        codes[present] = np.searchsorted(distinct, x[present])
    else:
        edges = np.unique(np.quantile(x[present], np.linspace(0, 1, bins + 1)))
        names = _unique_labels(edges)
        labels = [f"{lo} – {hi}" for lo, hi in zip(names[:-1], names[1:], strict=True)]
        # (lo, hi] like pd.cut; the lowest value joins the first bin
        found = np.searchsorted(edges, x[present], side="left") - 1
        codes[present] = np.clip(found, 0, len(labels) - 1)
    if not present.all():
        codes[~present] = len(labels)
        labels.append(MISSING)
    categorical = pd.Categorical.from_codes(codes, categories=pd.Index(labels))
    return pd.Series(categorical, index=column.index)


def category_codes(buckets: pd.Series) -> np.ndarray:
    """Integer codes of pooled categories, -1 for missing (left out of associations)."""
    codes: np.ndarray = buckets.cat.codes.to_numpy().astype("int64")
    categories = list(buckets.cat.categories)
    if MISSING in categories:
        codes[codes == categories.index(MISSING)] = -1
    return codes
