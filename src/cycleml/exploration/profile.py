"""Profile of a table as its schema describes it: plain tables, no I/O.

For every column a summary (role, type, missingness, spread, top values); the target rate
by bucket of each feature; numeric correlations (Pearson and Spearman) and categorical
associations (bias-corrected Cramér's V); histograms for the figures; and the findings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cycleml.data.schema import Schema, label_key
from cycleml.exploration.associations import association_matrix
from cycleml.exploration.buckets import category_buckets, category_codes, numeric_buckets
from cycleml.exploration.findings import collect_findings

__all__ = ["Exploration", "explore"]

_HIST_BINS = 30
_TAIL = 0.005  # histograms span the 0.5%-99.5% quantiles when outliers would squash them


@dataclass(frozen=True)
class Exploration:
    """What `explore` found; plain tables, no I/O.

    ``target_rate`` is long: ``feature, bucket, rows, target_rate`` (multiclass adds
    ``class``: the share of each class). ``rate_label`` says what the rate is.
    """

    task: str
    target: str
    rows: int
    rate_label: str
    overall_rate: dict[str, float]
    summary: pd.DataFrame
    missing: pd.DataFrame
    target_rate: pd.DataFrame
    pearson: pd.DataFrame
    spearman: pd.DataFrame
    cramers_v: pd.DataFrame
    distributions: dict[str, pd.DataFrame]
    findings: list[str]


def _target_frame(frame: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, str]:
    """One column per rate to show (positive class, each class, or the mean), rows with a
    target only, and what the rate means in words."""
    y = frame[schema.target].dropna()
    if schema.task == "regression":
        return pd.DataFrame({"mean": y.astype("float64")}), f"mean {schema.target}"
    encoded = schema.encode_target(y)
    if schema.is_binary:
        positive = pd.DataFrame({schema.classes[1]: (encoded == 1).astype("float64")}, y.index)
        return positive, f"{schema.target} = {schema.classes[1]} rate"
    onehot = np.eye(len(schema.classes))[encoded]
    return pd.DataFrame(onehot, index=y.index, columns=schema.classes), "class share"


def _rates(buckets: pd.Series, y: pd.DataFrame, feature: str, multiclass: bool) -> pd.DataFrame:
    groups = y.groupby(buckets.loc[y.index], observed=True, sort=True)
    means, rows = groups.mean(), groups.size()
    if multiclass:
        k = means.shape[1]
        out = pd.DataFrame(
            {
                "bucket": np.repeat(means.index.astype(str).to_numpy(), k),
                "class": np.tile(means.columns.astype(str).to_numpy(), len(means)),
                "rows": np.repeat(rows.to_numpy(), k),
                "target_rate": means.to_numpy().ravel(),
            }
        )
    else:
        out = pd.DataFrame(
            {
                "bucket": means.index.astype(str),
                "rows": rows.to_numpy(),
                "target_rate": means.iloc[:, 0].to_numpy(),
            }
        )
    out["bucket"] = out["bucket"].astype(str)
    out.insert(0, "feature", feature)
    return out


def _role(column: str, schema: Schema) -> str:
    if column == schema.target:
        return "target"
    if column in schema.numeric:
        return "numeric"
    if column in schema.categorical:
        return "categorical"
    if column in schema.id_columns:
        return "id"
    if column == schema.time_column:
        return "time"
    return "excluded"


def _top_values(column: pd.Series, count: int = 3) -> str:
    if pd.api.types.is_datetime64_any_dtype(column):
        present = column.dropna()
        return f"{present.min():%Y-%m-%d} … {present.max():%Y-%m-%d}" if len(present) else ""
    shares = column.map(str, na_action="ignore").value_counts(normalize=True).head(count)
    return ", ".join(f"{value} ({share:.0%})" for value, share in shares.items())


def _summary(frame: pd.DataFrame, schema: Schema, numeric: pd.DataFrame) -> pd.DataFrame:
    missing = frame.isna().sum()
    summary = pd.DataFrame(
        {
            "column": frame.columns.astype(str),
            "role": [_role(c, schema) for c in frame.columns],
            "dtype": frame.dtypes.astype(str).to_numpy(),
            "missing": missing.to_numpy(),
            "missing_share": (missing / max(len(frame), 1)).to_numpy(),
            "distinct": frame.nunique().to_numpy(),
        }
    )
    stats = pd.DataFrame(
        {
            "min": numeric.min(),
            "median": numeric.median(),
            "max": numeric.max(),
            "mean": numeric.mean(),
            "std": numeric.std(),
        },
        dtype="float64",
    )
    summary = summary.merge(stats, left_on="column", right_index=True, how="left")
    text = [c for c in frame.columns if c not in numeric.columns and c not in schema.id_columns]
    summary["top"] = summary["column"].map({c: _top_values(frame[c]) for c in text}).fillna("")
    return summary.reset_index(drop=True)


def _distribution(column: pd.Series, buckets: pd.Series | None) -> pd.DataFrame:
    """Histogram (``left, right, rows``; left == right for few distinct values) or bar
    counts (``bucket, rows``) for plotting."""
    if buckets is not None:
        counts = buckets.value_counts(sort=False)
        return pd.DataFrame({"bucket": counts.index.astype(str), "rows": counts.to_numpy()})
    x = column.dropna().astype("float64").to_numpy()
    values, tally = np.unique(x, return_counts=True)
    if len(values) <= _HIST_BINS:
        return pd.DataFrame({"left": values, "right": values, "rows": tally})
    lo, hi = np.quantile(x, [_TAIL, 1 - _TAIL])
    squashed = hi > lo and (x.max() - x.min()) > 3 * (hi - lo)
    hist, edges = np.histogram(x, bins=_HIST_BINS, range=(lo, hi) if squashed else None)
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "rows": hist})


def explore(
    frame: pd.DataFrame, schema: Schema, bins: int = 10, max_categories: int = 20
) -> Exploration:
    """Summarise ``frame`` as ``schema`` describes it: no I/O, plain tables out.

    Args:
        frame: the ingested table (every column is summarised; features are analysed).
        schema: what validate decided: task, target, numeric and categorical features.
        bins: quantile bins per numeric feature for the target rate (ties are merged).
        max_categories: categories shown per categorical feature; the rest are pooled.
    """
    numeric = frame[schema.numeric].astype("float64")
    y, label = _target_frame(frame, schema)
    multiclass = y.shape[1] > 1
    overall = {str(k): float(v) for k, v in y.mean().items()}

    by_category = {c: category_buckets(frame[c], max_categories) for c in schema.categorical}
    by_number = {c: numeric_buckets(numeric[c], bins) for c in schema.numeric}
    parts = [_rates(b, y, c, multiclass) for c, b in {**by_number, **by_category}.items()]
    columns = ["feature", "bucket", *(["class"] if multiclass else []), "rows", "target_rate"]
    rates = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)

    codes = {c: category_codes(b) for c, b in by_category.items()}
    summary = _summary(frame, schema, numeric)
    missing = summary[["column", "missing", "missing_share"]].reset_index(drop=True)
    pearson = numeric.corr(method="pearson")
    target = frame[schema.target]
    target_buckets = (
        None
        if schema.task == "regression"
        else category_buckets(target.map(label_key, na_action="ignore"), len(schema.classes))
    )
    distributions = {schema.target: _distribution(target, target_buckets)}
    for c in schema.features:
        distributions[c] = _distribution(frame[c], by_category.get(c))
    return Exploration(
        task=schema.task,
        target=schema.target,
        rows=len(frame),
        rate_label=label,
        overall_rate=overall,
        summary=summary,
        missing=missing,
        target_rate=rates[columns],
        pearson=pearson,
        spearman=numeric.corr(method="spearman"),
        cramers_v=association_matrix(codes),
        distributions=distributions,
        findings=collect_findings(
            summary, pearson, rates, schema, len(y), label, overall, max_categories
        ),
    )
