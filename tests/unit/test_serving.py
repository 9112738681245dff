from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest
from pydantic import ValidationError, create_model

from cycleml.data.schema import Schema
from cycleml.serve.edge import MAX_PROBLEMS, _fixed, host_name
from cycleml.serve.served import Served, prediction_label, record_model, records_type, route

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


def test_a_date_input_is_a_datetime_never_a_number() -> None:
    record = record_model(SCHEMA)
    ok: dict[str, Any] = {"tenure": 3, "contract": "Two year"}
    for sent, stored in [
        ("2024-01-02", dt.datetime(2024, 1, 2)),
        ("2024-01-02T09:30:00+02:00", dt.datetime(2024, 1, 2, 7, 30)),  # UTC, no zone
        (None, None),
    ]:
        assert record.model_validate_json(json.dumps({**ok, "signup": sent})).signup == stored  # type: ignore[attr-defined]
    for bad in (1725000000, 1.5, True, "not a date"):
        with pytest.raises(ValidationError, match="signup") as refused:
            record.model_validate_json(json.dumps({**ok, "signup": bad}))
        assert str(bad) not in str(refused.value.errors(include_input=False)), bad


def test_unknown_fields_are_one_error_naming_a_few() -> None:
    record = record_model(SCHEMA)
    sent = {"tenure": 3, "contract": "Two year", "signup": None}
    sent |= {f"extra{i}": "value" for i in range(100_000)}
    with pytest.raises(ValidationError) as refused:
        record.model_validate_json(json.dumps(sent))
    problems = refused.value.errors(include_input=False)
    assert len(problems) == 1
    assert "'extra0', 'extra1', 'extra2' and 99997 more" in problems[0]["msg"]
    assert "value" not in problems[0]["msg"].replace("values", "")


def test_records_are_bounded_in_number_and_in_problems() -> None:
    envelope = create_model("Input", records=(records_type(record_model(SCHEMA), 5), ...))
    with pytest.raises(ValidationError) as refused:
        envelope.model_validate_json(json.dumps({"records": [{}] * 5}))
    assert {p["loc"][:2] for p in refused.value.errors()} == {("records", 0)}  # the first only
    valid = {"tenure": 3, "contract": "Two year", "signup": None}
    with pytest.raises(ValidationError, match="at most 5 items"):
        envelope.model_validate_json(json.dumps({"records": [valid] * 6}))


def test_the_prediction_label_is_a_class_or_nothing() -> None:
    assert prediction_label(SCHEMA, "Yes") == "Yes"
    regression = Schema(task="regression", target="price", numeric=["size"], categorical=[])
    labels = {prediction_label(regression, random.uniform(0, 1e6)) for _ in range(1000)}
    assert labels == {""}


def test_host_names_lose_their_port() -> None:
    assert host_name(b"127.0.0.1:3000") == "127.0.0.1"
    assert host_name(b"LocalHost") == "localhost"
    assert host_name(b"[::1]:3000") == "::1"
    assert host_name(b"[::1") is None
    assert host_name(None) is None


def test_a_validation_error_names_its_first_problem_and_lists_at_most_twenty() -> None:
    detail = [{"loc": ["records", 0, f"f{i}"], "msg": "Field required"} for i in range(30)]
    body = json.dumps({"error": "30 validation errors for Input", "detail": detail}).encode()
    fixed = json.loads(_fixed(body, docs=False, advice={}))
    assert fixed["error"] == "records.0.f0: Field required (30 problems, the first 20 in detail)"
    assert fixed["detail"] == detail[:MAX_PROBLEMS]
    too_long = [{"loc": ["records"], "msg": "at most 5", "type": "too_long"}]
    body = json.dumps({"error": "1 validation error for Input", "detail": too_long}).encode()
    fixed = json.loads(_fixed(body, docs=False, advice={"too_long": "serving.max_records=5"}))
    assert fixed["error"] == "records: at most 5; serving.max_records=5"
    assert json.loads(_fixed(b'{"detail": "Not Found"}', docs=False, advice={})) == {
        "error": "Not Found"
    }
