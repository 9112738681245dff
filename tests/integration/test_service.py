"""The BentoML service, started for real with `bentoml serve` on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cycleml.demo.harness import Service
from tests.conftest import REPO, Project, module_project, small_params

pytestmark = pytest.mark.integration
TOKEN = "test-admin-token"


@dataclass
class Server:
    url: str
    project: Project
    process: subprocess.Popen[bytes]

    def call(
        self,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            self.url + path,
            data=data,
            headers={"content-type": "application/json", **(headers or {})},
            method="POST" if data is not None or path.startswith("/admin") else "GET",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            text = err.read()
            try:
                return err.code, json.loads(text)
            except ValueError:
                return err.code, text.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with module_project(tmp_path_factory, "served") as project:
        root = project.root
        raw = small_params()
        raw["serving"].update(reload_seconds=1)
        raw["serving"]["challenger"]["mode"] = "shadow"
        raw["serving"]["max_records"] = 50
        raw["serving"]["max_body_bytes"] = 64 * 1024
        params = project.write_params(raw)
        project.run_stages(params)
        with Service.start(REPO, root, token=TOKEN) as service:
            yield Server(service.url, project, service.process)


def records(server: Server, n: int = 5) -> list[dict[str, Any]]:
    test = pd.read_parquet(server.project.paths.split("test")).head(n)
    return list(
        json.loads(test.drop(columns=["churn"]).to_json(orient="records", date_format="iso"))
    )


def test_predictions_equal_the_in_process_pipeline(server: Server) -> None:
    import mlflow.sklearn

    from cycleml.data.schema import Schema
    from cycleml.model.pipeline import predict_scores

    status, body = server.call("/predict", {"records": records(server)})
    assert status == 200 and body["model_version"] == "1"
    schema = Schema.model_validate(json.loads(server.project.paths.schema.read_text()))
    pipeline = mlflow.sklearn.load_model(str(server.project.paths.model_dir))
    expected = predict_scores(
        pipeline, schema, pd.read_parquet(server.project.paths.split("test")).head(5)
    )
    got = np.array(
        [[p["probabilities"]["No"], p["probabilities"]["Yes"]] for p in body["predictions"]]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    first = body["predictions"][0]
    assert set(first) >= {"request_id", "prediction", "decision", "model_version", "customer_id"}


@pytest.mark.parametrize(
    ("mutate", "status", "named"),
    [
        (lambda r: r.pop("tenure_months"), 400, "tenure_months"),
        (lambda r: r.update(tenure_months="twelve"), 400, "tenure_months"),
        (lambda r: r.update(contract=12), 400, "contract"),
        (lambda r: r.update(favourite_colour="teal"), 400, "favourite_colour"),
    ],
)
def test_bad_records_get_4xx_naming_the_field(
    server: Server, mutate: Any, status: int, named: str
) -> None:
    record = records(server, 1)[0]
    mutate(record)
    code, body = server.call("/predict", {"records": [record]})
    assert code == status and named in json.dumps(body)
    assert "teal" not in json.dumps(body) and "twelve" not in json.dumps(body)  # no echo


@pytest.mark.parametrize(
    ("raw", "named"),
    [(b"", "records"), (b"not json", "json"), (b'{"records": []}', "records"), (b"[1, 2]", "")],
)
def test_malformed_bodies_get_4xx(server: Server, raw: bytes, named: str) -> None:
    code, body = server.call("/predict", raw=raw)
    assert 400 <= code < 500 and named in json.dumps(body).lower()


def test_too_many_records_is_a_4xx_naming_the_limit(server: Server) -> None:
    many = records(server, 1) * 51
    code, body = server.call("/predict", {"records": many})
    assert code == 400 and "serving.max_records" in body["error"]


def test_a_body_that_is_not_json_is_415_not_500(server: Server) -> None:
    for kind in ("multipart/form-data", "text/plain", "application/x-www-form-urlencoded"):
        code, body = server.call("/predict", raw=b'{"records": []}', headers={"content-type": kind})
        assert code == 415 and "application/json" in body["error"], kind


def test_the_openapi_document_lists_the_edge_answers(server: Server) -> None:
    code, spec = server.call("/docs.json")
    assert code == 200
    assert {"400", "413", "415"} <= set(spec["paths"]["/predict"]["post"]["responses"])
    assert {"401", "403"} <= set(spec["paths"]["/admin/reload"]["post"]["responses"])


def test_an_oversized_body_is_413_on_every_endpoint_and_not_echoed(server: Server) -> None:
    padding = "x" * (70 * 1024)
    for path in ("/predict", "/feedback", "/admin/reload"):
        code, body = server.call(path, raw=json.dumps({"records": [], "pad": padding}).encode())
        assert code == 413, path
        assert "serving.max_body_bytes" in json.dumps(body) and "xxxx" not in json.dumps(body)
    code, _ = server.call("/predict", {"records": records(server, 2)})
    assert code == 200  # the server is unharmed


def test_single_records_are_batched_adaptively(server: Server) -> None:
    one = records(server, 1)
    results: list[tuple[int, Any]] = []

    def call() -> None:
        results.append(server.call("/predict_one", {"records": one}))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code == 200 for code, _ in results), results[:2]
    assert all(len(body) == 1 and body[0]["model_version"] for _, body in results)
    probabilities = {round(body[0]["probabilities"]["Yes"], 9) for _, body in results}
    assert len(probabilities) == 1  # the same record gets the same answer in any batch


def test_feedback_joins_its_prediction_and_unknown_ids_are_404(server: Server) -> None:
    _, body = server.call("/predict", {"records": records(server, 2)})
    request_id = body["predictions"][0]["request_id"]
    assert server.call("/feedback", {"items": [{"request_id": request_id, "label": "Yes"}]}) == (
        200,
        {"recorded": 1},
    )
    secret = "an-id-the-client-made-up"
    code, body = server.call("/feedback", {"items": [{"request_id": secret, "label": "Yes"}]})
    assert code == 404 and "items[].request_id" in body["error"]  # an object, as documented
    assert secret not in json.dumps(body)
    with sqlite3.connect(server.project.root / "predictions.db") as db:
        joined = db.execute(
            "SELECT p.model_version, f.label FROM predictions p JOIN feedback f USING (request_id)"
        ).fetchall()
    assert ("1", '"Yes"') in joined


def test_metadata_and_admin_token(server: Server) -> None:
    code, meta = server.call("/metadata")
    assert code == 200 and meta["model_version"] == "1" and meta["alias"] == "champion"
    assert "tenure_months" in meta["inputs"] and meta["data"]["cycleml.data.train.md5"]
    assert server.call("/admin/reload")[0] == 401
    assert server.call("/admin/reload", headers={"authorization": "Bearer wrong"})[0] == 401
    assert server.call("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})[0] == 200


def test_async_task_round_trip(server: Server) -> None:
    code, task = server.call("/predict_async/submit", {"records": records(server, 3)})
    assert code == 200, (code, task)
    assert task["task_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code, status = server.call(f"/predict_async/status?task_id={task['task_id']}")
        assert status["status"] not in ("failure", "failed"), status
        if status["status"] in ("success", "completed"):  # BentoML 1.4 says "completed"
            break
        time.sleep(0.2)
    code, result = server.call(f"/predict_async/get?task_id={task['task_id']}")
    assert code == 200, result
    assert len(result["predictions"]) == 3


def weaker_version(server: Server) -> str:
    """Register a weaker model: it becomes the challenger."""
    project = server.project
    raw = yaml.safe_load(project.paths.params.read_text())
    raw["train"]["xgboost"].update(n_estimators=2, max_depth=1)
    raw["register"]["criteria"] = {}
    raw["register"]["beat_baseline_by"] = None
    raw["evaluate"]["fairness"]["sensitive"] = []  # small data: not what these tests are about
    decision = project.run_stages(project.write_params(raw), "train", "evaluate", "register")[
        "register"
    ]
    assert decision.version is not None, decision.reasons
    return str(decision.version)


def test_shadow_challenger_is_scored_and_logged_but_not_returned(server: Server) -> None:
    challenger = weaker_version(server)
    time.sleep(2.5)  # the service re-reads its aliases every second
    _, body = server.call("/predict", {"records": records(server, 3)})
    assert body["model_version"] == "1"
    request_id = body["predictions"][0]["request_id"]
    time.sleep(1)
    with sqlite3.connect(server.project.root / "predictions.db") as db:
        rows = db.execute(
            "SELECT model_version, role FROM predictions WHERE request_id = ?",
            (f"{request_id}:shadow",),
        ).fetchall()
    assert rows == [(challenger, "shadow")]


def test_promoting_a_new_champion_under_traffic_fails_no_request(server: Server) -> None:
    from mlflow import MlflowClient

    from cycleml.config import parse_params
    from cycleml.model import registry
    from cycleml.model.tracking import tracking_uri

    project = server.project
    new = weaker_version(server)
    raw = yaml.safe_load(project.paths.params.read_text())

    failures: list[Any] = []
    versions: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        body = {"records": records(server, 1)}
        while not stop.is_set():
            code, answer = server.call("/predict", body)
            if code != 200:
                failures.append((code, answer))
            else:
                versions.add(answer["model_version"])

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(1)
    client = MlflowClient(tracking_uri(parse_params(raw).tracking, project.paths))
    registry.promote(client, "cycleml-churn", new)
    deadline = time.monotonic() + 20
    while new not in versions and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join()
    assert failures == []
    assert versions == {"1", new}
    assert server.call("/metadata")[1]["model_version"] == new


def _thread_ticks(pid: int) -> dict[int, int]:
    """CPU ticks (user + system) of each thread of process ``pid``, from /proc."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks[int(tid)] = int(fields[11]) + int(fields[12])
    return ticks


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_worker_spends_its_cpu_on_requests_not_on_spinning_threads(server: Server) -> None:
    """Issue 20: XGBoost's OpenMP threads busy-waited after every one-record prediction,
    so a worker burned about twice the CPU its requests needed (a second thread as busy as
    the event loop). The worker's CPU over 1,000 sequential requests, all threads, must
    stay close to what its event loop thread spends."""
    import http.client

    import psutil

    workers = [
        p
        for p in psutil.Process(server.process.pid).children(recursive=True)
        if "_bentoml_impl.worker" in " ".join(p.cmdline())
    ]
    assert len(workers) == 1, workers
    pid = workers[0].pid
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"records": records(server, 1)})
    connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def predict(times: int) -> None:
        for _ in range(times):
            connection.request("POST", "/predict", body, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200

    predict(50)  # warm-up
    before = _thread_ticks(pid)
    predict(1000)
    after = _thread_ticks(pid)
    connection.close()
    spent = {tid: ticks - before.get(tid, 0) for tid, ticks in after.items()}
    loop, total = spent[pid], sum(spent.values())
    assert loop > 0
    busiest_other = max((t for tid, t in spent.items() if tid != pid), default=0)
    assert total <= 1.5 * loop, (
        f"the worker spent {total} ticks on 1,000 requests, its event loop {loop}: other "
        f"threads {sorted(spent.values())[-4:]} (the busiest: {busiest_other})"
    )


def test_fuzzing_from_the_openapi_document_finds_no_server_error(server: Server) -> None:
    """A small Schemathesis run in CI (`make fuzz` runs thousands): every generated
    request, valid or not, gets a documented answer naming the problem, never a 5xx."""
    from tests.fuzz.run import fuzz

    status, requests, output = fuzz(server.url, TOKEN, examples=12)
    assert requests >= 150, output[-3000:]
    assert status == 0, output[-6000:]
    code, body = server.call("/predict", {"records": records(server, 2)})
    assert code == 200 and len(body["predictions"]) == 2  # and the service still serves
