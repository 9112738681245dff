"""Feedback labels, checked against the served model's schema before they are stored.

A label is kept only when it is a value the model could have been trained on, because
one bad label would otherwise be exported by retrain (and fail validate) and stop
``cycleml monitor`` for good. Classification: one of the schema's ``classes``, compared
as the class's text (``label_key``): ``1``, ``1.0``, ``"1"`` and ``"1.0"`` all name class
``"1"``, while ``true`` names only a class ``"True"``; it is stored as the schema spells
the class. Regression: a finite number (a JSON number or a numeric string), stored as a
float. Text longer than ``MAX_LABEL_CHARS`` is refused before it is parsed at all.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from cycleml.data.schema import Schema, label_key

__all__ = ["MAX_LABEL_CHARS", "BadLabels", "allowed", "check_labels", "typed_label"]

MAX_LABEL_CHARS = 256
"""Longest label text looked at; class names and numbers are far shorter."""


class BadLabels(ValueError):
    """Labels the served model cannot take; ``positions`` index the request's items."""

    def __init__(self, positions: list[int], total: int, allowed: str) -> None:
        self.positions, self.total, self.allowed = positions, total, allowed
        where = (
            f"items[{positions[0]}].label"
            if len(positions) == 1
            else f"items[].label: {len(positions)} of {total} labels (items {positions[:10]})"
        )
        super().__init__(f"{where}: not a label of the served model; send {allowed}")


def allowed(schema: Schema) -> str:
    """What a label may be, in words, for error messages (never the value sent)."""
    if schema.task == "regression":
        return "a finite number"
    shown = ", ".join(repr(c) for c in schema.classes[:20])
    more = f" and {len(schema.classes) - 20} more" if len(schema.classes) > 20 else ""
    return f"one of the classes {shown}{more}"


def typed_label(schema: Schema, value: Any) -> str | float | None:
    """``value`` as the schema types it (the class's text, or a float), or None when the
    model cannot take it. Monitor and retrain use it too, to skip labels stored before
    /feedback checked them."""
    if isinstance(value, str) and len(value) > MAX_LABEL_CHARS:
        return None
    if schema.task == "regression":
        return _finite(value)
    try:
        key = label_key(value)
    except (OverflowError, ValueError):  # an integer beyond float range
        return None
    if key in schema.classes:
        return key
    number = _finite(value) if isinstance(value, str) else None
    if number is not None and label_key(number) in schema.classes:  # "1.0" as 1.0
        return label_key(number)
    return None


def check_labels(schema: Schema, labels: Sequence[Any]) -> list[str | float]:
    """Every label typed as the schema says; raises ``BadLabels`` naming the positions."""
    typed = [typed_label(schema, value) for value in labels]
    bad = [i for i, value in enumerate(typed) if value is None]
    if bad:
        raise BadLabels(bad, len(labels), allowed(schema))
    return [value for value in typed if value is not None]


def _finite(value: Any) -> float | None:
    """A finite float from a number or numeric text; None for anything else (booleans,
    NaN, infinities, integers beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, str | numbers.Real):
        return None  # (numpy's booleans are not numbers.Real)
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None
