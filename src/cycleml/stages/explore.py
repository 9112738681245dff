"""Stage `explore`: a first look at the ingested table before any model is fitted.

Computes, for every column, a summary (type, missingness, spread, top values); the target
rate by category and by quantile bin of each feature; numeric correlations (Pearson and
Spearman) and categorical associations (bias-corrected Cramér's V); and a few findings in
plain words. Outputs: ``reports/explore.html`` (self-contained, figures embedded),
``reports/explore.json`` (summary and findings), ``reports/explore/*.png`` and, for
``dvc plots``, ``plots/explore/target_rate.csv`` and ``plots/explore/missing.csv``. All of
it is logged to MLflow as a run named ``explore``.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cycleml.config import Params
from cycleml.data.schema import Schema, label_key
from cycleml.files import atomic_path, read_json, write_csv, write_json, write_text
from cycleml.names import TAG_STAGE
from cycleml.paths import Paths

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "Exploration",
    "association_matrix",
    "cramers_v",
    "explore",
    "render",
    "report_html",
    "run",
]

OTHER = "(other)"
MISSING = "(missing)"

# Thresholds of the findings: what is worth a sentence in the report.
_MISSING_FINDING = 0.2
_CORRELATION_FINDING = 0.8
_MIN_BUCKET_SHARE = 0.01  # smaller categories are too noisy to call out
_TOP_FINDINGS = 3
_HIST_BINS = 30
_TAIL = 0.005  # histograms span the 0.5%-99.5% quantiles when outliers would squash them
_PANELS = 12  # plots per figure: a 20-column table makes a handful of PNGs
_COLS = 3
_DPI = 100


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


# --- buckets ---------------------------------------------------------------------------


def _fmt(value: float, digits: int = 4) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _unique_labels(values: np.ndarray) -> list[str]:
    """Short labels for sorted distinct numbers, as precise as needed to stay distinct."""
    for digits in (4, 6, 9, 17):
        labels = [_fmt(float(v), digits) for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(float(v)) for v in values]


def _category_buckets(column: pd.Series, max_categories: int) -> pd.Series:
    """Text categories: the ``max_categories`` most frequent, the rest pooled as (other)."""
    text = column.map(str, na_action="ignore")
    counts = text.value_counts().sort_index(kind="stable")
    top = list(counts.sort_values(ascending=False, kind="stable").index[:max_categories])
    pooled = text.where(text.isin(top) | text.isna(), OTHER).fillna(MISSING)
    order = top + [b for b in (OTHER, MISSING) if bool((pooled == b).any())]
    return pd.Series(pd.Categorical(pooled, categories=order), index=column.index)


def _numeric_buckets(column: pd.Series, bins: int) -> pd.Series:
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


# --- target ----------------------------------------------------------------------------


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


# --- associations ----------------------------------------------------------------------


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


def _codes(buckets: pd.Series) -> np.ndarray:
    """Integer codes of pooled categories, -1 for missing (left out of associations)."""
    codes: np.ndarray = buckets.cat.codes.to_numpy().astype("int64")
    categories = list(buckets.cat.categories)
    if MISSING in categories:
        codes[codes == categories.index(MISSING)] = -1
    return codes


def association_matrix(codes: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cramér's V of every pair of integer-coded columns (symmetric, 1 on the diagonal)."""
    names = list(codes)
    matrix = np.eye(len(names))
    for (i, left), (j, right) in combinations(enumerate(names), 2):
        matrix[i, j] = matrix[j, i] = cramers_v(codes[left], codes[right])
    return pd.DataFrame(matrix, index=names, columns=names)


# --- summary and findings --------------------------------------------------------------


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
            f"{r['feature']} = {r['bucket']}: {_rate(r['target_rate'], label)} ({r['rows']:,} rows)"
            for r in part.to_dict("records")
        )

    if "class" not in cats.columns:
        ((_, base),) = overall.items()
        ranked = cats.sort_values("target_rate", ascending=False, kind="stable")
        top = min(_TOP_FINDINGS, len(ranked) // 2)  # no category is both highest and lowest
        if not top:
            return []
        baseline = f" (overall {_rate(base, label)})"
        return [
            f"highest {label}: {describe(ranked.head(top))}{baseline}",
            f"lowest {label}: {describe(ranked.tail(top).iloc[::-1])}{baseline}",
        ]
    lines = []
    for cls, part in cats.groupby("class", sort=False):
        best = part.sort_values("target_rate", ascending=False, kind="stable").head(1)
        lines.append(
            f"share of class {cls} is highest where {describe(best)} "
            f"(overall {_rate(overall[str(cls)], label)})"
        )
    return lines


def _rate(value: float, label: str) -> str:
    return f"{value:.4g}" if label.startswith("mean ") else f"{value:.1%}"


def _findings(
    exp_summary: pd.DataFrame,
    pearson: pd.DataFrame,
    rates: pd.DataFrame,
    schema: Schema,
    rows: int,
    label: str,
    overall: dict[str, float],
    max_categories: int,
) -> list[str]:
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


# --- the pure core ---------------------------------------------------------------------


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

    category_buckets = {c: _category_buckets(frame[c], max_categories) for c in schema.categorical}
    numeric_buckets = {c: _numeric_buckets(numeric[c], bins) for c in schema.numeric}
    parts = [
        _rates(b, y, c, multiclass) for c, b in {**numeric_buckets, **category_buckets}.items()
    ]
    columns = ["feature", "bucket", *(["class"] if multiclass else []), "rows", "target_rate"]
    rates = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)

    codes = {c: _codes(b) for c, b in category_buckets.items()}
    summary = _summary(frame, schema, numeric)
    missing = summary[["column", "missing", "missing_share"]].reset_index(drop=True)
    pearson = numeric.corr(method="pearson")
    target = frame[schema.target]
    target_buckets = (
        None
        if schema.task == "regression"
        else _category_buckets(target.map(label_key, na_action="ignore"), len(schema.classes))
    )
    distributions = {schema.target: _distribution(target, target_buckets)}
    for c in schema.features:
        distributions[c] = _distribution(frame[c], category_buckets.get(c))
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
        findings=_findings(summary, pearson, rates, schema, len(y), label, overall, max_categories),
    )


# --- figures ---------------------------------------------------------------------------


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _compact(count: int) -> str:
    return f"{count / 1000:.1f}k" if count >= 1000 else str(count)


def _figure(panels: int, title: str) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    rows = -(-panels // _COLS)
    height = 3.3 * rows + 0.7
    fig = Figure(figsize=(5.2 * _COLS, height), dpi=_DPI)
    axes: list[Axes] = list(fig.subplots(rows, _COLS, squeeze=False).ravel())
    for ax in axes[panels:]:
        fig.delaxes(ax)
    fig.suptitle(title, y=1 - 0.12 / height, va="top", fontsize=14, fontweight="bold")
    return fig, axes[:panels]


def _fit(fig: Figure, axes: list[Axes]) -> None:
    """Margins from the longest tick label: a constrained layout costs a third of the
    rendering time for a grid of small multiples, and the grid is regular anyway."""
    chars = max((len(t.get_text()) for ax in axes for t in ax.get_yticklabels()), default=0)
    label = 0.058 * chars + 0.4  # inches: tick labels, axis label
    width, height = fig.get_size_inches()
    rows = -(-len(axes) // _COLS)
    gap, top, bottom, right = label + 0.25, 0.8, 0.5, 0.25  # inches
    axes_width = (width - label - right - (_COLS - 1) * gap) / _COLS
    axes_height = (height - top - bottom - (rows - 1) * 0.8) / rows
    fig.subplots_adjust(
        left=label / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=gap / axes_width,
        hspace=0.8 / axes_height,
    )


def _save(fig: Figure, target: Path) -> Path:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return target


def _pages(
    out_dir: Path,
    stem: str,
    title: str,
    names: list[str],
    draw: Callable[[Axes, str], None],
) -> list[Path]:
    """Small multiples, ``_PANELS`` per PNG: ``<stem>_1.png``, ``<stem>_2.png``, …"""
    chunks = [names[i : i + _PANELS] for i in range(0, len(names), _PANELS)]
    written = []
    for page, chunk in enumerate(chunks, start=1):
        suffix = f" ({page}/{len(chunks)})" if len(chunks) > 1 else ""
        fig, axes = _figure(len(chunk), title + suffix)
        for ax, name in zip(axes, chunk, strict=True):
            draw(ax, name)
        _fit(fig, axes)
        handles, labels = axes[0].get_legend_handles_labels()
        if labels:  # classes of a multiclass target
            fig.legend(handles, labels, loc="upper right", ncols=min(len(labels), 6), fontsize=9)
        written.append(_save(fig, out_dir / f"{stem}_{page}.png"))
    return written


def _bar_labels(ax: Axes, labels: list[str], fontsize: int = 8) -> None:
    """Label horizontal bars top-down; two bars keep the thickness of three."""
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=fontsize)
    ax.set_ylim(max(len(labels), 3) - 0.5, -0.5)


def _draw_distribution(ax: Axes, name: str, exp: Exploration) -> None:
    dist = exp.distributions[name]
    if "bucket" in dist.columns:
        ticks = np.arange(len(dist))
        ax.barh(ticks, dist["rows"], height=0.7, color="#4C72B0")
        _bar_labels(ax, [_short(b) for b in dist["bucket"]])
        ax.set_xlabel("rows")
    else:
        left, right = dist["left"].to_numpy(), dist["right"].to_numpy()
        if np.array_equal(left, right):
            gap = float(np.diff(left).min()) if len(left) > 1 else 1.0
            ax.bar(left, dist["rows"], width=0.7 * gap, color="#4C72B0")
            if len(left) <= 10:
                ax.set_xticks(left, [_fmt(float(v)) for v in left])
        else:
            ax.bar(
                left,
                dist["rows"],
                width=right - left,
                align="edge",
                color="#4C72B0",
                edgecolor="white",
                linewidth=0.4,
            )
        ax.set_ylabel("rows")
    missing = int(dict(zip(exp.missing["column"], exp.missing["missing"], strict=True))[name])
    notes = [f"{missing / exp.rows:.1%} missing"] if missing else []
    off_scale = exp.rows - missing - int(dist["rows"].sum())
    if off_scale > 0:
        notes.append(f"{off_scale:,} outliers off-scale")
    role = " (target)" if name == exp.target else ""
    ax.set_title(f"{name}{role}" + "".join(f" — {n}" for n in notes), fontsize=10)
    ax.tick_params(labelsize=8)


def _draw_rate(ax: Axes, name: str, exp: Exploration) -> None:
    part = exp.target_rate[exp.target_rate["feature"] == name]
    buckets = list(pd.unique(part["bucket"]))
    rows = part.groupby("bucket", sort=False)["rows"].first()
    ticks = np.arange(len(buckets))
    if "class" in part.columns:
        shares = part.pivot(index="bucket", columns="class", values="target_rate").loc[buckets]
        start = np.zeros(len(buckets))
        for i, cls in enumerate(shares.columns):
            ax.barh(ticks, shares[cls], left=start, height=0.7, color=f"C{i}", label=str(cls))
            start += shares[cls].to_numpy()
    else:
        ax.barh(ticks, part["target_rate"], height=0.7, color="#DD8452")
        ((_, overall),) = exp.overall_rate.items()
        ax.axvline(overall, color="0.3", linestyle="--", linewidth=1)
    labels = [f"{_short(b, 20)}  n={_compact(int(rows[b]))}" for b in buckets]
    _bar_labels(ax, labels)
    if not exp.rate_label.startswith("mean "):
        from matplotlib.ticker import PercentFormatter

        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title(name, fontsize=10)
    ax.tick_params(labelsize=8)


def _draw_heatmap(ax: Axes, matrix: pd.DataFrame, title: str, cmap: str, vmin: float) -> Any:
    values = matrix.to_numpy(dtype="float64")
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=1.0)
    ticks = np.arange(len(matrix))
    names = [_short(str(c), 20) for c in matrix.columns]
    ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    if len(matrix) <= 20:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                color = "white" if abs(v) > 0.6 else "black"
                ax.text(
                    j,
                    i,
                    f"{round(v, 2) + 0.0:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=color,
                )
    ax.set_title(title, fontsize=11)
    return image


def _heatmaps(
    out_dir: Path, stem: str, title: str, matrices: dict[str, pd.DataFrame], vmin: float
) -> Path:
    from matplotlib.figure import Figure

    side = max(4.5, 0.42 * len(next(iter(matrices.values()))) + 2.0)
    fig = Figure(figsize=(side * len(matrices) + 1.0, side), dpi=_DPI, layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False).ravel()
    cmap = "RdBu_r" if vmin < 0 else "Blues"
    image = None
    for ax, (name, matrix) in zip(axes, matrices.items(), strict=True):
        image = _draw_heatmap(ax, matrix, name, cmap, vmin)
    assert image is not None
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    fig.suptitle(title, fontsize=14, fontweight="bold")
    return _save(fig, out_dir / f"{stem}.png")


def _missing_figure(out_dir: Path, exp: Exploration) -> Path:
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    shown = (
        exp.missing[exp.missing["missing"] > 0]
        .sort_values("missing_share", ascending=False, kind="stable")
        .head(40)
    )
    fig = Figure(figsize=(8, max(2.5, 0.3 * len(shown) + 1.2)), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    if shown.empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no missing values in any column", ha="center", va="center")
    else:
        ticks = np.arange(len(shown))
        ax.barh(ticks, shown["missing_share"], height=0.7, color="#C44E52")
        labels = [
            f"{_short(c)}  n={_compact(int(n))}"
            for c, n in zip(shown["column"], shown["missing"], strict=True)
        ]
        _bar_labels(ax, labels, fontsize=9)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("share of rows missing")
    fig.suptitle(f"Missing values ({exp.rows:,} rows)", fontsize=13, fontweight="bold")
    return _save(fig, out_dir / "missing.png")


def render(exp: Exploration, out_dir: Path) -> list[Path]:
    """Write the figures of ``exp`` as PNGs into ``out_dir``; return their paths.

    Uses matplotlib's object API (no pyplot), so nothing global changes and no window opens.
    """
    features = [c for c in exp.distributions if c != exp.target]
    written = _pages(
        out_dir,
        "distributions",
        "Distributions",
        [exp.target, *features],
        lambda ax, name: _draw_distribution(ax, name, exp),
    )
    rated = list(pd.unique(exp.target_rate["feature"]))
    overall = ""
    if len(exp.overall_rate) == 1:
        ((_, rate),) = exp.overall_rate.items()
        overall = f" (dashed line: overall {_rate(rate, exp.rate_label)})"
    written += _pages(
        out_dir,
        "target_rate",
        f"{exp.rate_label} by feature{overall}",
        rated,
        lambda ax, name: _draw_rate(ax, name, exp),
    )
    if len(exp.pearson) >= 2:
        matrices = {"Pearson": exp.pearson, "Spearman": exp.spearman}
        written.append(_heatmaps(out_dir, "correlation", "Numeric correlations", matrices, -1.0))
    if len(exp.cramers_v) >= 2:
        matrices = {"bias-corrected Cramér's V": exp.cramers_v}
        written.append(_heatmaps(out_dir, "cramers_v", "Categorical associations", matrices, 0.0))
    written.append(_missing_figure(out_dir, exp))
    return written


# --- report ----------------------------------------------------------------------------

_SECTIONS = {
    "distributions": "Distributions",
    "target_rate": "Target rate by feature",
    "correlation": "Numeric correlations",
    "cramers_v": "Categorical associations",
    "missing": "Missing values",
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:.85rem}th,td{padding:.25rem .6rem;text-align:right}
th{background:#f0f0f0}td:nth-child(-n+3),th:nth-child(-n+3),td:last-child{text-align:left}
tr:nth-child(even){background:#fafafa}img{max-width:100%;margin:.5rem 0}
.table{overflow-x:auto}
"""


def _cell(value: Any, kind: str) -> str:
    if isinstance(value, float) and not np.isfinite(value):
        return ""
    if kind == "share":
        return f"{value:.1%}"
    if kind == "count":
        return f"{int(value):,}"
    if kind == "number":
        return _fmt(float(value))
    return html.escape(str(value))


def _table(summary: pd.DataFrame) -> str:
    kinds = {"missing": "count", "missing_share": "share", "distinct": "count"}
    kinds |= {c: "number" for c in ("min", "median", "max", "mean", "std")}
    names = {"missing_share": "missing %", "top": "most frequent"}
    head = "".join(f"<th>{html.escape(names.get(c, c))}</th>" for c in summary.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{_cell(v, kinds.get(str(c), 'text'))}</td>" for c, v in row.items())
        + "</tr>"
        for _, row in summary.iterrows()
    )
    return f'<div class="table"><table><tr>{head}</tr>{body}</table></div>'


def report_html(exp: Exploration, figures: list[Path]) -> str:
    """One self-contained HTML page: findings, the summary table, the figures inlined."""
    findings = "".join(f"<li>{html.escape(f)}</li>" for f in exp.findings) or (
        "<li>nothing stands out</li>"
    )
    sections: dict[str, list[str]] = {}
    for path in figures:
        stem, _, page = path.stem.rpartition("_")
        key = stem if page.isdigit() else path.stem
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        alt = html.escape(path.stem)
        sections.setdefault(key, []).append(f'<img alt="{alt}" src="data:image/png;base64,{data}">')
    figure_html = "".join(
        f"<h2>{html.escape(_SECTIONS.get(key, key))}</h2>{''.join(images)}"
        for key, images in sections.items()
    )
    rates = ", ".join(f"{k} {_rate(v, exp.rate_label)}" for k, v in exp.overall_rate.items())
    if len(exp.overall_rate) == 1:
        rates = _rate(next(iter(exp.overall_rate.values())), exp.rate_label)
    intro = (
        f"{exp.rows:,} rows × {len(exp.summary)} columns; task: {exp.task}; "
        f"target: {exp.target} (overall {exp.rate_label}: {rates})"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>cycleml explore: {html.escape(exp.target)}</title><style>{_STYLE}</style>"
        f"</head><body><h1>Exploration</h1><p>{html.escape(intro)}</p>"
        f"<h2>Findings</h2><ul>{findings}</ul><h2>Columns</h2>{_table(exp.summary)}"
        f"{figure_html}</body></html>\n"
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows, NaN as null."""
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records


def _report_json(exp: Exploration, figures: list[Path]) -> dict[str, Any]:
    return {
        "rows": exp.rows,
        "columns": len(exp.summary),
        "task": exp.task,
        "target": exp.target,
        "rate": exp.rate_label,
        "overall_rate": {k: v if np.isfinite(v) else None for k, v in exp.overall_rate.items()},
        "findings": exp.findings,
        "summary": _records(exp.summary),
        "figures": [p.name for p in figures],
    }


def run(params: Params, paths: Paths) -> Exploration:
    """Explore ``data/raw`` as the schema describes it; write the report; log it to MLflow."""
    tracking = params.tracking
    bins, max_categories = params.explore.bins, params.explore.max_categories
    import mlflow

    from cycleml.model.tracking import configure, file_md5

    schema = Schema.model_validate(read_json(paths.schema))
    exp = explore(pd.read_parquet(paths.raw), schema, bins, max_categories)
    folder = paths.report("explore")
    figures = render(exp, folder)
    for stale in set(folder.glob("*.png")) - set(figures):
        stale.unlink()
    page = write_text(paths.report("explore.html"), report_html(exp, figures))
    summary = write_json(paths.report("explore.json"), _report_json(exp, figures))
    tables = [
        write_csv(paths.plot("explore/target_rate.csv"), exp.target_rate),
        write_csv(paths.plot("explore/missing.csv"), exp.missing[["column", "missing_share"]]),
    ]
    configure(tracking, paths)
    with mlflow.start_run(run_name="explore"):
        mlflow.set_tags({TAG_STAGE: "explore", "cycleml.data.raw.md5": file_md5(paths.raw)})
        mlflow.log_params({"bins": bins, "max_categories": max_categories, "rows": exp.rows})
        mlflow.log_artifacts(str(folder), artifact_path="explore")
        for file in tables:
            mlflow.log_artifact(str(file), artifact_path="explore")
        mlflow.log_artifact(str(page))
        mlflow.log_artifact(str(summary))
    return exp
