"""The model registry with approval, on MLflow's registry (aliases and version tags).

Each registered version carries a status, ``pending`` / ``approved`` / ``rejected``, with
who set it, when and why (tags ``cycleml.status*``). Only an approved version can hold the
``champion`` alias, the one every server loads; the registered model keeps the history of
champions (tag ``cycleml.champion_history``) so ``rollback`` can step back.

The MLflow UI moves aliases without asking cycleml, so the status is checked again where a
version is used: :func:`require_servable` refuses one that is not approved (the service,
``cycleml predict`` through an alias).
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cycleml.model.tracking import store_error
from cycleml.names import (
    TAG_CHAMPION_HISTORY,
    TAG_DECISION,
    TAG_REASONS,
    TAG_STATUS,
    TAG_STATUS_AT,
    TAG_STATUS_BY,
    TAG_STATUS_REASON,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "APPROVED",
    "CHALLENGER",
    "CHAMPION",
    "PENDING",
    "REJECTED",
    "NotApproved",
    "RegistryError",
    "VersionRow",
    "approve",
    "champion_version",
    "list_versions",
    "may_serve",
    "promote",
    "reject",
    "require_servable",
    "resolve",
    "rollback",
    "set_status",
]

CHAMPION, CHALLENGER = "champion", "challenger"
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
_HISTORY = TAG_CHAMPION_HISTORY


class RegistryError(ValueError):
    """A registry action that cannot be done: it would break a rule (e.g. promoting an
    unapproved version), or names a version that does not exist."""


class NotApproved(RegistryError):
    """A version that is not approved where only an approved one may answer: an alias
    moved in the MLflow UI, which does not ask cycleml's approval."""


# what MLflow's stores answer for an unknown model, version or alias (SQL store: alias
# "not found" is INVALID_PARAMETER_VALUE); any other failure is the store's (StoreError),
# never reported as "no such version": that would send the user after the wrong fix
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: list[str]
    status: str
    decision: str
    metrics: dict[str, float]
    created: str
    reason: str
    run_id: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _lookup(client: MlflowClient, name: str, ref: str) -> Any | None:
    """Version ``ref`` (number or alias) of ``name``; None when the store says it does not
    exist. Raises StoreError when the store failed to answer."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.lstrip("@").isdigit():
            return client.get_model_version(name, ref.lstrip("@"))
        return client.get_model_version_by_alias(name, ref.lstrip("@"))
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None
        # the registry's URI: MLflow keeps it only privately (it may differ from tracking)
        uri = str(getattr(client, "_registry_uri", client.tracking_uri))
        raise store_error(uri, err, f"look up {name} {ref}") from None


def resolve(client: MlflowClient, name: str, ref: str) -> Any:
    """A version by number (``3``) or alias (``@champion`` / ``champion``)."""
    version = _lookup(client, name, ref)
    if version is None:
        raise RegistryError(f"model {name!r} has no version {ref!r}; see `cycleml registry list`")
    return version


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The champion's version number; None when there is none (StoreError when the store
    does not answer: "no champion" would be a guess)."""
    version = _lookup(client, name, "@" + CHAMPION)
    return None if version is None else str(version.version)


def may_serve(status: str, shadow: bool = False) -> bool:
    """Whether a version of this approval status may answer requests: only an approved
    one. A ``shadow`` (scored and logged, never returned) may also be pending: it is how a
    person gathers evidence before approving it; a rejected version is never used."""
    return status == APPROVED or (shadow and status == PENDING)


def require_servable(ref: str, version: str, tags: Mapping[str, str], shadow: bool = False) -> None:
    """Raise :class:`NotApproved` unless ``version`` (which ``ref`` names) may answer.

    ``tags`` are the version's own (a version registered outside ``cycleml register`` has
    no status: pending). See :func:`may_serve` for ``shadow``.
    """
    status = tags.get(TAG_STATUS, PENDING)
    if may_serve(status, shadow):
        return
    approve_it = (
        f"approve it (`cycleml registry approve {version} --reason ...`) or "
        if status == PENDING
        else ""
    )
    move = (
        "`cycleml registry rollback` or `cycleml registry promote N`"
        if ref.lstrip("@") == CHAMPION
        else "`cycleml registry list` shows the approved ones"
    )
    raise NotApproved(
        f"{ref} names v{version}, whose status ({TAG_STATUS}) is {status!r}, not approved: "
        f"only approved versions are served (or scored through an alias); {approve_it}point "
        f"{ref} at an approved version ({move})"
    )


def set_status(
    client: MlflowClient, name: str, version: str, status: str, reason: str, by: str | None = None
) -> None:
    for key, value in {
        TAG_STATUS: status,
        TAG_STATUS_REASON: reason,
        TAG_STATUS_BY: _who(by),
        TAG_STATUS_AT: _now(),
    }.items():
        client.set_model_version_tag(name, version, key, value)


def _history(client: MlflowClient, name: str) -> list[str]:
    raw = client.get_registered_model(name).tags.get(_HISTORY, "")
    return [v for v in raw.split(",") if v]


def promote(client: MlflowClient, name: str, ref: str) -> str:
    """Move ``champion`` to an approved version; the old champion stays in the history."""
    version = resolve(client, name, ref)
    number = str(version.version)
    status = version.tags.get(TAG_STATUS, PENDING)
    if status != APPROVED:
        raise RegistryError(
            f"v{number} is {status}, not approved: approve it first "
            f"(`cycleml registry approve {number} --reason ...`)"
        )
    current = champion_version(client, name)
    if current == number:
        return number
    client.set_registered_model_alias(name, CHAMPION, number)
    if version.aliases and CHALLENGER in version.aliases:
        client.delete_registered_model_alias(name, CHALLENGER)
    history = [*_history(client, name), number]
    client.set_registered_model_tag(name, _HISTORY, ",".join(history[-50:]))
    return number


def rollback(client: MlflowClient, name: str) -> str:
    """Give ``champion`` back to the previous approved champion."""
    history = _history(client, name)
    current = champion_version(client, name)
    while history and history[-1] == current:
        history.pop()
    for candidate in reversed(history):
        version = client.get_model_version(name, candidate)
        if version.tags.get(TAG_STATUS) == APPROVED:
            client.set_registered_model_alias(name, CHAMPION, candidate)
            keep = history[: history.index(candidate) + 1]
            client.set_registered_model_tag(name, _HISTORY, ",".join(keep))
            return candidate
    raise RegistryError(f"model {name!r} has no earlier approved champion to roll back to")


def approve(
    client: MlflowClient, name: str, ref: str, reason: str, by: str | None = None
) -> tuple[str, bool]:
    """Approve a version; promote it when register found it better than the champion.

    Returns the version and whether it became the champion.
    """
    version = resolve(client, name, ref)
    number = str(version.version)
    if version.tags.get(TAG_STATUS) == REJECTED:
        raise RegistryError(f"v{number} was rejected; register a new version instead")
    set_status(client, name, number, APPROVED, reason, by)
    if version.tags.get(TAG_DECISION) in {CHAMPION, "champion-candidate"}:
        promote(client, name, number)
        return number, True
    return number, False


def reject(client: MlflowClient, name: str, ref: str, reason: str, by: str | None = None) -> str:
    version = resolve(client, name, ref)
    number = str(version.version)
    if champion_version(client, name) == number:
        raise RegistryError(
            f"v{number} is the champion: `cycleml registry rollback` (or promote another) first"
        )
    set_status(client, name, number, REJECTED, reason, by)
    if CHALLENGER in (version.aliases or []):
        client.delete_registered_model_alias(name, CHALLENGER)
    return number


_SHOWN_METRICS = (
    "test_roc_auc",
    "test_f1",
    "test_profit",
    "test_rmse",
    "test_r2",
    "test_error_cost",
)


def list_versions(client: MlflowClient, name: str) -> list[VersionRow]:
    """Every version, newest first, with aliases, status and key test metrics."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return []  # nothing registered under this name yet
        uri = str(getattr(client, "_registry_uri", client.tracking_uri))
        raise store_error(uri, err, f"list the versions of {name}") from None
    aliases: dict[str, list[str]] = {}
    for alias, number in model.aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for v in client.search_model_versions(f"name = '{name}'"):
        tags = v.tags or {}
        metrics = {k.removeprefix("test_"): float(tags[k]) for k in _SHOWN_METRICS if k in tags}
        created = dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC)
        rows.append(
            VersionRow(
                version=str(v.version),
                aliases=sorted(aliases.get(str(v.version), [])),
                status=tags.get(TAG_STATUS, PENDING),
                decision=tags.get(TAG_DECISION, ""),
                metrics=metrics,
                created=created.strftime("%Y-%m-%d %H:%M"),
                reason=tags.get(TAG_STATUS_REASON, tags.get(TAG_REASONS, "")),
                run_id=str(v.run_id),
            )
        )
    return sorted(rows, key=lambda r: int(r.version), reverse=True)
