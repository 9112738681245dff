"""Findings: what in an exploration is worth a sentence, in plain words.

Heavy missingness, strongly correlated numeric pairs, the categories with the highest and
lowest target rate, and high-cardinality categoricals.
"""

from __future__ import annotations

from itertools import combinations

import pandas as pd

from cycleml.data.schema import Schema
from cycleml.exploration.buckets import OTHER
from cycleml.exploration.formatting import format_rate

__all__ = ["collect_findings"]

# Thresholds of the findings: what is worth a sentence in the report.
_MISSING_FINDING = 0.2
_CORRELATION_FINDING = 0.8
_MIN_BUCKET_SHARE = 0.01  # smaller categories are too noisy to call out
_TOP_FINDINGS = 3


def _strong_pairs(matrix: pd.DataFrame, threshold: float) -> list[tuple[str, str, float]]:
    values, names = matrix.to_numpy(dtype="float64"), [str(c) for c in matrix.columns]
    pairs = [
        (names[i], names[j], float(values[i, j]))
        for i, j in combinations(range(len(names)), 2)
        if abs(values[i, j]) > threshold
    ]
    return sorted(pairs, key=lambda p: -abs(p[2]))


def _rate_findings(
    exp_rates: pd.DataFrame,
    categorical: list[str],
    rows: int,
    label: str,
    overall: dict[str, float],
) -> list[str]:
    cats = exp_rates[
        exp_rates["feature"].isin(categorical) & (exp_rates["rows"] >= _MIN_BUCKET_SHARE * rows)
    ]
    if cats.empty:
        return []

    def describe(part: pd.DataFrame) -> str:
        return "; ".join(
            f"{r['feature']} = {r['bucket']}: "
            f"{format_rate(r['target_rate'], label)} ({r['rows']:,} rows)"
            for r in part.to_dict("records")
        )

    if "class" not in cats.columns:
        ((_, base),) = overall.items()
        ranked = cats.sort_values("target_rate", ascending=False, kind="stable")
        top = min(_TOP_FINDINGS, len(ranked) // 2)  # no category is both highest and lowest
        if not top:
            return []
        baseline = f" (overall {format_rate(base, label)})"
        return [
            f"highest {label}: {describe(ranked.head(top))}{baseline}",
            f"lowest {label}: {describe(ranked.tail(top).iloc[::-1])}{baseline}",
        ]
    lines = []
    for cls, part in cats.groupby("class", sort=False):
        best = part.sort_values("target_rate", ascending=False, kind="stable").head(1)
        lines.append(
            f"share of class {cls} is highest where {describe(best)} "
            f"(overall {format_rate(overall[str(cls)], label)})"
        )
    return lines


def collect_findings(
    exp_summary: pd.DataFrame,
    pearson: pd.DataFrame,
    rates: pd.DataFrame,
    schema: Schema,
    rows: int,
    label: str,
    overall: dict[str, float],
    max_categories: int,
) -> list[str]:
    """Sentences on what stands out: heavy missingness, correlated pairs, the extreme
    target rates among categories, high-cardinality categoricals (in that order)."""
    found = [
        f"{column}: {share:.0%} of values are missing"
        for column, share in zip(exp_summary["column"], exp_summary["missing_share"], strict=True)
        if share > _MISSING_FINDING
    ]
    found += [
        f"{a} and {b} move together (Pearson r = {r:+.2f}): one may be redundant"
        for a, b, r in _strong_pairs(pearson, _CORRELATION_FINDING)
    ]
    found += _rate_findings(rates, schema.categorical, rows, label, overall)
    distinct = exp_summary.set_index("column")["distinct"]
    found += [
        f"{c}: {distinct[c]:,} distinct values, high-cardinality; the {max_categories} most "
        f"frequent are shown, the rest pooled as {OTHER}"
        for c in schema.categorical
        if distinct[c] > max_categories
    ]
    return found
