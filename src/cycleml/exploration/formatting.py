"""How numbers and target rates read in bucket labels, findings, figures and the page."""

from __future__ import annotations

__all__ = ["format_number", "format_rate"]


def format_number(value: float, digits: int = 4) -> str:
    """Integers with thousands separators, large values unrounded, the rest ``digits``
    significant figures."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_rate(value: float, label: str) -> str:
    """A target rate as its label reads: a mean as a number, a rate or share in percent."""
    return f"{value:.4g}" if label.startswith("mean ") else f"{value:.1%}"
