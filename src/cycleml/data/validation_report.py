"""What validation concludes: the failure that stops the pipeline, or the report.

:class:`ValidationFailed` names the column, the rule and the fix; a
:class:`ValidationReport` lists the soft findings, the leakage scores and the class
counts, and :func:`report_html` renders it as ``reports/validate.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

__all__ = ["Finding", "ValidationFailed", "ValidationReport", "report_html"]


class ValidationFailed(ValueError):
    """The data cannot support the configured problem; the message says why and what to do."""


@dataclass
class Finding:
    """One soft finding: a warning, or a column left out of the features (dropped)."""

    column: str
    rule: str
    severity: str  # error | warning | dropped
    detail: str


@dataclass
class ValidationReport:
    """What validate saw and decided; ``reports/validate.json`` is its ``asdict``."""

    rows: int
    columns: int
    task: str
    target_missing: int
    class_counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    leakage_scores: dict[str, float] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    contract: str | None = None

    @property
    def warnings(self) -> list[str]:
        return [f"{f.column}: {f.detail}" for f in self.findings if f.severity != "error"]

    def add(self, column: str, rule: str, severity: str, detail: str) -> None:
        self.findings.append(Finding(column, rule, severity, detail))


def report_html(report: ValidationReport) -> str:
    """The report as one HTML page: findings coloured by severity, then leakage scores."""
    colours = {"error": "#fde2e1", "warning": "#fff4d6", "dropped": "#e8f0fe"}
    rows = "".join(
        f"<tr style='background:{colours.get(f.severity, '#fff')}'><td>{escape(f.severity)}</td>"
        f"<td>{escape(f.column)}</td><td>{escape(f.rule)}</td><td>{escape(f.detail)}</td></tr>"
        for f in report.findings
    )
    leaks = "".join(
        f"<tr><td>{escape(c)}</td><td>{v:.3f}</td></tr>"
        for c, v in sorted(report.leakage_scores.items(), key=lambda kv: -kv[1])
    )
    classes = ", ".join(f"{escape(k)}: {v:,}" for k, v in report.class_counts.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>cycleml validate</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;
text-align:left}}</style></head><body><h1>Data validation</h1>
<p>{report.rows:,} rows, {report.columns} columns; task <b>{escape(report.task)}</b>.
{("Classes: " + classes + ".") if classes else ""}
Contract: {escape(report.contract or "none")}.</p>
<h2>Findings</h2><table><tr><th>severity</th><th>column</th><th>rule</th><th>detail</th></tr>
{rows or "<tr><td colspan=4>none</td></tr>"}</table>
<h2>Leakage: how well each feature alone predicts the target</h2>
<table><tr><th>column</th><th>score</th></tr>{leaks}</table></body></html>
"""
