"""The compiled scorer against the sklearn Pipeline it was compiled from.

The Pipeline is the source of truth: every test scores the same inputs both ways and
compares. Records are drawn at random from known values, unseen categories, missing
values, extreme numbers and dates in many spellings.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OrdinalEncoder

from cycleml.config import parse_params
from cycleml.data.cleaning import clean
from cycleml.data.demo import generate_churn
from cycleml.data.schema import Schema
from cycleml.model.pipeline import fit_pipeline
from cycleml.scoring.plan import NotCompilable, compile_pipeline
from cycleml.scoring.runtime import CompiledScorer, PipelineScorer
from cycleml.scoring.verify import TOLERANCE, compile_verified
from cycleml.stages.split import split
from cycleml.stages.validate import validate
from tests.conftest import small_params

pytestmark = pytest.mark.model

Trained = tuple[Pipeline, Schema, dict[str, pd.DataFrame]]


def _train(rows: int, **overrides: Any) -> Trained:
    params = parse_params(small_params(rows=rows, **overrides))
    frame, _ = clean(generate_churn(rows, seed=5), params.data)
    schema, _ = validate(
        frame, params.data, params.task, params.validate_, derived=params.featurize.derived
    )
    parts = split(frame, schema, params.split)
    pipeline, _ = fit_pipeline(schema, params.train, parts["train"], parts["valid"])
    return pipeline, schema, parts


@pytest.fixture(scope="module")
def binary() -> Trained:
    return _train(3000)


@pytest.fixture(scope="module")
def regression() -> Trained:
    return _train(
        3000,
        data__target="monthly_charges",
        data__positive_class=None,
        task="regression",
        frame__rules=[],
        evaluate__behaviour=[],
    )


@pytest.fixture(scope="module")
def multiclass() -> Trained:
    return _train(3000, data__target="contract", data__positive_class=None, frame__rules=[])


class Reference(PipelineScorer):
    """The Pipeline, quiet about float overflow: sklearn's scaler warns on 1e308 inputs, and
    its finiteness check on the sum of them (the compiled scorer computes the same
    infinities without a warning)."""

    def frame(self, frame: pd.DataFrame) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return super().frame(frame)


def _both(trained: Trained) -> tuple[CompiledScorer, PipelineScorer]:
    pipeline, schema, _ = trained
    # the plan goes through JSON, as it does when saved with a model version
    plan = json.loads(json.dumps(compile_pipeline(pipeline, schema)))
    return CompiledScorer.from_pipeline(pipeline, schema, plan), Reference(pipeline, schema)


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(np.asarray(a, "float64"), np.asarray(b, "float64"), atol=TOLERANCE)


DATES: list[Any] = [
    "2024-03-05",
    "2024-03-05T23:30:00",
    "2024-03-31T23:30:00-02:00",  # another month in UTC
    "2024-01-01T00:30:00+05:00",  # another year in UTC
    "2024-03-05 10:00:00.123456Z",
    "2024/03/05",
    "05 March 2024",
    "not a date",
    "",
    None,
    dt.datetime(2023, 12, 31, 23, 59),
    pd.Timestamp("2022-06-15"),
]
EXTREMES = [None, np.nan, 0.0, -0.0, 1e308, -1e308, 5e-324, 1e15, -3.5, 7]


def _random_records(schema: Schema, test: pd.DataFrame, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    known = test[schema.inputs].to_dict("records")
    records = []
    for i in range(n):
        record = dict(known[i % len(known)])
        record["signup_date"] = str(record["signup_date"])
        for column in schema.numeric:
            if rng.random() < 0.3:
                record[column] = EXTREMES[rng.integers(len(EXTREMES))]
        for column in schema.categorical:
            roll = rng.random()
            if roll < 0.1:
                record[column] = None
            elif roll < 0.2:
                record[column] = f"unseen-{rng.integers(5)}"
            elif roll < 0.25:
                record[column] = np.nan
        if rng.random() < 0.5:
            record["signup_date"] = DATES[rng.integers(len(DATES))]
        records.append(record)
    return records


def test_equal_on_held_out_frames(binary: Trained) -> None:
    compiled, reference = _both(binary)
    for name in ("valid", "test"):
        frame = binary[2][name]
        _assert_same(compiled.frame(frame), reference.frame(frame))


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_on_random_and_edge_records_one_at_a_time(binary: Trained, seed: int) -> None:
    compiled, reference = _both(binary)
    for record in _random_records(binary[1], binary[2]["test"], 150, seed):
        _assert_same(compiled.records([record]), reference.records([record]))


def test_equal_on_random_and_edge_records_together(binary: Trained) -> None:
    """Many records at once go column by column (Coded text), not record by record."""
    compiled, reference = _both(binary)
    records = _random_records(binary[1], binary[2]["test"], 400, seed=2)
    _assert_same(compiled.records(records), reference.records(records))
    frame = reference_frame(records, binary[1])
    _assert_same(compiled.frame(frame), reference.frame(frame))


def reference_frame(records: list[dict[str, Any]], schema: Schema) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=schema.inputs)
    for column in schema.categorical:
        frame[column] = frame[column].astype("object")
    return frame


def test_every_date_spelling(binary: Trained) -> None:
    compiled, reference = _both(binary)
    base = binary[2]["test"][binary[1].inputs].head(1).to_dict("records")[0]
    for value in DATES:
        record = {**base, "signup_date": value}
        _assert_same(compiled.records([record]), reference.records([record]))


def test_infinite_number_is_refused_naming_the_column(binary: Trained) -> None:
    compiled, reference = _both(binary)
    record = {**binary[2]["test"][binary[1].inputs].head(1).to_dict("records")[0]}
    record["tenure_months"] = float("inf")
    with pytest.raises(ValueError, match="infinity"):
        reference.records([record])
    with pytest.raises(ValueError, match="'tenure_months'"):
        compiled.records([record])
    with pytest.raises(ValueError, match="'tenure_months'"):
        compiled.records([record] * 100)


def test_regression_and_multiclass(regression: Trained, multiclass: Trained) -> None:
    for trained in (regression, multiclass):
        compiled, reference = _both(trained)
        frame = trained[2]["test"]
        _assert_same(compiled.frame(frame), reference.frame(frame))
        records = _random_records(trained[1], frame, 80, seed=3)
        for record in records[:40]:
            _assert_same(compiled.records([record]), reference.records([record]))
        _assert_same(compiled.records(records), reference.records(records))


def test_empty_input(binary: Trained) -> None:
    compiled, reference = _both(binary)
    empty = binary[2]["test"].head(0)
    assert compiled.frame(empty).shape == (0, 2)
    assert compiled.records([]).shape == (0, 2)


def test_verified_compilation_on_held_out_data(binary: Trained) -> None:
    pipeline, schema, parts = binary
    result = compile_verified(pipeline, schema, [parts["valid"], parts["test"]])
    assert result.kind == "compiled", result.reason
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOLERANCE
    assert result.rows == len(parts["valid"]) + len(parts["test"])
    assert result.tags()["cycleml.scorer"] == "compiled"


def _with_step(trained: Trained, part: str, step: int, replacement: Any) -> Pipeline:
    pipeline, schema, parts = trained
    pre: ColumnTransformer = pipeline.named_steps["preprocess"]
    name, transformer, columns = next(t for t in pre.transformers_ if t[0] == part)
    fitted = transformer.steps[step][1].__class__
    assert fitted is not replacement.__class__
    changed = Pipeline([*transformer.steps])
    changed.steps[step] = (changed.steps[step][0], replacement)
    x = pipeline.named_steps["derive"].transform(schema.feature_frame(parts["train"]))
    changed.fit(x[columns])
    new_pre = ColumnTransformer(
        [(n, changed if n == part else t, c) for n, t, c in pre.transformers], remainder="drop"
    )
    new_pre.fit(x)
    return Pipeline([*pipeline.steps[:1], ("preprocess", new_pre), pipeline.steps[2]])


@pytest.mark.parametrize(
    ("part", "step", "replacement", "named"),
    [
        ("numeric", 1, MinMaxScaler(), "MinMaxScaler"),
        ("categorical", 1, OrdinalEncoder(), "OneHotEncoder"),
    ],
)
def test_unsupported_step_falls_back_to_the_pipeline(
    binary: Trained, part: str, step: int, replacement: Any, named: str
) -> None:
    pipeline, schema, parts = binary
    changed = _with_step(binary, part, step, replacement)
    with pytest.raises(NotCompilable, match=named):
        compile_pipeline(changed, schema)
    result = compile_verified(changed, schema, [parts["valid"]])
    assert result.kind == "sklearn" and result.plan is None
    assert named in result.reason
    assert result.tags()["cycleml.scorer.reason"] == result.reason


def test_a_plan_that_disagrees_is_not_used(
    binary: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verification, not trust: a compiler bug (here a wrong mean) means the Pipeline scores."""
    import cycleml.scoring.verify as verify_module

    pipeline, schema, parts = binary
    real = verify_module.compile_pipeline

    def skewed(p: Pipeline, s: Schema) -> dict[str, Any]:
        plan = real(p, s)
        plan["blocks"][0]["mean"][1] += 5.0
        return plan

    monkeypatch.setattr(verify_module, "compile_pipeline", skewed)
    result = compile_verified(pipeline, schema, [parts["valid"], parts["test"]])
    assert result.kind == "sklearn"
    assert "differs from the Pipeline" in result.reason
    assert result.max_abs_diff is not None and result.max_abs_diff > TOLERANCE


def _messy_table(test: pd.DataFrame, schema: Schema) -> pa.Table:
    """The test rows as a file might hold them: padded text, missing markers, numbers as
    text (some unparsable), one text column dictionary-encoded and one large_string."""
    frame = test[schema.inputs].reset_index(drop=True).copy()
    rng = np.random.default_rng(4)
    pick = rng.random(len(frame))
    frame["contract"] = np.where(pick < 0.2, "  " + frame["contract"] + " ", frame["contract"])
    frame["gender"] = np.where(pick > 0.9, "?", frame["gender"])
    charges = frame["total_charges"].astype("object")
    frame["total_charges"] = np.where(pick < 0.1, " ", charges.astype(str))
    frame["tenure_months"] = frame["tenure_months"].astype(str)
    frame.loc[pick > 0.95, "tenure_months"] = "twelve"  # unparsable: missing, then imputed
    frame["signup_date"] = frame["signup_date"].astype(str)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    dictionary = table.column("payment_method").dictionary_encode()
    table = table.set_column(
        table.schema.get_field_index("payment_method"), "payment_method", dictionary
    )
    large = table.column("partner").cast(pa.large_string())
    return table.set_column(table.schema.get_field_index("partner"), "partner", large)


def test_arrow_batch_path_equals_the_pipeline_on_messy_files(binary: Trained) -> None:
    """Parquet chunks reach the compiled scorer as Arrow columns (``arrow_inputs``); the
    Pipeline gets the same chunk through pandas and ``prepare_inputs``."""
    from cycleml.scoring.batch import score_table
    from cycleml.scoring.loaded import LoadedModel

    pipeline, schema, parts = binary
    compiled, _ = _both(binary)
    common = {"name": "m", "version": "1", "pipeline": pipeline, "schema": schema}
    fast = LoadedModel(**common, scorer=compiled)
    slow = LoadedModel(**common)
    table = _messy_table(parts["test"], schema)
    got = score_table(table, fast)
    want = score_table(table.to_pandas(), slow)
    assert got.column_names == want.column_names
    for name in ("probability_No", "probability_Yes"):
        _assert_same(got.column(name).to_numpy(), want.column(name).to_numpy())
    assert got.column("prediction").to_pylist() == want.column("prediction").to_pylist()
