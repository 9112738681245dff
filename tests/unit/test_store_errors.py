"""Store URIs in messages: secrets masked, and a store that does not answer told apart
from a model or alias that does not exist."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from cycleml.demo.harness import free_port
from cycleml.model import registry
from cycleml.model.tracking import StoreError, redact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://alice:s3cret@db:5432/mlflow", "postgresql://alice:***@db:5432/mlflow"),
        ("http://u:p@ss/w@host:5000/api", "http://u:***@host:5000/api"),  # unescaped @ and /
        (
            "postgresql+psycopg://db/mlflow?sslmode=require&password=s3cret",
            "postgresql+psycopg://db/mlflow?sslmode=require&password=***",
        ),
        ("https://h/x?token=abc&sslpassword=def#f", "https://h/x?token=***&sslpassword=***#f"),
        (
            "API request to http://u:s3cret@h:1/api/2.0 failed (url: /api?name=m&alias=champion)",
            "API request to http://u:***@h:1/api/2.0 failed (url: /api?name=m&alias=champion)",
        ),
        ("sqlite:////srv/project/mlflow.db", "sqlite:////srv/project/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_redact_masks_passwords_in_the_userinfo_and_the_query(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_an_unreachable_store_is_not_reported_as_a_missing_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    client = MlflowClient(uri, registry_uri=uri)
    for lookup in (
        lambda: registry.resolve(client, "cycleml-churn", "@champion"),
        lambda: registry.resolve(client, "cycleml-churn", "3"),
        lambda: registry.champion_version(client, "cycleml-churn"),
    ):
        with pytest.raises(StoreError) as caught:
            lookup()
        message = str(caught.value)
        assert "the MLflow store http://alice:***@127.0.0.1" in message
        assert "could not look up cycleml-churn" in message and "Connection refused" in message
        assert "s3cret" not in message and "has no version" not in message
        assert "MLFLOW_TRACKING_URI" in message
