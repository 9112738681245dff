from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from cycleml.data.schema import Schema
from cycleml.serve.served import Served, record_model, route

pytestmark = pytest.mark.unit
SCHEMA = Schema(
    task="classification",
    target="churn",
    classes=["No", "Yes"],
    numeric=["tenure"],
    categorical=["contract"],
    id_columns=["customer_id"],
    derived=[{"name": "m", "kind": "date_part", "columns": ["signup"], "part": "month"}],
)


def served(version: str) -> Served:
    return Served(pipeline=None, schema=SCHEMA, name="m", version=version, run_id="r")  # type: ignore[arg-type]


def test_record_model_requires_inputs_refuses_extras_and_wrong_types() -> None:
    record = record_model(SCHEMA)
    ok: dict[str, Any] = {"tenure": 3, "contract": "Two year", "signup": "2024-01-02"}
    assert record(**ok).model_dump()["tenure"] == 3.0
    assert record(**ok, customer_id="C1").model_dump()["customer_id"] == "C1"
    for bad, field in [
        ({k: v for k, v in ok.items() if k != "contract"}, "contract"),
        ({**ok, "tenure": "long"}, "tenure"),
        ({**ok, "contract": 7}, "contract"),
        ({**ok, "colour": "red"}, "colour"),
    ]:
        with pytest.raises(ValidationError, match=field):
            record(**bad)
    assert record(**{**ok, "tenure": None}).model_dump()["tenure"] is None  # imputed later


def test_route_off_shadow_and_canary() -> None:
    champion, challenger = served("1"), served("2")
    assert route(champion, challenger, "off", 0.5, 0.1) == (champion, None)
    assert route(champion, None, "canary", 1.0, 0.0) == (champion, None)
    assert route(champion, challenger, "shadow", 0.5, 0.1) == (champion, challenger)
    rng = random.Random(0)
    answered = [
        route(champion, challenger, "canary", 0.2, rng.random())[0].version for _ in range(5000)
    ]
    assert answered.count("2") / 5000 == pytest.approx(0.2, abs=0.02)
