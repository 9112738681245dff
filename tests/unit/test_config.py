from __future__ import annotations

from pathlib import Path

import pytest

from cycleml.config import ConfigError, apply_overrides, load_params, params_hash, parse_params
from tests.conftest import REPO, repo_params

pytestmark = pytest.mark.unit


def test_repository_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.data.source.kind == "demo"
    assert params.split.train + params.split.valid + params.split.test == pytest.approx(1)
    assert params.register_.primary_metric["classification"] == "roc_auc"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: r["train"]["xgboost"].update(n_estimatrs=10),
            "train.xgboost.n_estimatrs: unknown key",
        ),
        (
            lambda r: r["data"]["source"].update(rows=0),
            "data.source.rows: Input should be greater than 0",
        ),
        (lambda r: r["split"].update(train=0.9), "must add up to 1"),
        (lambda r: r.update(task="clustering"), "task:"),
        (lambda r: r["data"].pop("target"), "data.target: required key is missing"),
        (lambda r: r.update(registr={}), "registr: unknown key"),
        (
            lambda r: r["register"]["criteria"]["classification"].update(auc={"min": 1}),
            "criteria.classification.auc",
        ),
        (lambda r: r["data"].update(source={"kind": "ftp"}), "data.source"),
        (
            lambda r: r["split"].update(strategy="time") or r["data"].update(time_column=None),
            "data.time_column",
        ),
    ],
)
def test_bad_params_name_the_key(mutate: object, expected: str) -> None:
    raw = repo_params()
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert expected in str(err.value)


def test_validate_block_errors_use_the_yaml_name() -> None:
    raw = repo_params()
    raw["validate"]["min_rows"] = -1
    with pytest.raises(ConfigError, match=r"validate\.min_rows"):
        parse_params(raw)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(bad)


def test_sources_of_every_kind_parse() -> None:
    raw = repo_params()
    raw["data"]["source"] = {"kind": "file", "path": "s3://bucket/churn.csv", "sep": ";"}
    assert parse_params(raw).data.source.kind == "file"
    raw["data"]["source"] = {"kind": "sql", "url": "sqlite:///x.db", "query": "select 1"}
    assert parse_params(raw).data.source.kind == "sql"


def test_params_hash_changes_with_any_knob() -> None:
    raw = repo_params()
    before = params_hash(parse_params(raw))
    assert params_hash(parse_params(repo_params())) == before
    raw["train"]["xgboost"]["max_depth"] = 9
    assert params_hash(parse_params(raw)) != before


def test_overrides_read_values_as_yaml_and_create_blocks() -> None:
    raw = {"tune": {"n_trials": 20}}
    out = apply_overrides(raw, ["tune.n_trials=2", "evaluate.threshold=auto", "a.b=[1, x]"])
    assert out is raw
    assert raw["tune"]["n_trials"] == 2
    assert raw["evaluate"] == {"threshold": "auto"}
    assert raw["a"]["b"] == [1, "x"]


def test_overrides_take_a_mapping_of_typed_values() -> None:
    raw: dict[str, object] = {}
    apply_overrides(raw, {"split.seed": 7, "data.source.rows": 300})
    assert raw == {"split": {"seed": 7}, "data": {"source": {"rows": 300}}}


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ("tune.n_trials", "use KEY=VALUE"),
        ("=3", "use KEY=VALUE"),
        ("a=[1", "not valid YAML"),
        ("tune.n_trials.x=1", "tune.n_trials is a value"),
    ],
)
def test_a_bad_override_is_named(item: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        apply_overrides({"tune": {"n_trials": 20}}, [item])


def test_params_survive_dvcs_rewrite(tmp_path: Path) -> None:
    """`dvc exp run -S` rewrites params.yaml (YAML 1.2, quotes dropped): "off" and "Yes"
    must still read as text, not as booleans."""
    from dvc.utils.serialize import modify_yaml

    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with modify_yaml(path) as raw:  # what `dvc exp run -S train.xgboost.n_estimators=600` does
        raw["train"]["xgboost"]["n_estimators"] = 600
    text = path.read_text(encoding="utf-8")
    assert "mode: off" in text and "positive_class: Yes" in text  # DVC dropped the quotes
    params = load_params(path)
    assert params.serving.challenger.mode == "off"
    assert params.data.positive_class == "Yes"
    assert params.train.xgboost.n_estimators == 600
    assert apply_overrides({}, ["a.b=off", "a.c=true"]) == {"a": {"b": "off", "c": True}}
