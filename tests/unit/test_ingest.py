from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cycleml.config import DataParams
from cycleml.data.cleaning import clean
from cycleml.data.sources import IngestError, read_source

pytestmark = pytest.mark.unit


def data_params(**overrides: Any) -> DataParams:
    base: dict[str, Any] = {"source": {"kind": "demo"}, "target": "y", "id_columns": ["id"]}
    return DataParams.model_validate(base | overrides)


def messy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            " id ": ["001", "002", "003", "004", "004"],
            "charges": ["10.5", " ", "7", "x1", "x1"],
            "plan": [" basic", "pro ", "?", "pro", "pro"],
            "count": [1, 2, 3, 4, 4],
            "empty": [None, None, None, None, None],
            "y": ["Yes", "No", "No", "Yes", "Yes"],
        }
    )


def test_clean_applies_each_rule_and_reports_it() -> None:
    frame, report = clean(messy(), data_params(clean={"numeric_text_threshold": 0.5}))
    assert list(frame.columns) == ["id", "charges", "plan", "count", "y"]
    # ids stay text (leading zeros kept), duplicates gone
    assert frame["id"].tolist() == ["001", "002", "003", "004"]
    assert report.duplicates_dropped == 1
    # numbers stored as text with blanks: blank -> missing, unparsable -> missing, reported
    assert frame["charges"].dtype == "float64"
    assert frame["charges"].iloc[0] == 10.5 and np.isnan(frame["charges"].iloc[1])
    assert report.numeric_from_text["charges"] == {"unparsed": 2, "examples": ["x1"]}
    # whitespace stripped, '?' is a missing marker
    assert frame["plan"].tolist()[:2] == ["basic", "pro"] and pd.isna(frame["plan"].iloc[2])
    assert report.na_markers == {"charges": 1, "plan": 1}
    # integers become float (one numeric type), the target is left as it is
    assert frame["count"].dtype == "float64"
    assert frame["y"].tolist() == ["Yes", "No", "No", "Yes"]
    assert report.dropped_columns == {"empty": "every value is missing"}
    assert any("duplicate" in line for line in report.lines())


def test_mostly_text_column_stays_categorical() -> None:
    frame, report = clean(messy(), data_params())  # threshold 0.95: 2 of 4 are not numbers
    assert frame["charges"].dtype == object
    assert "charges" not in report.numeric_from_text


def test_rules_can_be_switched_off() -> None:
    frame, report = clean(
        messy(),
        data_params(clean={"drop_duplicates": False, "na_values": [], "drop_empty_columns": False}),
    )
    assert len(frame) == 5 and report.duplicates_dropped == 0
    assert "empty" in frame.columns
    assert frame["plan"].iloc[2] == "?"


def test_unknown_drop_column_is_named() -> None:
    with pytest.raises(IngestError, match=r"data.drop_columns: \['nope'\]"):
        clean(messy(), data_params(drop_columns=["nope"]))


def test_csv_delimiter_is_sniffed_and_markers_are_ours(tmp_path: Path) -> None:
    path = tmp_path / "wine.csv"
    path.write_text('"fixed acidity";"quality"\n7.4;5\n?;6\nNA;5\n')
    source = data_params(source={"kind": "file", "path": str(path)}).source
    raw = read_source(source)
    assert list(raw.columns) == ["fixed acidity", "quality"]
    frame, _ = clean(raw, data_params(target="quality", id_columns=[]))
    assert frame["fixed acidity"].isna().sum() == 2


def test_headerless_csv_takes_column_names(tmp_path: Path) -> None:
    path = tmp_path / "adult.data"
    path.write_text("39, State-gov, <=50K\n50, ?, >50K\n")
    source = data_params(
        source={"kind": "file", "path": str(path), "header": False, "columns": ["age", "wc", "y"]}
    ).source
    frame, report = clean(read_source(source), data_params(id_columns=[]))
    assert frame["wc"].tolist()[0] == "State-gov" and pd.isna(frame["wc"].iloc[1])
    assert frame["y"].tolist() == ["<=50K", ">50K"]


def test_parquet_and_sql_sources(tmp_path: Path) -> None:
    table = pd.DataFrame({"a": [1.0, 2.0], "y": ["p", "q"]})
    table.to_parquet(tmp_path / "t.parquet")
    source = data_params(source={"kind": "file", "path": str(tmp_path / "t.parquet")}).source
    pd.testing.assert_frame_equal(read_source(source), table)

    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as conn:
        table.to_sql("customers", conn, index=False)
    source = data_params(
        source={"kind": "sql", "url": f"sqlite:///{db}", "query": "SELECT * FROM customers"}
    ).source
    pd.testing.assert_frame_equal(read_source(source), table)


def test_unreadable_sources_say_what_to_fix(tmp_path: Path) -> None:
    missing = data_params(source={"kind": "file", "path": str(tmp_path / "no.csv")}).source
    with pytest.raises(IngestError, match="file not found"):
        read_source(missing)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,y\nJos\xe9,1\n".encode("latin-1"))
    source = data_params(source={"kind": "file", "path": str(latin)}).source
    with pytest.raises(IngestError, match="encoding"):
        read_source(source)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match="empty"):
        read_source(data_params(source={"kind": "file", "path": str(empty)}).source)


def test_wrong_column_count_and_missing_header_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "adult.data"
    path.write_text("39, State-gov, 77516, <=50K\n50, ?, 83311, >50K\n")
    short = {"kind": "file", "path": str(path), "header": False, "columns": ["age", "wc", "y"]}
    with pytest.raises(IngestError, match="3 names for 4 fields"):
        read_source(data_params(source=short).source)
    with pytest.raises(IngestError, match="header: false"):
        read_source(data_params(source={"kind": "file", "path": str(path)}).source)


def test_aligned_columns_need_a_regex_separator(tmp_path: Path) -> None:
    path = tmp_path / "auto-mpg.data"
    path.write_text("mpg  cylinders   name\n18.0   8   chevelle\n15.0   8   skylark\n")
    with pytest.raises(IngestError, match="data.source.sep"):
        read_source(data_params(source={"kind": "file", "path": str(path)}).source)
    aligned = {"kind": "file", "path": str(path), "sep": r"\s+"}
    assert list(read_source(data_params(source=aligned).source).columns) == [
        "mpg",
        "cylinders",
        "name",
    ]


def test_compressed_csv_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "wine.csv.gz"
    pd.DataFrame({"acidity": [7.4, 7.8], "quality": [5, 6]}).to_csv(path, sep=";", index=False)
    frame = read_source(data_params(source={"kind": "file", "path": str(path)}).source)
    assert list(frame.columns) == ["acidity", "quality"]


def test_time_column_format_and_iso_text_dates() -> None:
    raw = pd.DataFrame(
        {
            "when": ["13/01/2011", "14/01/2011", "15/01/2011"],
            "day": ["2011-01-13", "2011-01-14", None],
            "y": [1, 2, 3],
        }
    )
    with pytest.raises(IngestError, match="data.time_format"):
        clean(raw, data_params(id_columns=[], time_column="when"))
    frame, report = clean(
        raw, data_params(id_columns=[], time_column="when", time_format="%d/%m/%Y")
    )
    assert frame["when"].dt.day.tolist() == [13, 14, 15]
    assert report.dates_from_text == ["day"]
    assert pd.api.types.is_datetime64_any_dtype(frame["day"])


def test_sql_errors_are_named(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    sqlite3.connect(db).close()
    source = data_params(
        source={"kind": "sql", "url": f"sqlite:///{db}", "query": "SELECT * FROM customer"}
    ).source
    with pytest.raises(IngestError, match="no such table: customer"):
        read_source(source)


def test_text_rules_per_distinct_value_equal_the_rules_row_by_row() -> None:
    """clean() strips, marks and parses each distinct value once; the result must be what
    the rules give applied to every row (the straightforward way, written out here)."""
    rng = np.random.default_rng(3)
    pool = [" 12 ", "12", "3.5", "?", "", "-", "abc", None, np.nan, " Yes", "Yes", "1e3", 7]
    often = [0.3, 0.3, 0.1, 0.01, 0.09, 0.2]
    frame = pd.DataFrame(
        {
            "mostly_numbers": rng.choice(["1", " 2.5 ", "?", "x", None, "3"], 500, p=often),
            "mixed": rng.choice(np.array(pool, dtype=object), 500),
            "y": rng.choice(["Yes", "No"], 500),
        }
    )
    data = data_params(id_columns=[], clean={"drop_duplicates": False})
    rules = data.clean
    cleaned, report = clean(frame, data)
    assert report.numeric_from_text["mostly_numbers"]["examples"] == ["x"]

    def by_row(column: pd.Series) -> pd.Series:
        values = column.astype("object")
        present = values.notna()
        values = values.where(~present, values.astype(str).str.strip())
        values = values.where(~(present & values.isin(set(rules.na_values))), None)
        numbers = pd.to_numeric(values, errors="coerce")
        if (numbers.notna() & values.notna()).sum() / values.notna().sum() >= 0.95:
            return numbers.astype("float64")
        return values

    expected = by_row(frame["mostly_numbers"])
    assert expected.dtype == "float64"
    pd.testing.assert_series_equal(cleaned["mostly_numbers"], expected, check_names=False)
    mixed = by_row(frame["mixed"])
    assert mixed.dtype == object
    assert cleaned["mixed"].isna().tolist() == mixed.isna().tolist()
    assert cleaned["mixed"].dropna().tolist() == mixed.dropna().tolist()
