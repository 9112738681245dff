"""The served versions kept in step with the registry's aliases, testable without BentoML.

The service answers with :attr:`AliasFollower.served` (and routes to
:attr:`AliasFollower.challenger` when a shadow or canary is configured). Every
``serving.reload_seconds``, or on ``/admin/reload``, the follower resolves the alias; when
it names another version, that version is loaded first and swapped in after, in one
assignment, so in-flight requests finish on the object they started with. A registry that
does not answer leaves the loaded version serving and is reported in :attr:`registry`.

Before a version is swapped in it must load (skops only, cycleml's trusted types: see
:mod:`cycleml.model.loading`) and score its own input example the way requests are scored.
It must also be approved in the registry (tag ``cycleml.status``): the MLflow UI can point
``@champion`` at a pending or rejected version, and the registry's word is final. A
version that fails any of these is refused: the loaded one keeps serving, and the refusal
(the version and why) is logged once and reported in :attr:`registry` until the alias
moves or the version is approved. At start-up there is nothing to fall back on, so the
constructor raises (:class:`cycleml.model.registry.NotApproved` for an unapproved one).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cycleml.model.registry import require_servable
from cycleml.serve.served import Served, load, resolve_version, score

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["AliasFollower", "load_approved", "rehearse"]

log = logging.getLogger(__name__)


def rehearse(served: Served) -> Served:
    """``served``, after it scored its own input example as a request would be scored.

    A version with no saved example scores one record of nulls (every input is imputed).
    A version that loads but cannot answer, e.g. one built for other columns, fails here
    instead of answering 500 to every request once it is served.

    Raises:
        ValueError: the scores are not finite numbers; or whatever scoring raised.
    """
    records = served.example or [dict.fromkeys(served.schema.inputs)]
    for answer in score(served, records):
        numbers = list(answer.get("probabilities", {}).values()) or [answer["prediction"]]
        if not all(math.isfinite(n) for n in numbers):
            raise ValueError(
                f"version {served.version} scored its input example as a non-finite number"
            )
    return served


def load_approved(client: MlflowClient, name: str, ref: str, shadow: bool = False) -> Served:
    """Version ``ref`` of ``name``, loaded, once its own tags show it may answer requests.

    The status is read from the version that was loaded, so an alias moving meanwhile
    cannot slip an unapproved version past the check. ``shadow``: it only shadows, and
    may also be pending (:func:`cycleml.model.registry.may_serve`).

    Raises:
        NotApproved: the version is not approved; or whatever loading raised.
    """
    served = load(client, name, ref)
    require_servable(ref, served.version, served.tags, shadow)
    return served


class AliasFollower:
    """The version an alias names (and an optional challenger), reloaded when it moves.

    Args:
        client: the MLflow client of the registry.
        name: the registered model's name.
        alias: the alias to serve, e.g. ``champion``.
        challenger: the challenger's alias, or None when no challenger is routed to.
        shadow: the challenger only shadows (scored, never returned), so it may be pending;
            when it answers (canary) it must be approved like the served version.
        on_status: called with True/False after each look at the registry (a gauge).
        on_swap: called after a new version was swapped in (e.g. to freeze the heap).
        served: the version to start with, when the caller has loaded it already (through
            :func:`load_approved`); else the alias's version is loaded here.
    """

    served: Served
    """The version answering requests."""
    challenger: Served | None
    """The challenger's version, when one is routed to and it passed its rehearsal."""

    def __init__(
        self,
        client: MlflowClient,
        name: str,
        alias: str,
        challenger: str | None = None,
        shadow: bool = False,
        on_status: Callable[[bool], None] = lambda reachable: None,
        on_swap: Callable[[], None] = lambda: None,
        served: Served | None = None,
    ) -> None:
        self.client, self.name = client, name
        self.ref = "@" + alias
        self.challenger_ref = "@" + challenger if challenger else None
        self.shadow = shadow
        self.on_status, self.on_swap = on_status, on_swap
        # nothing to fall back on yet: a version that fails here stops the start
        self.served = rehearse(served or load_approved(client, name, self.ref))
        self.challenger = None
        self._refused: dict[str, dict[str, str]] = {}
        self._looked: dict[str, Any] = {}
        self._swap = threading.Lock()
        self._stop = threading.Event()
        self._status(None)
        self.reload_challenger()

    @property
    def registry(self) -> dict[str, Any]:
        """What /metadata says about the registry: whether it answered the last look, the
        version serving, and each alias whose version was refused (which one, and why)."""
        return {**self._looked, "serving": self.served.version, "refused": dict(self._refused)}

    def reload(self) -> None:
        """Serve the version the alias names now; keep the loaded one on any failure."""
        with self._swap:
            try:
                current = resolve_version(self.client, self.name, self.ref)
            except Exception as err:  # noqa: BLE001 - keep serving the loaded version
                log.warning("reload failed, still serving v%s: %s", self.served.version, err)
                self._status(err)
                return
            self._status(None)
            if current == self.served.version:
                self._refused.pop(self.ref, None)
                return
            fresh = self._candidate(self.ref, current)
            if fresh is None:
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
        except Exception as err:  # noqa: BLE001 - no challenger yet is normal
            log.info("no challenger %s: %s", self.challenger_ref, err)
            self.challenger = None
            self._refused.pop(self.challenger_ref, None)
            return
        if self.challenger is None or self.challenger.version != current:
            self.challenger = self._candidate(self.challenger_ref, current)

    def _candidate(self, ref: str, version: str) -> Served | None:
        """Version ``version``, which ``ref`` now names, loaded, approved and rehearsed; None
        when it is refused (logged once per version and reason, reported in :attr:`registry`)."""
        shadow = self.shadow and ref == self.challenger_ref
        try:
            fresh = rehearse(load_approved(self.client, self.name, ref, shadow))
        except Exception as err:  # noqa: BLE001 - a bad version must never be served
            refusal = {"version": version, "error": _first_line(err)}
            if self._refused.get(ref) != refusal:
                log.warning(
                    "refused v%s (%s), still serving v%s: %s",
                    version,
                    ref,
                    self.served.version,
                    err,
                )
            self._refused[ref] = refusal
            return None
        self._refused.pop(ref, None)
        return fresh

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
        """Record whether the registry answered this look at it."""
        self._looked = {
            "reachable": err is None,
            "checked_at": time.time(),
            "error": _first_line(err) if err else None,
        }
        self.on_status(err is None)


def _first_line(err: Exception) -> str:
    """An error's first line, short enough for /metadata."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:600]
