"""Loading a registered version never runs code from its artifact (issue 21).

A real MLflow store holds the champion ``train`` logged (v1) beside hostile versions of the
same model: a pickle whose ``__reduce__`` creates a marker file (v2), a skops file holding
a type whose construction creates a marker, trusted by its own MLmodel file (v3), and a
clean skops Pipeline built for other columns (v4), which loads but cannot score. Each
hostile payload is shown to be live (MLflow's own loader runs it), so the tests can fail.
All four are approved, so what refuses them is loading, never approval.

The registry's word is final (issue 14): an alias moved to a version that is not approved,
as the MLflow UI allows, is not served, nor scored by ``cycleml predict`` through it.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.base import BaseEstimator

from cycleml.config import Params
from cycleml.demo.harness import free_port
from cycleml.files import read_json
from cycleml.model.loading import TRUSTED_TYPES, UnsafeModelError
from cycleml.model.registry import APPROVED, PENDING, REJECTED, NotApproved, set_status
from cycleml.model.tracking import configure
from cycleml.names import SCHEMA_ARTIFACT
from cycleml.scoring.loaded import load_model
from cycleml.serve.follower import AliasFollower
from cycleml.serve.served import load, score
from tests.conftest import REPO, Project, module_project, small_params

pytestmark = pytest.mark.integration
CYCLEML = Path(sys.executable).parent / "cycleml"
BENTOML = Path(sys.executable).parent / "bentoml"


class Payload:
    """A hostile pickle: unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class Tripwire(BaseEstimator):  # type: ignore[misc]
    """A type skops constructs through ``__setstate__``, which creates ``marker``."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        Path(state["marker"]).touch()


@dataclass
class Store:
    project: Project
    params: Params
    client: MlflowClient
    name: str
    pickle_marker: Path
    skops_marker: Path


def _register(store_name: str, schema: dict[str, Any], model: Any, **kwargs: Any) -> str:
    """Log ``model`` in a run of its own (with the schema load_model reads) and register
    it under ``store_name``; the new version's number."""
    import mlflow
    import mlflow.sklearn

    with mlflow.start_run(run_name="hostile"):
        mlflow.log_dict(schema, SCHEMA_ARTIFACT)
        info = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=["scikit-learn"], **kwargs
        )
    return str(mlflow.register_model(info.model_uri, store_name).version)


def _wrong_columns_pipeline() -> Any:
    """A clean skops-safe Pipeline fitted on columns no request has: it cannot score."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    return Pipeline([("model", LogisticRegression())]).fit(x, [0, 1, 0, 1])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    import mlflow

    with module_project(tmp_path_factory, "hostile") as project:
        root = project.root
        params = project.write_params(small_params())
        project.run_stages(params, "ingest", "validate", "split", "train")
        client = configure(params.tracking, project.paths)
        name = params.register_.model_name
        trained = read_json(project.paths.train_run)
        mlflow.register_model(trained["model_uri"], name)
        client.set_registered_model_alias(name, "champion", "1")
        schema = read_json(project.paths.schema)

        pickle_marker, skops_marker = root / "pickle-ran", root / "skops-ran"
        assert _register(name, schema, Payload(pickle_marker), serialization_format="pickle") == "2"
        tripwire = f"{Tripwire.__module__}.Tripwire"
        version = _register(
            name,
            schema,
            Tripwire(str(skops_marker)),
            serialization_format="skops",
            skops_trusted_types=[tripwire],  # written into the artifact's own MLmodel file
        )
        assert version == "3"
        # MLflow re-loads a skops file as it saves it, trusting the listed types: the
        # tripwire is live, and fired once here
        assert skops_marker.exists()
        skops_marker.unlink()
        assert (
            _register(name, schema, _wrong_columns_pipeline(), serialization_format="skops") == "4"
        )
        assert not pickle_marker.exists()
        for number in ("1", "2", "3", "4"):
            set_status(client, name, number, APPROVED, "a safety test's fixture", by="test")
        yield Store(project, params, client, name, pickle_marker, skops_marker)


def test_a_pickle_version_is_refused_unopened(store: Store) -> None:
    with pytest.raises(UnsafeModelError) as refused:
        load_model(store.client, store.name, "2")
    message = str(refused.value)
    assert f"{store.name} version 2" in message
    assert "'pickle'" in message and "serialization_format" in message
    assert "cycleml train" in message and "skops" in message
    assert "\n" not in message
    assert not store.pickle_marker.exists()


def test_the_pickle_payload_is_live(store: Store) -> None:
    """What the refusal prevents: MLflow's own loader runs the payload."""
    import mlflow.sklearn

    mlflow.sklearn.load_model(f"models:/{store.name}/2")
    assert store.pickle_marker.exists()
    store.pickle_marker.unlink()


def test_types_trusted_by_the_artifact_are_not_trusted(store: Store) -> None:
    tripwire = f"{Tripwire.__module__}.Tripwire"
    assert tripwire not in TRUSTED_TYPES
    with pytest.raises(UnsafeModelError, match=f"version 3 holds types .*{tripwire}"):
        load_model(store.client, store.name, "3")
    assert not store.skops_marker.exists()

    import mlflow.sklearn  # MLflow trusts what the MLmodel file lists: the tripwire fires

    mlflow.sklearn.load_model(f"models:/{store.name}/3")
    assert store.skops_marker.exists()
    store.skops_marker.unlink()


def test_a_trained_version_loads_with_our_trusted_types_and_scores(store: Store) -> None:
    model = load(store.client, store.name, "@champion")
    assert model.version == "1" and len(model.example) == 5
    answers = score(model, model.example)
    assert all(0 <= a["probabilities"]["Yes"] <= 1 for a in answers)


def test_the_follower_keeps_serving_when_the_alias_moves_to_a_bad_version(
    store: Store,
) -> None:
    client, name = store.client, store.name
    follower = AliasFollower(client, name, "champion")
    assert follower.served.version == "1"
    try:
        for bad, why in (("2", "'pickle'"), ("3", "does not trust"), ("4", "feature names")):
            client.set_registered_model_alias(name, "champion", bad)
            follower.reload()
            assert follower.served.version == "1"
            status = follower.registry
            assert status["reachable"] and status["serving"] == "1"
            assert status["refused"]["@champion"]["version"] == bad
            assert why in status["refused"]["@champion"]["error"]
            answer = score(follower.served, follower.served.example[:1])[0]
            assert answer["model_version"] == "1"
        assert not store.pickle_marker.exists() and not store.skops_marker.exists()

        # a good version still goes through: the refusals above were about the versions
        client.set_registered_model_alias(name, "champion", "1")
        follower.reload()
        assert follower.registry["refused"] == {}
        good = _copy_of_champion(store, APPROVED)
        client.set_registered_model_alias(name, "champion", good)
        follower.reload()
        assert follower.served.version == good
    finally:
        client.set_registered_model_alias(name, "champion", "1")


def test_cli_predict_with_a_pickle_version_fails_in_one_paragraph(store: Store) -> None:
    rows = store.project.root / "rows.csv"
    pd.read_parquet(store.project.paths.split("test")).head(5).to_csv(rows, index=False)
    out = store.project.root / "scored.csv"
    done = subprocess.run(
        [str(CYCLEML), "predict", str(rows), str(out), "--version", "2"],
        cwd=store.project.root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "version 2" in done.stderr and "'pickle'" in done.stderr
    assert "cycleml train" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() and not store.pickle_marker.exists()


def _copy_of_champion(store: Store, status: str | None) -> str:
    """A new version of v1's model (it loads and scores) with approval ``status``; None:
    no status tag, as a version registered in the MLflow UI has."""
    client = store.client
    copy = str(
        client.create_model_version(
            store.name, client.get_model_version(store.name, "1").source
        ).version
    )
    if status is not None:
        set_status(client, store.name, copy, status, "a test decided", by="test")
    return copy


def test_the_follower_serves_only_approved_versions_whatever_the_alias_says(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    client, name = store.client, store.name
    rejected, unreviewed = _copy_of_champion(store, REJECTED), _copy_of_champion(store, None)
    follower = AliasFollower(client, name, "champion")
    try:
        for version, status, fix in (
            (rejected, "rejected", "`cycleml registry rollback`"),
            (unreviewed, "pending", f"`cycleml registry approve {unreviewed} --reason"),
        ):
            client.set_registered_model_alias(name, "champion", version)  # as the UI does
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="cycleml.serve.follower"):
                follower.reload()
                follower.reload()
            assert follower.served.version == "1"
            refused = follower.registry["refused"]["@champion"]
            assert refused["version"] == version
            assert f"status (cycleml.status) is '{status}', not approved" in refused["error"]
            assert fix in refused["error"]
            said = [r.getMessage() for r in caplog.records if f"refused v{version}" in r.message]
            assert len(said) == 1, said  # once, however often the alias is checked
            assert "still serving v1" in said[0] and "not approved" in said[0]

        # once approved, the same version goes through: what refused it was the approval
        set_status(client, name, unreviewed, APPROVED, "reviewed", by="test")
        follower.reload()
        assert follower.served.version == unreviewed
        assert follower.registry["refused"] == {}
    finally:
        client.set_registered_model_alias(name, "champion", "1")


def test_an_unapproved_champion_at_start_up_is_refused(store: Store) -> None:
    client, name = store.client, store.name
    rejected = _copy_of_champion(store, REJECTED)
    client.set_registered_model_alias(name, "champion", rejected)
    try:
        with pytest.raises(NotApproved, match=f"@champion names v{rejected}, whose status"):
            AliasFollower(client, name, "champion")
    finally:
        client.set_registered_model_alias(name, "champion", "1")


def test_a_shadow_may_be_pending_a_canary_may_not(store: Store) -> None:
    client, name = store.client, store.name
    pending, rejected = _copy_of_champion(store, PENDING), _copy_of_champion(store, REJECTED)
    client.set_registered_model_alias(name, "challenger", pending)
    try:
        shadow = AliasFollower(client, name, "champion", challenger="challenger", shadow=True)
        assert shadow.challenger is not None and shadow.challenger.version == pending
        canary = AliasFollower(client, name, "champion", challenger="challenger")
        assert canary.challenger is None
        assert canary.registry["refused"]["@challenger"]["version"] == pending

        client.set_registered_model_alias(name, "challenger", rejected)
        shadow.reload_challenger()  # a rejected version is not even shadowed
        assert shadow.challenger is None
        assert "'rejected'" in shadow.registry["refused"]["@challenger"]["error"]
    finally:
        client.delete_registered_model_alias(name, "challenger")


def test_the_cli_and_the_service_refuse_an_unapproved_champion(store: Store) -> None:
    """`registry list` flags it, `predict` refuses it through the alias (and scores it,
    warned, by number), and the service does not start on it."""
    client, name, root = store.client, store.name, store.project.root
    rejected = _copy_of_champion(store, REJECTED)
    rows = root / "approval-rows.csv"
    pd.read_parquet(store.project.paths.split("test")).head(5).to_csv(rows, index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(COLUMNS="300", CYCLEML_ROOT=str(root), CYCLEML_PARAMS=str(root / "params.yaml"))

    def run(*args: str, cwd: Path = root) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)

    listed = run(str(CYCLEML), "registry", "list")
    assert listed.returncode == 0, listed.stderr
    assert "not approved: will not be served" not in listed.stdout  # v1 is approved

    client.set_registered_model_alias(name, "champion", rejected)
    try:
        listed = run(str(CYCLEML), "registry", "list")
        assert listed.returncode == 0, listed.stderr
        assert "@champion (not approved: will not be served)" in listed.stdout

        out = root / "approval-scored.csv"
        refused = run(str(CYCLEML), "predict", str(rows), str(out))
        assert refused.returncode == 1, refused.stdout
        said = " ".join(refused.stderr.split())
        assert f"@champion names v{rejected}" in said and "not approved" in said
        assert "Traceback" not in refused.stderr and not out.exists()

        named = run(str(CYCLEML), "predict", str(rows), str(out), "--version", rejected)
        assert named.returncode == 0, named.stderr
        assert f"v{rejected} is rejected, not approved" in " ".join(named.stderr.split())
        assert pd.read_csv(out)["model_version"].tolist() == [int(rejected)] * 5

        port = str(free_port())
        served = run(
            *(str(BENTOML), "serve", "service:CycleML", "--host", "127.0.0.1", "--port", port),
            cwd=REPO / "serving",
        )
        assert served.returncode == 1, served.stderr[-2000:]
        said = served.stderr.strip().splitlines()
        assert said[-1].startswith(f"cycleml service: will not serve {name}: @champion names")
        assert "Traceback" not in served.stderr
    finally:
        client.set_registered_model_alias(name, "champion", "1")
