"""The exploration as a self-contained HTML page (figures inlined) and a JSON summary."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cycleml.exploration.formatting import format_number, format_rate
from cycleml.exploration.profile import Exploration

__all__ = ["report_html", "report_json"]

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
        return format_number(float(value))
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
    rates = ", ".join(f"{k} {format_rate(v, exp.rate_label)}" for k, v in exp.overall_rate.items())
    if len(exp.overall_rate) == 1:
        rates = format_rate(next(iter(exp.overall_rate.values())), exp.rate_label)
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


def report_json(exp: Exploration, figures: list[Path]) -> dict[str, Any]:
    """The summary and findings as JSON-ready data; figures by file name."""
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
