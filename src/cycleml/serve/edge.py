"""The service's edge: an ASGI middleware between the network and BentoML.

It enforces what BentoML leaves open and corrects what it gets wrong, so every client
mistake is a documented 4xx and the OpenAPI document tells the truth:

* a body over ``serving.max_body_bytes`` gets 413 before it is read into memory;
* a POST that is not JSON gets 415 (BentoML answers a multipart body without a boundary
  with 500);
* a 4xx body that BentoML wraps in a one-element list (``({"error": ...},)`` in
  ``_bentoml_impl/server/app.py``) is unwrapped to the documented ``{"error": ...}``;
* ``/docs.json`` documents 413 and 415 on every POST, 401 and 403 on the admin
  endpoints, a validation error's ``detail`` list, and the task endpoints' real answers
  (``created_at``/``executed_at`` not always sent, states such as ``completed``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Edge"]

_JSON_TYPES = frozenset({b"", b"application/json"})
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


class Edge:
    """ASGI middleware; ``max_bytes`` bounds request bodies."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["method"] == "POST" and kind not in _JSON_TYPES:
            message = (
                f"content-type: send application/json (not {kind[:80].decode(errors='replace')})"
            )
            await _answer(send, 415, {"error": message})
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        docs = scope["method"] == "GET" and scope.get("path") == "/docs.json"
        await self.app(scope, replay, _Rewriter(send, docs))

    async def _too_large(self, send: Any) -> None:
        message = (
            f"request body too large: at most {self.max_bytes} bytes (serving.max_body_bytes); "
            "split the request or use `cycleml predict` for files"
        )
        await _answer(send, 413, {"error": message})


class _Rewriter:
    """Wraps ``send``: holds a 4xx or docs response, fixes its body, sends it whole."""

    def __init__(self, send: Any, docs: bool) -> None:
        self.send, self.docs = send, docs
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
            body = _fixed(self.body, self.docs)
            headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", b"%d" % len(body)))
            await self.send({**self.start, "headers": headers})
            await self.send({"type": "http.response.body", "body": body})
            return
        await self.send(message)


def _fixed(body: bytes, docs: bool) -> bytes:
    try:
        content = json.loads(body)
    except ValueError:
        return body
    if docs and isinstance(content, dict):
        return json.dumps(document(content)).encode()
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict):
        return json.dumps(content[0]).encode()  # BentoML's one-element tuple
    return body


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document, completed with the answers the edge and the service give."""
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if method == "post":
                responses.setdefault("413", _response("request body too large"))
                responses.setdefault("415", _response("not application/json"))
            if path.startswith("/admin/"):
                responses.setdefault("401", _response("a valid admin token is required"))
                responses.setdefault("403", _response("admin actions are off"))
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


async def _answer(send: Any, status: int, content: dict[str, Any]) -> None:
    """A complete JSON response, sent by the edge itself."""
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
