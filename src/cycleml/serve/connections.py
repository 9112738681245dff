"""Connection limits for the service's uvicorn server, which BentoML configures without any.

BentoML 1.4's worker (``_bentoml_impl/worker/service.py``) builds ``uvicorn.Config`` with
only the backlog, TLS and keep-alive settings: no ``limit_concurrency``, and uvicorn has
no timeout for a connection that never completes a request (its keep-alive timer starts
only after a response). 1,100 sockets that sent nothing, or half a header, used up a
1,024-descriptor limit; libuv then accepted and at once closed every new connection,
normal clients included, and nothing was logged.

:func:`install` makes uvicorn's ``auto`` HTTP protocol (what BentoML's worker asks for)
a guarded one, for the rest of the process:

* a request (header and body) must arrive within ``read_seconds``; a slow or silent
  connection is closed (with a 408 if it had started a header);
* a request header over ``MAX_HEADER_BYTES`` gets 431;
* at most ``max_connections`` connections (fewer if the descriptor limit is lower), and
  at the limit a new connection closes the oldest one still waiting for its request, so
  idle sockets cannot lock clients out; refusals and timeouts are logged, at most one
  line every ``LOG_EVERY`` seconds;
* the descriptor limit's soft value is raised towards its hard value at start;
* the application is wrapped by ``wrap`` (the service's edge), so it runs before
  BentoML's own middlewares (metrics, tracing);
* WebSocket upgrades are answered as plain HTTP: the service has none, and an upgraded
  connection would bypass the edge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections.abc import Callable
from typing import Any, ClassVar

import uvicorn.config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEADER_BYTES", "RESERVED_FDS", "GuardedHttpTools", "connection_cap", "install"]

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024
"""A request line and headers larger than this get 431 (llhttp sets no limit)."""
RESERVED_FDS = 128
"""Descriptors kept for what is not a client connection: the model's files, the
prediction log, the registry, BentoML's metrics files and pipes."""
LOG_EVERY = 10.0


def install(wrap: Callable[[Any, Any], Any], read_seconds: float, max_connections: int) -> None:
    """Guard this process's uvicorn servers; ``wrap(app, inner)`` is given uvicorn's
    loaded application and the ASGI application BentoML built (for its routes)."""
    GuardedHttpTools.wrap = staticmethod(wrap)
    GuardedHttpTools.read_seconds = read_seconds
    GuardedHttpTools.max_connections = max_connections
    _raise_descriptor_limit(max_connections + RESERVED_FDS)
    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:GuardedHttpTools"


def connection_cap(max_connections: int) -> int:
    """Connections allowed now: the setting, or fewer if the descriptor limit is lower
    (read each time: an operator may change it with prlimit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, min(max_connections, soft - RESERVED_FDS))


def _raise_descriptor_limit(wanted: int) -> None:
    """Raise the soft limit (often 1,024) to ``wanted``, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a read deadline, a header size limit and a
    connection limit (one uvicorn server per worker process: the state is the class's)."""

    wrap: ClassVar[Callable[[Any, Any], Any]]
    read_seconds: ClassVar[float]
    max_connections: ClassVar[int]
    _app: ClassVar[Any] = None
    _waiting: ClassVar[dict[GuardedHttpTools, None]] = {}
    """Connections without a complete request, oldest first: the ones a new connection
    may close at the limit."""
    _counts: ClassVar[dict[str, int]] = {"refused": 0, "timed_out": 0}
    _logged: ClassVar[float] = 0.0

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if GuardedHttpTools._app is None:
            GuardedHttpTools._app = GuardedHttpTools.wrap(config.loaded_app, config.app)
        self.app = GuardedHttpTools._app
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes: int | None = None  # None: no header being read

    # --- the read deadline ----------------------------------------------------------

    def _await_request(self) -> None:
        self._header_bytes = 0
        self._deadline = self.loop.call_later(self.read_seconds, self._expire)
        GuardedHttpTools._waiting[self] = None

    def _got_request(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._header_bytes = None
        GuardedHttpTools._waiting.pop(self, None)

    def _expire(self) -> None:
        started_header = bool(self._header_bytes)
        self._got_request()
        if started_header:  # a header had started: say why the connection ends
            seconds = f"{self.read_seconds:g}"
            self._refuse(
                408,
                f"request not received within {seconds} s (serving.read_timeout_seconds)",
            )
        else:
            self.transport.close()
        _note("timed_out")

    def _refuse(self, status: int, error: str) -> None:
        body = json.dumps({"error": error}).encode()
        head = f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        self.transport.write(head.encode() + body)
        self.transport.close()

    # --- uvicorn's protocol callbacks -----------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()
        if len(self.connections) > connection_cap(self.max_connections):
            oldest = next(iter(GuardedHttpTools._waiting))  # self when all others are busy
            oldest._got_request()
            oldest.transport.close()
            _note("refused")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_bytes is not None and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._got_request()
                self._refuse(431, f"request header larger than {MAX_HEADER_BYTES} bytes")

    def on_headers_complete(self) -> None:
        self._header_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._got_request()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._got_request()
        super().connection_lost(exc)

    def _should_upgrade_to_ws(self) -> bool:
        return False

    def _unsupported_upgrade_warning(self) -> None:
        """An Upgrade header is answered as plain HTTP, without a warning per request."""


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _note(event: str) -> None:
    """Count a refused or timed-out connection; log the counts at most every LOG_EVERY s."""
    counts = GuardedHttpTools._counts
    counts[event] += 1
    now = time.monotonic()
    if now - GuardedHttpTools._logged < LOG_EVERY:
        return
    GuardedHttpTools._logged = now
    log.warning(
        "connections: %d closed at the limit of %d (the oldest waiting one makes room; "
        "serving.max_connections, the descriptor limit), %d closed for sending no complete "
        "request within %g s (serving.read_timeout_seconds)",
        counts["refused"],
        connection_cap(GuardedHttpTools.max_connections),
        counts["timed_out"],
        GuardedHttpTools.read_seconds,
    )
    counts.update(refused=0, timed_out=0)
