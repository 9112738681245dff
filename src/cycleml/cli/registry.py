"""The registry's approval workflow (``cycleml registry ...``) and ``cycleml lineage``.

Not stages: they read and move aliases and approval tags of registered versions in MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cycleml.cli.render import ParamsOption, console, registry_client
from cycleml.paths import project_paths

if TYPE_CHECKING:
    from cycleml.config import ServingParams

__all__ = ["approve", "lineage", "promote", "registry_list", "reject", "rollback"]

ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="why (recorded on the version)")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="who decides (default: the current user)")
]
VersionArg = Annotated[str, typer.Argument(help="a version number, or an alias like @champion")]


def registry_list(params: ParamsOption = Path("params.yaml")) -> None:
    """Every version: aliases, approval status, decision and key test metrics.

    An alias the service would refuse (its version is not approved) is flagged in red.
    """
    from rich.table import Table

    from cycleml.config import load_params
    from cycleml.model.registry import list_versions

    with registry_client(params) as (client, name):
        rows = list_versions(client, name)
        serving = load_params(params).serving
    if not rows:
        console.print(f"model {name!r} has no versions yet. {_why_none(name)}")
        return
    table = Table(title=f"{name} — MLflow Model Registry")
    for column in ("version", "aliases", "status", "decision", "test metrics", "created", "reason"):
        table.add_column(column, overflow="fold")
    colours = {"approved": "green", "rejected": "red", "pending": "yellow"}
    for r in rows:
        table.add_row(
            r.version,
            ", ".join(_alias(a, r.status, serving) for a in r.aliases),
            f"[{colours.get(r.status, 'white')}]{r.status}[/]",
            r.decision,
            "  ".join(f"{k} {v:,.4g}" for k, v in r.metrics.items()),
            r.created,
            r.reason if len(r.reason) <= 70 else r.reason[:69] + "…",
        )
    console.print(table)


def _alias(alias: str, status: str, serving: ServingParams) -> str:
    """``@alias``, flagged when the service would refuse its version: the served alias
    and a canary must be approved, a shadow challenger must not be rejected."""
    from cycleml.model.registry import may_serve

    challenger = serving.challenger
    if alias == serving.alias:
        shadow = False
    elif alias == challenger.alias and challenger.mode != "off":
        shadow = challenger.mode == "shadow"
    else:
        return f"@{alias}"  # the service does not load it
    if may_serve(status, shadow):
        return f"@{alias}"
    return f"[red]@{alias} (not approved: will not be served)[/]"


def _why_none(name: str) -> str:
    """Why ``name`` has no version: what the last `register` stage said, if it refused."""
    from cycleml.files import read_json

    report = project_paths().report("register.json")
    first = "Run `dvc repro` (or `make run`): its register stage adds the first version."
    try:
        last = read_json(report)
    except (OSError, ValueError):
        return first
    if last.get("registered") or last.get("model_name") != name:
        return first
    reasons = "; ".join(str(r) for r in last.get("reasons") or []) or "no reason recorded"
    return f"The last `register` stage did not register it ({report}): {reasons}"


def approve(
    version: VersionArg,
    reason: ReasonOption,
    by: ByOption = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Approve a version (manual mode); it becomes champion if it beat the champion."""
    from cycleml.model.registry import approve as do_approve

    with registry_client(params) as (client, name):
        number, promoted = do_approve(client, name, version, reason, by)
    console.print(
        f"[green]✓[/] {name} v{number} approved"
        + (" and promoted to @champion" if promoted else "")
    )


def reject(
    version: VersionArg,
    reason: ReasonOption,
    by: ByOption = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Reject a version: it can never become champion."""
    from cycleml.model.registry import reject as do_reject

    with registry_client(params) as (client, name):
        number = do_reject(client, name, version, reason, by)
    console.print(f"[yellow]✓[/] {name} v{number} rejected: {reason}")


def promote(version: VersionArg, params: ParamsOption = Path("params.yaml")) -> None:
    """Move @champion to an approved version (servers pick it up)."""
    from cycleml.model.registry import promote as do_promote

    with registry_client(params) as (client, name):
        number = do_promote(client, name, version)
    console.print(f"[green]✓[/] {name} @champion -> v{number}")


def rollback(params: ParamsOption = Path("params.yaml")) -> None:
    """Give @champion back to the previous approved champion."""
    from cycleml.model.registry import rollback as do_rollback

    with registry_client(params) as (client, name):
        number = do_rollback(client, name)
    console.print(f"[green]✓[/] {name} @champion rolled back to v{number}")


def lineage(
    version: Annotated[str, typer.Argument(help="a version number or alias")] = "@champion",
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Which code, data and params made a version, and whether the workspace still matches."""
    from cycleml.config import load_params
    from cycleml.model.lineage import trace

    with registry_client(params) as (client, name):
        found = trace(client, name, version, load_params(params), project_paths())
    aliases = " ".join(f"@{a}" for a in found.aliases)
    console.rule(f"[bold]{found.model} v{found.version}[/] {aliases} ({found.status})")
    console.print(f"training run: {found.run_id}")
    for check in found.checks:
        mark = "[green]=[/]" if check.matches else "[yellow]≠[/]"
        now = "" if check.matches else f"  (workspace: {check.current})"
        console.print(f"  {mark} {check.what:<32} {check.recorded}{now}")
    verdict = "matches" if found.workspace_matches else "differs from"
    console.print(f"the workspace {verdict} what trained this version")
    shown = {k: v for k, v in found.metrics.items() if k.startswith("test_")}
    console.print("test metrics: " + ", ".join(f"{k[5:]} {v:,.4g}" for k, v in shown.items()))
    key_params = {k: v for k, v in found.params.items() if k.startswith(("train.xgboost", "data"))}
    console.print("params: " + ", ".join(f"{k}={v}" for k, v in sorted(key_params.items())))
