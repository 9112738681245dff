"""The served versions kept in step with the registry's aliases, testable without BentoML.

The service answers with :attr:`AliasFollower.served` (and routes to
:attr:`AliasFollower.challenger` when a shadow or canary is configured). Every
``serving.reload_seconds``, or on ``/admin/reload``, the follower resolves the alias; when
it names another version, that version is loaded first and swapped in after, in one
assignment, so in-flight requests finish on the object they started with. A registry that
does not answer leaves the loaded version serving and is reported in :attr:`registry`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cycleml.serve.served import Served, load, resolve_version

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["AliasFollower"]

log = logging.getLogger(__name__)


class AliasFollower:
    """The version an alias names (and an optional challenger), reloaded when it moves.

    Args:
        client: the MLflow client of the registry.
        name: the registered model's name.
        alias: the alias to serve, e.g. ``champion``.
        challenger: the challenger's alias, or None when no challenger is routed to.
        on_status: called with True/False after each look at the registry (a gauge).
        on_swap: called after a new version was swapped in (e.g. to freeze the heap).
    """

    def __init__(
        self,
        client: MlflowClient,
        name: str,
        alias: str,
        challenger: str | None = None,
        on_status: Callable[[bool], None] = lambda reachable: None,
        on_swap: Callable[[], None] = lambda: None,
    ) -> None:
        self.client, self.name = client, name
        self.ref = "@" + alias
        self.challenger_ref = "@" + challenger if challenger else None
        self.on_status, self.on_swap = on_status, on_swap
        self.served: Served = load(client, name, self.ref)
        self.challenger: Served | None = None
        self.registry: dict[str, Any] = {}
        self._swap = threading.Lock()
        self._stop = threading.Event()
        self._status(None)
        self.reload_challenger()

    def reload(self) -> None:
        """Serve the version the alias names now; keep the loaded one on any failure."""
        with self._swap:
            try:
                current = resolve_version(self.client, self.name, self.ref)
                self._status(None)
                if current == self.served.version:
                    return
                fresh = load(self.client, self.name, self.ref)
            except Exception as err:  # noqa: BLE001 - keep serving the loaded version
                log.warning("reload failed, still serving v%s: %s", self.served.version, err)
                self._status(err)
                return
            log.info("swapping v%s -> v%s", self.served.version, fresh.version)
            self.served = fresh  # atomic: in-flight requests finish on the old object
        self.on_swap()

    def reload_challenger(self) -> None:
        """Load the challenger the alias names, if it changed; none is normal."""
        if self.challenger_ref is None:
            return
        try:
            current = resolve_version(self.client, self.name, self.challenger_ref)
            if self.challenger is None or self.challenger.version != current:
                self.challenger = load(self.client, self.name, self.challenger_ref)
        except Exception as err:  # noqa: BLE001 - no challenger yet is normal
            log.info("no challenger %s: %s", self.challenger_ref, err)
            self.challenger = None

    def follow(self, every_seconds: float) -> threading.Thread:
        """Check the aliases every ``every_seconds`` in a daemon thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(every_seconds):
                self.reload()
                self.reload_challenger()

        thread = threading.Thread(target=loop, name="cycleml-alias-follower", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _status(self, err: Exception | None) -> None:
        """What /metadata says about the registry after the last look at it."""
        first = (str(err).strip().splitlines() or [type(err).__name__])[0] if err else None
        self.registry = {
            "reachable": err is None,
            "checked_at": time.time(),
            "error": first[:300] if first else None,
            "serving": self.served.version,
        }
        self.on_status(err is None)
