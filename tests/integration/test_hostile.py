"""Hostile clients against a real `bentoml serve`: each test is an attack that once hurt
the service (issue 21), and checks that it is now refused cheaply and that a normal
client is still answered."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import resource
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from cycleml.demo.harness import Service
from cycleml.serve.edge import MAX_PROBLEMS
from tests.conftest import REPO, module_project, small_params
from tests.integration.test_service import TOKEN, Server, records

pytestmark = pytest.mark.integration
READ_SECONDS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with module_project(tmp_path_factory, "hostile") as project:
        root = project.root
        raw = small_params()
        raw["serving"].update(
            max_records=50,
            max_body_bytes=16 * 2**20,
            read_timeout_seconds=READ_SECONDS,
            allowed_hosts=["cycleml.internal"],
        )
        project.run_stages(project.write_params(raw))
        with Service.start(REPO, root, token=TOKEN) as service:
            yield Server(service.url, project, service.process)


def raw_request(
    server: Server, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """A request with exactly these headers (urllib adds a content-type of its own)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        text = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text.decode(errors="replace")


def one_record(server: Server) -> dict[str, Any]:
    return {"records": records(server, 1)}


# --- item 2: one request must not stall the service --------------------------------------


def test_a_record_with_a_million_unknown_fields_is_refused_cheaply(server: Server) -> None:
    """Before: a 155 MB answer after 10 s, and a concurrent one-record request waited 9 s."""
    record = records(server, 1)[0]
    extra = {f"x{i}": 1 for i in range(1_000_000)} | {"x0": "secret-value"}  # 14 MB
    big = {"records": [{**record, **extra}]}
    refused: list[tuple[int, Any]] = []
    attacker = threading.Thread(target=lambda: refused.append(server.call("/predict", big)))
    attacker.start()
    time.sleep(0.5)  # the 12 MB body is on its way
    started = time.perf_counter()
    code, _ = server.call("/predict", one_record(server))
    waited = time.perf_counter() - started
    attacker.join()
    assert code == 200 and waited < 5, waited
    code, body = refused[0]
    assert code == 400
    assert len(json.dumps(body)) < 2000, len(json.dumps(body))
    assert "'x0', 'x1', 'x2' and 999997 more" in body["error"], body["error"]
    assert "secret-value" not in json.dumps(body)


def test_many_invalid_records_list_a_bounded_number_of_problems(server: Server) -> None:
    """50 empty records were 50 x 18 'missing' errors; now the first record's, at most 20."""
    code, body = server.call("/predict", {"records": [{}] * 50})
    assert code == 400
    assert len(body["detail"]) <= MAX_PROBLEMS
    assert {tuple(p["loc"][:2]) for p in body["detail"]} == {("records", 0)}
    assert body["error"].startswith("records.0.") and "problems" in body["error"]


# --- item 4: idle connections --------------------------------------------------------------


def workers(server: Server) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [p for p in children if "_bentoml_impl.worker.service" in " ".join(p.cmdline())]


def test_idle_sockets_do_not_lock_normal_clients_out(server: Server) -> None:
    """1,100 sockets that send nothing or half a header, against a 1,024-descriptor worker:
    before, every later client was reset and nothing was logged."""
    own_soft, own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(own_soft, min(own_hard, 4096)), own_hard))
    worker = workers(server)[0]
    limits = resource.prlimit(worker.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(worker.pid, resource.RLIMIT_NOFILE, (1024, limits[1]))
    host, port = server.url.removeprefix("http://").split(":")
    idle: list[socket.socket] = []
    try:
        for i in range(1100):
            sock = socket.create_connection((host, int(port)), timeout=10)
            if i % 2:
                sock.sendall(b"GET /metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a header
            idle.append(sock)
        time.sleep(0.5)
        answers = [server.call("/predict", one_record(server))[0] for _ in range(5)]
        assert answers == [200] * 5
    finally:
        for sock in idle:
            sock.close()
        resource.prlimit(worker.pid, resource.RLIMIT_NOFILE, limits)
        resource.setrlimit(resource.RLIMIT_NOFILE, (own_soft, own_hard))
    log = (server.project.root / "logs" / "service.log").read_text(errors="replace")
    assert "closed at the limit of" in log and "serving.max_connections" in log


def test_silent_and_slow_connections_are_closed_after_the_read_timeout(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    silent = socket.create_connection((host, int(port)), timeout=READ_SECONDS + 8)
    partial = socket.create_connection((host, int(port)), timeout=READ_SECONDS + 8)
    partial.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    slow_body = socket.create_connection((host, int(port)), timeout=READ_SECONDS + 8)
    slow_body.sendall(
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n{"
    )
    started = time.perf_counter()
    assert silent.recv(100) == b""  # closed, nothing said: it never asked anything
    assert b"408" in partial.recv(1000).split(b"\r\n")[0]
    assert slow_body.recv(1000) == b""
    assert READ_SECONDS - 0.5 < time.perf_counter() - started < READ_SECONDS + 5
    for sock in (silent, partial, slow_body):
        sock.close()


def test_an_endless_header_is_431(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # just over the limit: the server has read it all when it answers (no reset)
        sock.sendall(b"GET /metadata HTTP/1.1\r\nx-padding: " + b"a" * 66_000)
        assert b"431" in sock.recv(1000).split(b"\r\n")[0]


# --- item 5: bounded metric labels ----------------------------------------------------------


def test_random_paths_are_404_and_make_no_metric_series(server: Server) -> None:
    secret = uuid.uuid4().hex
    paths = [f"/{secret}{i}" for i in range(300)] + ["/static_content/missing.js"]
    for path in paths:
        code, body = server.call(path)
        assert code == 404 and "error" in body and secret not in json.dumps(body)
    code, text = raw_request(server, "GET", "/metrics")
    assert code == 200
    assert secret not in text and "missing.js" not in text
    assert len(text) < 200_000, len(text)  # was +4 KB per path
    assert server.call("/predict", one_record(server))[0] == 200


# --- item 10: cross-origin requests, Host, admin errors -------------------------------------


def test_a_post_without_json_content_type_is_415(server: Server) -> None:
    body = json.dumps(one_record(server)).encode()
    for path in ("/predict", "/feedback"):
        code, answer = raw_request(server, "POST", path, body)
        assert code == 415 and "application/json" in answer["error"], path
    kind = {"content-type": "application/json; charset=utf-8"}
    assert raw_request(server, "POST", "/predict", body, kind)[0] == 200


def test_only_the_services_own_host_names_are_answered(server: Server) -> None:
    body = json.dumps(one_record(server)).encode()
    kind = {"content-type": "application/json"}
    code, answer = raw_request(server, "POST", "/predict", body, {**kind, "host": "evil.example"})
    assert code == 400 and "serving.allowed_hosts" in answer["error"]
    assert "evil" not in answer["error"]
    for host in ("localhost:3000", "cycleml.internal", "127.0.0.1"):
        assert raw_request(server, "POST", "/predict", body, {**kind, "host": host})[0] == 200
    assert raw_request(server, "GET", "/readyz", headers={"host": "10.1.2.3:3000"})[0] == 200


def test_admin_refusals_are_documented_error_objects(server: Server) -> None:
    code, body = server.call("/admin/reload")
    assert code == 401 and set(body) == {"error"} and "Bearer" in body["error"]


# --- item 6: dates ---------------------------------------------------------------------------


def test_a_date_must_be_a_date_and_the_log_keeps_one_type(server: Server) -> None:
    record = records(server, 1)[0]
    code, body = server.call("/predict", {"records": [{**record, "signup_date": 1725000000}]})
    assert code == 400 and "signup_date" in body["error"] and "1725000000" not in body["error"]
    ids = []
    for date in ("2024-08-30", "2024-08-30T06:40:00+02:00", "2024-08-30T06:40:00.000"):
        code, body = server.call("/predict", {"records": [{**record, "signup_date": date}]})
        assert code == 200, body
        ids.append(body["predictions"][0]["request_id"])
    time.sleep(1)  # the log is written in the background
    with sqlite3.connect(server.project.root / "predictions.db") as db:
        query = "SELECT inputs FROM predictions WHERE request_id = ?"
        stored = [json.loads(db.execute(query, (i,)).fetchone()[0])["signup_date"] for i in ids]
    assert all(isinstance(value, str) for value in stored), stored
    expected = [
        dt.datetime(2024, 8, 30),
        dt.datetime(2024, 8, 30, 4, 40),
        dt.datetime(2024, 8, 30, 6, 40),
    ]
    assert [dt.datetime.fromisoformat(value) for value in stored] == expected
