"""A chunk of rows made into the model's inputs, cleaned as ingest cleaned the training data.

:func:`prepare_inputs` works on a pandas frame: text through
:func:`cycleml.data.cleaning.clean_text` (the one text rule), once per distinct value, then
the type training gave each column. :func:`arrow_inputs` is its fast path for an Arrow
table and the compiled scorer: the same rule applied by ``pyarrow.compute`` to each
dictionary's distinct values, with no Python object per value
(``tests/unit/test_text_rule.py`` holds the two to the same answers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from cycleml.config import CleanRules
from cycleml.data.cleaning import clean_text
from cycleml.data.schema import Schema
from cycleml.scoring.columns import Coded, Column

__all__ = ["arrow_inputs", "is_text_type", "prepare_inputs"]


def _default_na_values() -> list[str]:
    return list(CleanRules().na_values)


def _clean_text(values: pd.Series, markers: set[str]) -> pd.Series:
    """``clean_text`` (ingest's rule: stripped text, markers missing) once per distinct
    value; missing values stay missing."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = [clean_text(u, markers) for u in uniques]
    table = np.asarray([*cleaned, None], dtype=object)  # code -1 (missing) picks the None
    return pd.Series(table[codes], index=values.index, dtype="object")


def prepare_inputs(
    frame: pd.DataFrame, schema: Schema, na_values: Sequence[str] | None = None
) -> pd.DataFrame:
    """The model's input columns, cleaned as ingest cleaned the training data.

    Text is stripped and the missing markers (``data.clean.na_values``) become missing;
    then each column takes the type training gave it, decided by the schema rather than
    guessed per chunk: numeric columns become float64 (unparsable text -> missing, as in
    ingest), categorical ones text. Other inputs (sources of derived features, such as a
    date) are left for the pipeline's own parsing. Rows are never dropped or reordered.
    """
    markers = set(_default_na_values() if na_values is None else na_values)
    out = {col: _prepare_column(frame[col], col, schema, markers) for col in schema.inputs}
    return pd.DataFrame(out, index=frame.index)


def _prepare_column(values: pd.Series, col: str, schema: Schema, markers: set[str]) -> pd.Series:
    if not pd.api.types.is_numeric_dtype(values) or col in schema.categorical:
        if not pd.api.types.is_datetime64_any_dtype(values):
            values = _clean_text(values, markers)
    if col in schema.numeric:
        values = pd.to_numeric(values, errors="coerce").astype("float64")
    return values


def arrow_inputs(
    table: pa.Table, schema: Schema, na_values: Sequence[str] | None = None
) -> dict[str, Column]:
    """``prepare_inputs`` for an Arrow table, for the compiled scorer, with no Python object
    per value: text columns become ``Coded`` through Arrow's dictionary encoding (each
    distinct value stripped and checked against the markers once), numbers float64 arrays.
    A column of any other type is prepared by ``prepare_inputs``' own rules."""
    import pyarrow.compute as pc

    markers = pa.array(sorted(_default_na_values() if na_values is None else na_values))
    out: dict[str, Column] = {}
    for col in schema.inputs:
        array = table.column(col).combine_chunks()
        kind = array.type
        if pa.types.is_dictionary(kind) and is_text_type(kind.value_type):
            if len(array.dictionary) > len(array):  # a whole row group's: encode this chunk
                array = pc.dictionary_encode(array.dictionary_decode())
            kind = array.type
        elif is_text_type(kind):
            array = pc.dictionary_encode(array)
        if pa.types.is_dictionary(kind):
            numbers = _text_numbers(array, markers) if col in schema.numeric else None
            out[col] = numbers if numbers is not None else _coded_text(array, markers)
        elif col in schema.numeric and (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            out[col] = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            marker_set = set(markers.to_pylist())
            out[col] = _prepare_column(array.to_pandas(), col, schema, marker_set)
    return out


# str.strip()'s whitespace, so Arrow trims exactly what clean_text trims
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def is_text_type(kind: pa.DataType) -> bool:
    """Arrow's text types: string and large_string."""
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _coded_text(array: pa.DictionaryArray, markers: pa.Array) -> Coded:
    """Dictionary-encoded text as Coded: each distinct value stripped, markers missing."""
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim(array.dictionary, characters=_WHITESPACE)
    marker = pc.is_in(trimmed, value_set=markers).to_numpy(zero_copy_only=False)
    texts = trimmed.to_numpy(zero_copy_only=False)
    texts[marker] = None
    remap = np.append(np.where(marker, -1, np.arange(len(texts))), -1)
    codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False).astype("int64")
    return Coded(remap[codes], texts)


def _text_numbers(array: pa.DictionaryArray, markers: pa.Array) -> np.ndarray | None:
    """Numbers stored as text, parsed by Arrow, when every value that is not a missing
    marker parses; None otherwise (then pandas' ``to_numeric`` rules decide, per value)."""
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim(array.dictionary, characters=_WHITESPACE)
    trimmed = pc.if_else(pc.is_in(trimmed, value_set=markers), None, trimmed)
    try:
        parsed = pc.cast(trimmed, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    values = pa.DictionaryArray.from_arrays(array.indices, parsed).dictionary_decode()
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype="float64")
