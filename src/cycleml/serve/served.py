"""What the HTTP service needs, testable without a server: load a registered version,
build the request schema from the model's own schema, score records.

``serving/service.py`` is a thin BentoML shell around these functions. It scores through
the version's compiled scorer (``cycleml.scoring.runtime``), which registration verified against
the very Pipeline training saved, or through that Pipeline when there is none.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cycleml.data.schema import Schema
from cycleml.model.decision import decide
from cycleml.names import TAG_GIT_COMMIT
from cycleml.scoring.loaded import LoadedModel

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "Served",
    "load",
    "prediction_label",
    "record_model",
    "records_type",
    "resolve_version",
    "route",
    "score",
]
NAMED_UNKNOWN = 3
"""An error names at most this many unknown fields (a record may carry a million)."""


@dataclass(frozen=True)
class Served(LoadedModel):
    """A registered version, loaded and ready to score, as the service describes it."""

    def metadata(self) -> dict[str, Any]:
        """Name, version, alias, training run, data hashes, git commit and input schema."""
        lineage = {k: v for k, v in self.tags.items() if k.startswith("cycleml.data.")}
        return {
            "model_name": self.name,
            "model_version": self.version,
            "alias": self.alias,
            "training_run": self.run_id,
            "git_commit": self.tags.get(TAG_GIT_COMMIT),
            "data": lineage,
            "decision_threshold": self.threshold if self.schema.is_binary else None,
            "task": self.schema.task,
            "classes": self.schema.classes,
            "scorer": {
                "kind": self.scorer.kind,
                "reason": self.scorer.reason or None,
            },
            "inputs": {
                **{c: "number" for c in self.schema.numeric},
                **{c: "string" for c in self.schema.categorical},
                **{c: "datetime" for c in self.schema.inputs if c not in self.schema.features},
            },
        }


def load(client: MlflowClient, name: str, ref: str = "@champion") -> Served:
    """Load version ``ref`` (number or alias) of ``name``: the same loading as batch scoring."""
    from cycleml.scoring.loaded import load_model

    return Served(**vars(load_model(client, name, ref)))


def route(
    champion: Served,
    challenger: Served | None,
    mode: str,
    canary_share: float,
    draw: float,
) -> tuple[Served, Served | None]:
    """Which version answers a request, and which (if any) shadows it.

    ``draw`` is a uniform random number in [0, 1): in canary mode the challenger answers
    when ``draw < canary_share``; in shadow mode it never answers but scores every request.
    """
    if challenger is None or mode == "off":
        return champion, None
    if mode == "canary":
        return (challenger if draw < canary_share else champion), None
    return champion, challenger


def resolve_version(client: MlflowClient, name: str, ref: str) -> str:
    """The version number ``ref`` points at now (cheap: no model is loaded)."""
    from cycleml.model.registry import resolve

    return str(resolve(client, name, ref).version)


def _no_number(value: Any) -> Any:
    """A number is no date: pydantic would read it as Unix seconds, the log would then
    hold numbers and strings in one column, and monitoring would fail on it."""
    if isinstance(value, int | float):  # bool included
        raise PydanticCustomError(
            "date_type", "send a date as an ISO 8601 string such as 2024-01-31 (not a number)"
        )
    return value


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    """One kind of datetime per column: a time zone is converted to UTC and dropped."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


_DATE = Annotated[dt.datetime | None, BeforeValidator(_no_number), AfterValidator(_naive_utc)]


def record_model(schema: Schema) -> type[BaseModel]:
    """The request record, generated from the model's schema.

    Every model input is required (null allowed: the Pipeline imputes it); id columns are
    optional and echoed back; any other field is refused, so a typo in a column name is a
    400 naming the field instead of a silently imputed value. Unknown fields are refused
    in one error before the fields are validated: pydantic's own check builds one error
    per unknown key, and a record with a million keys made a 155 MB answer. A date input
    is a datetime (or null), so the prediction log holds one type per column.
    """
    fields: dict[str, Any] = {}
    finite = Annotated[float, Field(allow_inf_nan=False)]  # JSON's NaN/Infinity are refused
    for col in schema.numeric:
        fields[col] = (finite | None, ...)
    for col in schema.categorical:
        fields[col] = (str | None, ...)
    for col in schema.inputs:
        if col not in fields:  # sources of derived features, e.g. a date
            fields[col] = (_DATE, ...)
    for col in schema.id_columns:
        fields.setdefault(col, (str | int | None, None))
    model: type[BaseModel] = create_model("Record", __base__=_KnownFieldsOnly, **fields)
    return model


class _KnownFieldsOnly(BaseModel):
    """A record of these fields and no others (the base of ``record_model``)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _refuse_unknown(data, cls.model_fields)
        return data


def records_type(record: type[BaseModel], max_records: int) -> Any:
    """The ``records`` list of a request: at most ``max_records``, validated up to the
    first invalid record, so 10,000 empty records are one record's errors, not 180,000
    (pydantic's own limits: a validator in Python would first copy the whole body)."""
    return Annotated[list[record], Field(max_length=max_records, fail_fast=True)]  # type: ignore[valid-type]


def _refuse_unknown(data: dict[str, Any], allowed: Collection[str]) -> None:
    """One error naming a few unknown fields and counting the rest; cheap for any size
    (a count over the allowed names, then a scan that stops at the first few unknown)."""
    unknown = len(data) - sum(1 for name in allowed if name in data)
    if not unknown:
        return
    names = itertools.islice((k for k in data if k not in allowed), NAMED_UNKNOWN)
    named = ", ".join(repr(_short(str(name))) for name in names)
    more = f" and {unknown - NAMED_UNKNOWN} more" if unknown > NAMED_UNKNOWN else ""
    raise PydanticCustomError(
        "unknown_fields",
        "unknown field(s) {named}{more}: send only the model's inputs and id columns "
        "(GET /metadata lists them)",
        {"named": named, "more": more},
    )


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def prediction_label(schema: Schema, prediction: Any) -> str:
    """The ``prediction`` label of the predictions counter: the class for classification
    (a bounded set); empty for regression, where every value would be a new series."""
    return str(prediction) if schema.task == "classification" else ""


def score(served: Served, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One answer per record: prediction, class probabilities and decision (classification),
    the model version and a request id."""
    scores = served.scorer.records(records)
    schema = served.schema
    chosen = decide(scores, served.threshold)
    out: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        answer: dict[str, Any] = {"request_id": uuid.uuid4().hex}
        answer.update({c: record[c] for c in schema.id_columns if record.get(c) is not None})
        if schema.task == "regression":
            answer["prediction"] = float(scores[i])
        else:
            probabilities = {c: float(p) for c, p in zip(schema.classes, scores[i], strict=True)}
            answer["probabilities"] = probabilities
            answer["prediction"] = schema.classes[int(chosen[i])]
            if schema.is_binary:
                answer["decision"] = bool(chosen[i])
        answer["model_version"] = served.version
        out.append(answer)
    return out
