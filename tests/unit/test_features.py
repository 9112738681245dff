from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cycleml.config import (
    ConfigError,
    DataParams,
    DemoSource,
    DerivedFeature,
    ValidateParams,
    parse_params,
)
from cycleml.model.features import DerivedFeatures
from cycleml.stages.validate import validate
from tests.conftest import repo_params

pytestmark = pytest.mark.unit

FRAME = pd.DataFrame(
    {
        "a": [10.0, 4.0, np.nan],
        "b": [2.0, 0.0, 1.0],
        "d": pd.to_datetime(["2024-01-15", "2024-06-01", None]),
        "c1": ["x", "y", None],
        "c2": ["p", "q", "r"],
    }
)


def specs(*items: dict[str, object]) -> list[dict[str, object]]:
    return [DerivedFeature.model_validate(i).model_dump(exclude_none=True) for i in items]


def test_each_kind() -> None:
    out = DerivedFeatures(
        specs(
            {"name": "r", "kind": "ratio", "columns": ["a", "b"]},
            {"name": "diff", "kind": "difference", "columns": ["a", "b"]},
            {"name": "prod", "kind": "product", "columns": ["a", "b"]},
            {"name": "m", "kind": "date_part", "columns": ["d"], "part": "month"},
            {"name": "band", "kind": "bin", "columns": ["a"], "edges": [5, 8]},
            {"name": "cx", "kind": "interaction", "columns": ["c1", "c2"]},
        )
    ).fit_transform(FRAME)
    assert out["r"].tolist()[0] == 5.0 and np.isnan(out["r"].iloc[1])  # x / 0 -> missing
    assert out["diff"].tolist()[:2] == [8.0, 4.0]
    assert out["prod"].tolist()[:2] == [20.0, 0.0]
    assert out["m"].tolist()[:2] == [1.0, 6.0] and np.isnan(out["m"].iloc[2])
    assert out["band"].tolist()[:2] == [2.0, 0.0] and np.isnan(out["band"].iloc[2])
    assert out["cx"].tolist() == ["x & p", "y & q", None]
    assert list(FRAME.columns) == ["a", "b", "d", "c1", "c2"]  # input untouched


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "r", "kind": "ratio", "columns": ["a"]}, "exactly 2 columns"),
        ({"name": "m", "kind": "date_part", "columns": ["d"]}, "needs part"),
        ({"name": "b", "kind": "bin", "columns": ["a"], "edges": [5, 1]}, "increasing"),
        ({"name": "x", "kind": "log", "columns": ["a"]}, "featurize.derived.0.kind"),
    ],
)
def test_bad_specs_are_named(spec: dict[str, object], message: str) -> None:
    raw = repo_params()
    raw["featurize"]["derived"] = [spec]
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_validate_skips_absent_sources_and_refuses_pii_sources() -> None:
    rng = np.random.default_rng(0)
    n = 300
    data = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "email": [f"u{i}@x.org" for i in range(n)],
            "y": rng.choice(["a", "b"], n),
        }
    )
    derived = [
        DerivedFeature(name="ok", kind="product", columns=["x", "x"]),
        DerivedFeature(name="absent", kind="ratio", columns=["x", "nope"]),
        DerivedFeature(name="leaky_pii", kind="interaction", columns=["email", "x"]),
    ]
    params = DataParams(source=DemoSource(kind="demo"), target="y")
    schema, report = validate(data, params, "auto", ValidateParams(), derived=derived)
    assert [d["name"] for d in schema.derived] == ["ok"]
    assert schema.model_numeric == ["x", "ok"]
    notes = {f.column: f.detail for f in report.findings}
    assert "absent" in notes["absent"] and "refused" in notes["leaky_pii"]

    from_target = [DerivedFeature(name="x_y", kind="interaction", columns=["x", "y"])]
    schema, report = validate(data, params, "auto", ValidateParams(), derived=from_target)
    assert schema.derived == []
    assert any("built from the target 'y'" in f.detail for f in report.findings)
    leaky = data.assign(refund=(data["y"] == "b").astype(float) * 10)
    ratio = [DerivedFeature(name="refund_x", kind="product", columns=["refund", "refund"])]
    schema, report = validate(leaky, params, "auto", ValidateParams(), derived=ratio)
    assert schema.derived == []
    assert any(f.column == "refund_x" and f.severity == "dropped" for f in report.findings)
