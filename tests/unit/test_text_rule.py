"""One text rule: batch scoring's Arrow fast path reads text exactly as ``clean_text`` does.

``arrow_inputs`` trims and checks markers with ``pyarrow.compute`` for speed; the rule
itself is :func:`cycleml.data.cleaning.clean_text`, which ingest and ``prepare_inputs``
apply. Every value of a messy column must come out the same both ways.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from cycleml.config import CleanRules
from cycleml.data.cleaning import clean_text
from cycleml.data.schema import Schema
from cycleml.scoring.columns import Coded
from cycleml.scoring.inputs import arrow_inputs, prepare_inputs

pytestmark = pytest.mark.unit

MESSY_TEXT = [
    "basic",
    "  basic ",
    "pro\t",
    "\u00a0pro\u3000",  # no-break and ideographic spaces
    "\u2003\u2028pro\x85\x1c",  # em space, line separator, next line, file separator
    "x\u200by",  # a zero-width space is not whitespace: kept
    "?",
    " ? ",
    "NA",
    "\u2002NA\u00a0",
    "N/A",
    "",
    "   ",
    "\u3000",
    None,
    "basic",
    None,
]
MESSY_NUMBERS = [" 1.5 ", "\u00a02\u3000", "-3e2", "?", " NA ", "", "\u2003", None, "7"]
TEXT_TYPES = {  # as Parquet hands the compiled scorer its text inputs (read_dictionary)
    "string": pa.dictionary(pa.int32(), pa.string()),
    "large_string": pa.dictionary(pa.int32(), pa.large_string()),
}
SCHEMA = Schema(task="regression", target="y", numeric=["n"], categorical=["c"])


def _rule(value: Any, markers: list[str]) -> Any:
    """``clean_text`` per value; a missing value stays missing."""
    return None if value is None else clean_text(value, markers)


def _table(kind: pa.DataType, text: list[Any], numbers: list[Any]) -> pa.Table:
    rows = max(len(text), len(numbers))
    text = (text * rows)[:rows]
    numbers = (numbers * rows)[:rows]
    return pa.table(
        {"c": pa.array(text, pa.string()).cast(kind), "n": pa.array(numbers).cast(kind)}
    )


def _decoded(column: Any) -> list[Any]:
    assert isinstance(column, Coded)
    assert (column.codes >= -1).all()  # None is -1; no other missing value is made
    return [None if code == -1 else column.uniques[code] for code in column.codes.tolist()]


@pytest.mark.parametrize("na_values", [None, ["?", "NA"]], ids=["default markers", "custom"])
@pytest.mark.parametrize("kind", list(TEXT_TYPES.values()), ids=list(TEXT_TYPES))
def test_arrow_text_path_is_clean_text_per_value(
    kind: pa.DataType, na_values: list[str] | None
) -> None:
    markers = list(CleanRules().na_values) if na_values is None else na_values
    table = _table(kind, MESSY_TEXT, MESSY_NUMBERS)
    expected = [_rule(v, markers) for v in table.column("c").cast(pa.string()).to_pylist()]

    fast = _decoded(arrow_inputs(table, SCHEMA, na_values)["c"])
    slow = prepare_inputs(table.to_pandas(), SCHEMA, na_values)["c"].tolist()

    assert fast == expected
    assert slow == expected


@pytest.mark.parametrize("na_values", [None, ["?", "NA", ""]], ids=["default markers", "custom"])
@pytest.mark.parametrize("kind", list(TEXT_TYPES.values()), ids=list(TEXT_TYPES))
def test_arrow_numbers_from_text_are_clean_text_per_value(
    kind: pa.DataType, na_values: list[str] | None
) -> None:
    markers = list(CleanRules().na_values) if na_values is None else na_values
    table = _table(kind, MESSY_TEXT, MESSY_NUMBERS)
    texts = [_rule(v, markers) for v in table.column("n").cast(pa.string()).to_pylist()]
    expected = [math.nan if t is None or t == "" else float(t) for t in texts]

    fast = arrow_inputs(table, SCHEMA, na_values)["n"]
    slow = prepare_inputs(table.to_pandas(), SCHEMA, na_values)["n"].to_numpy()

    assert isinstance(fast, np.ndarray)  # Arrow parsed every value: the fast path ran
    np.testing.assert_array_equal(fast, np.array(expected))
    np.testing.assert_array_equal(slow, np.array(expected))


def test_unparsable_numbers_fall_back_to_text_with_the_same_rule() -> None:
    """A value Arrow cannot parse sends the column on as Coded text, cleaned by the rule."""
    numbers = [*MESSY_NUMBERS, " twelve "]
    table = _table(TEXT_TYPES["string"], MESSY_TEXT, numbers)
    markers = list(CleanRules().na_values)
    expected = [_rule(v, markers) for v in table.column("n").cast(pa.string()).to_pylist()]
    assert _decoded(arrow_inputs(table, SCHEMA)["n"]) == expected
