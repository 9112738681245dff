"""The exploration's charts as PNGs, drawn with matplotlib's object API.

Small multiples of distributions and of the target rate by feature (twelve panels a
page), correlation and association heatmaps, and the missing-values bars. No pyplot:
nothing global changes and no window opens; matplotlib is imported only when drawing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cycleml.exploration.formatting import format_number, format_rate
from cycleml.exploration.profile import Exploration
from cycleml.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["render"]

_PANELS = 12  # plots per figure: a 20-column table makes a handful of PNGs
_COLS = 3
_DPI = 100


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
                ax.set_xticks(left, [format_number(float(v)) for v in left])
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
        overall = f" (dashed line: overall {format_rate(rate, exp.rate_label)})"
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
