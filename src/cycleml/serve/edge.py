"""The service's edge: the outermost ASGI layer, in front of everything BentoML runs.

It enforces what BentoML leaves open and corrects what it gets wrong, so every client
mistake is a documented 4xx and the OpenAPI document tells the truth:

* a ``Host`` that is not the service's own (DNS rebinding) gets 400, except on the
  health probes;
* a path the application does not answer gets 404 here, before BentoML's metrics
  middleware makes a time series of every path a client invents;
* a body over ``serving.max_body_bytes`` gets 413 before it is read into memory;
* a body that is not declared ``application/json`` gets 415 (a web page can send a
  cross-origin POST without a preflight only as text, a form or without a type;
  BentoML reads any of them as JSON, and answers a multipart body with 500);
* a 4xx body that BentoML wraps in a one-element list (``({"error": ...},)`` in
  ``_bentoml_impl/server/app.py``) is unwrapped to the documented ``{"error": ...}``;
* a validation error's ``error`` names its first problem, and ``detail`` lists at most
  ``MAX_PROBLEMS`` of them;
* ``/docs.json`` documents 400, 404, 413 and 415 on every POST, 401 and 403 on the admin
  endpoints, a validation error's ``detail`` list, and the task endpoints' real answers
  (``created_at``/``executed_at`` not always sent, states such as ``completed``).

It must run outside BentoML's middlewares (metrics, tracing, ...), so it is not added
with ``add_asgi_middleware``: ``cycleml.serve.connections`` wraps the application with it.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Collection, Container, Mapping, Sequence
from typing import Any

from starlette.routing import Match
from starlette.staticfiles import StaticFiles

__all__ = ["MAX_PROBLEMS", "PROBES", "Edge", "Routes", "document", "host_name"]

MAX_PROBLEMS = 20
"""A validation error lists at most this many problems."""
PROBES = frozenset({"/livez", "/healthz", "/readyz"})
"""Health probes answer any Host: an orchestrator calls them by the pod's address, and
they tell a web page nothing."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


class Routes:
    """The paths an application answers, asked of its own router.

    A path that matched once is remembered (routes without path parameters and files
    that exist: a bounded set), so a known path costs one set lookup.
    """

    def __init__(self, routes: Sequence[Any]) -> None:
        self._routes = routes
        self._known: set[str] = set()

    def __contains__(self, scope: Mapping[str, Any]) -> bool:
        path = scope["path"]
        if path in self._known:
            return True
        for route in self._routes:
            match, child = route.matches(scope)
            if match is Match.NONE:
                continue
            app = getattr(route, "app", None)
            if isinstance(app, StaticFiles) and not _is_file(app, {**scope, **child}):
                return False
            if not child.get("path_params"):
                self._known.add(path)
            return True
        return False


def _is_file(files: StaticFiles, scope: Mapping[str, Any]) -> bool:
    _, found = files.lookup_path(files.get_path(scope))  # type: ignore[arg-type]
    return found is not None and stat.S_ISREG(found.st_mode)


class Edge:
    """ASGI wrapper: ``routes`` are the paths answered, ``hosts`` the Host names served,
    ``max_bytes`` bounds request bodies; ``advice`` adds a sentence (naming a setting)
    to a validation problem of that pydantic error type."""

    def __init__(
        self,
        app: Any,
        *,
        routes: Container[Any],
        hosts: Collection[str],
        max_bytes: int,
        advice: Mapping[str, str],
    ) -> None:
        self.app, self.routes, self.max_bytes = app, routes, max_bytes
        self.hosts = frozenset(h.lower() for h in hosts)
        self.advice = advice

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left (or was timed out): nobody to answer
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await _answer(send, *self._too_large())
                return
            if not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        docs = scope["method"] == "GET" and scope["path"] == "/docs.json"
        await self.app(scope, replay, _Rewriter(send, docs, self.advice))

    def _refusal(self, scope: Any, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        """What is wrong with the request line and headers, if anything (status, error)."""
        if scope["path"] not in PROBES and host_name(headers.get(b"host")) not in self.hosts:
            return 400, (
                "host: this service answers only its own names (127.0.0.1, localhost, ::1 "
                "and serving.host); add the name clients use to serving.allowed_hosts"
            )
        if scope not in self.routes:
            return 404, "no such endpoint: GET /docs.json lists them"
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return self._too_large()
        if scope["method"] in _BODY_METHODS and _has_body(headers):
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if kind != b"application/json":
                return 415, "content-type: send the body as application/json"
        return None

    def _too_large(self) -> tuple[int, str]:
        return 413, (
            f"request body too large: at most {self.max_bytes} bytes (serving.max_body_bytes); "
            "split the request or use `cycleml predict` for files"
        )


def host_name(header: bytes | None) -> str | None:
    """The name in a ``Host`` header, without its port: ``[::1]:3000`` -> ``::1``."""
    if not header:
        return None
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):  # an IPv6 literal
        return text[1 : text.find("]")] if "]" in text else None
    return text.rsplit(":", 1)[0] if ":" in text else text


def _has_body(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


class _Rewriter:
    """Wraps ``send``: holds a 4xx or docs response, fixes its body, sends it whole."""

    def __init__(self, send: Any, docs: bool, advice: Mapping[str, str]) -> None:
        self.send, self.docs, self.advice = send, docs, advice
        self.start: dict[str, Any] | None = None
        self.body = b""

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            if (self.docs and status == 200) or 400 <= status < 500:
                self.start = message
                return
        elif message["type"] == "http.response.body" and self.start is not None:
            self.body += message.get("body", b"")
            if message.get("more_body"):
                return
            body = _fixed(self.body, self.docs, self.advice)
            headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", b"%d" % len(body)))
            await self.send({**self.start, "headers": headers})
            await self.send({"type": "http.response.body", "body": body})
            return
        await self.send(message)


def _fixed(body: bytes, docs: bool, advice: Mapping[str, str]) -> bytes:
    try:
        content = json.loads(body)
    except ValueError:
        return body
    if docs and isinstance(content, dict):
        return json.dumps(document(content)).encode()
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict):
        content = content[0]  # BentoML's one-element tuple
    elif isinstance(content, dict) and isinstance(content.get("detail"), list):
        content = _problems(content["detail"], advice)
    elif isinstance(content, dict) and set(content) == {"detail"}:
        content = {"error": str(content["detail"])}  # FastAPI's HTTPException
    else:
        return body
    return json.dumps(content).encode()


def _problems(detail: list[Any], advice: Mapping[str, str]) -> dict[str, Any]:
    """A validation error: its first problem in ``error``, at most MAX_PROBLEMS listed."""
    first = detail[0] if detail and isinstance(detail[0], dict) else {}
    where = ".".join(str(part) for part in first.get("loc", [])) or "body"
    error = f"{where}: {first.get('msg', 'invalid')}"
    if first.get("type") in advice:
        error += f"; {advice[first['type']]}"
    if len(detail) > 1:
        listed = min(len(detail), MAX_PROBLEMS)
        error += f" ({len(detail)} problems, the first {listed} in detail)"
    return {"error": error, "detail": detail[:MAX_PROBLEMS]}


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document, completed with the answers the edge and the service give."""
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if path not in PROBES:
                responses.setdefault("400", _response("a Host that is not the service's own"))
            if method in ("post", "put", "patch"):
                responses.setdefault("413", _response("request body too large"))
                responses.setdefault("415", _response("not application/json"))
            if path.startswith("/admin/"):
                responses.setdefault("401", _response("a valid admin token is required"))
                responses.setdefault("403", _response("admin actions are off"))
            if path == "/feedback":
                responses.setdefault("404", _response("a request id the log has not seen"))
                responses.setdefault("409", _response("another label for a labelled id"))
                responses.setdefault("503", _response("the prediction log is unreachable"))
    schemas = spec.get("components", {}).get("schemas", {})
    status = schemas.get("TaskStatusResponse")
    if isinstance(status, dict):  # what the task endpoints really send
        status["required"] = ["task_id", "status"]
        states = status.get("properties", {}).get("status", {})
        if isinstance(states.get("enum"), list):  # _bentoml_impl.tasks.result.ResultStatus
            known = ["pending", "in_progress", "completed", "failed", "canceled"]
            states["enum"] = list(dict.fromkeys([*states["enum"], *known]))
    for name in ("InvalidArgument", "NotFound", "BadInput"):
        error = schemas.get(name)
        if isinstance(error, dict) and "detail" in error.get("properties", {}):
            # a validation error's detail is the list of problems (loc, msg), not text
            error["properties"]["detail"] = {"title": "Error Detail"}
    return spec


def _response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


async def _answer(send: Any, status: int, error: str) -> None:
    """A complete JSON error response, sent by the edge itself."""
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
