"""Commands that operate what the pipeline produced: summary, batch predict, monitor,
retrain (and swap a running service to the new champion), and the whole loop.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cycleml.cli.render import (
    ParamsOption,
    console,
    err_console,
    loop_summary,
    registry_client,
    show,
)
from cycleml.paths import project_paths

__all__ = ["loop", "monitor", "predict", "retrain", "summary"]


def summary(params: ParamsOption = Path("params.yaml")) -> None:
    """Say what the last pipeline run produced and where to look next."""
    from cycleml.config import ConfigError, load_params
    from cycleml.files import read_json

    paths = project_paths()
    try:
        p = load_params(params)
    except ConfigError as err:
        err_console.print(f"[red]{err}[/]")
        raise typer.Exit(2) from None
    decision_file = paths.report("register.json")
    if not decision_file.exists():
        err_console.print("no pipeline results yet: run `dvc repro` (or `make run`)")
        raise typer.Exit(1)
    d = read_json(decision_file)
    console.rule("[bold]cycleml")
    if d["registered"]:
        console.print(
            f"model [bold]{d['model_name']}[/] v{d['version']} is [bold]@{d['alias']}[/] "
            f"({d['primary_metric']} = {d['candidate']:.4f} on the test set)"
            + (f"; the champion stays v{d['champion_version']}" if d["alias"] != "champion" else "")
        )
    else:
        console.print(f"[yellow]no model registered:[/] {'; '.join(d['reasons'])}")
    beside = paths.metrics("baselines")
    if beside.exists():
        b = read_json(beside)
        console.print(
            f"business KPI {b['kpi']} on the test set: model {b['model']:,.2f}, best baseline "
            f"'{b['best_baseline']}' {b['best_baseline_kpi']:,.2f}: {b['verdict']}"
        )
    console.print(
        "\nwhere to look next:\n"
        "  make ui                  MLflow UI at http://127.0.0.1:5000 (runs, registry)\n"
        "  dvc metrics show         test metrics      (metrics/evaluate.json)\n"
        "  dvc plots show           ROC, confusion, learning curve -> dvc_plots/index.html\n"
        "  reports/explore.html     the data: distributions, target rates, correlations\n"
        "  reports/validate.html    data checks: contract, PII, leakage, outliers\n"
        "  reports/frame.md         the problem and the baselines a model must beat\n"
        f"  dvc exp run -S train.xgboost.n_estimators=600    try a change (experiment: "
        f"{p.tracking.experiment})"
    )


def predict(
    source: Annotated[Path, typer.Argument(help="rows to score: .csv, .csv.gz, .parquet, .pq")],
    output: Annotated[Path, typer.Argument(help="predictions; CSV or Parquet by extension")],
    version: Annotated[
        str,
        typer.Option(
            "--version",
            help="an alias (its version must be approved, as for the service) or a version "
            "number (any status: scoring a candidate before approving it is allowed, with a "
            "warning)",
        ),
    ] = "@champion",
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="rows per chunk (bounds memory)")
    ] = 100_000,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score a file of any size with a registered model, in chunks; written atomically.

    Each output row has the input's id columns, as typed in the file (or `row`, its
    position, when there are none), the prediction and the model's name and version.
    """
    from cycleml.config import load_params
    from cycleml.scoring.batch import BatchError, check_output, predict_file
    from cycleml.scoring.loaded import load_model

    try:  # before the model loads (seconds): a bad OUTPUT fails at once
        check_output(output)
    except BatchError as err:
        err_console.print(f"[red]✗ predict failed:[/] {err}")
        raise typer.Exit(1) from None
    with registry_client(params) as (client, name):
        model = load_model(client, name, version)
        _check_approval(version, model.version, model.tags)
        try:
            report = predict_file(
                source,
                output,
                model,
                chunk_rows,
                progress=sys.stderr.isatty(),
                na_values=load_params(params).data.clean.na_values,
            )
        except (BatchError, OSError) as err:  # OSError: e.g. the disk filled up
            err_console.print(f"[red]✗ predict failed:[/] {err}")
            raise typer.Exit(1) from None
    show(f"predict ({name} v{model.version})", report.lines())


def _check_approval(ref: str, number: str, tags: dict[str, str]) -> None:
    """An alias must name an approved version, as for the service (the MLflow UI moves
    aliases without asking); a version named by number may be scored whatever its status,
    with a warning, so a candidate can be tried before it is approved.

    Raises:
        NotApproved: ``ref`` is an alias and its version is not approved.
    """
    from cycleml.model.registry import APPROVED, PENDING, require_servable
    from cycleml.names import TAG_STATUS

    if not ref.lstrip("@").isdigit():
        require_servable(ref if ref.startswith("@") else "@" + ref, number, tags)
        return
    status = tags.get(TAG_STATUS, PENDING)
    if status != APPROVED:
        err_console.print(
            f"[yellow]! v{number} is {status}, not approved: scored because you named it; "
            "the service would not serve it[/]"
        )


def monitor(
    last: Annotated[
        int | None,
        typer.Option(
            "--last", min=1, help="the newest N predictions (default monitor.window_rows)"
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="predictions since: 24h, 7d, or 2026-11-20")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="model version (default: the one serving the newest row)"),
    ] = None,
    current: Annotated[
        Path | None,
        typer.Option(
            "--current",
            help="monitor a CSV/Parquet file instead of the prediction log (scored with "
            "--version, default @champion; its target column, if any, gives the labels)",
        ),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Drift, data quality and model quality of production data against the reference.

    Exit status: 0 ok, 3 drift (inputs or predictions moved), 4 degraded (labelled rows
    show the model got worse), 5 too_small (fewer than monitor.min_rows rows: drift not
    judged; widen the window), 1 error. Writes reports/monitor.html (+ monitor_quality.html),
    reports/monitor.json, metrics/monitor.json and a snapshot in the Evidently workspace.
    """
    from cycleml.config import load_params
    from cycleml.monitor import check as mon
    from cycleml.scoring.batch import BatchError

    with registry_client(params) as (client, _):
        p = load_params(params)
        try:
            with console.status("[bold]monitor[/]: window, reference, drift and quality…"):
                result = mon.run(
                    p,
                    project_paths(),
                    client,
                    last=last,
                    since=since,
                    version=version,
                    current=current,
                )
        except (mon.MonitorError, BatchError, FileNotFoundError) as err:
            err_console.print(f"[red]✗ monitor failed:[/] {err}")
            raise typer.Exit(1) from None
    name = result.model_name
    colour = {"ok": "green", "drift": "yellow", "degraded": "red", "too_small": "yellow"}[
        result.verdict
    ]
    console.print(
        f"[{colour}]● {result.verdict}[/] [bold]{name} v{result.model_version}[/] "
        f"({result.seconds:.1f} s)"
    )
    for line in mon.describe(result):
        console.print(f"  {line}")
    if result.verdict in (mon.DRIFT, mon.DEGRADED):
        console.print(
            "  next: `cycleml retrain` once labels have arrived, or `evidently ui --workspace "
            f"{p.monitor.workspace}` to see the trend"
        )
    raise typer.Exit(result.exit_code)


def retrain(
    repro: Annotated[
        bool, typer.Option("--repro/--no-repro", help="run `dvc repro` after adding the data")
    ] = True,
    reload: Annotated[
        str | None,
        typer.Option(
            "--reload",
            help="a running service's URL (http://127.0.0.1:3000): swap it to the new champion "
            "now (admin token from serving.admin_token_env) instead of at its next alias check",
        ),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Labelled predictions -> a new DVC-versioned data partition -> `dvc repro`.

    The register stage then decides: a model that beats the champion on test rows it
    never saw becomes champion; a service following the alias swaps to it with no downtime.
    """
    from cycleml.config import load_params
    from cycleml.monitor import retrain as rt

    with registry_client(params):
        p = load_params(params)
        try:
            done = rt.run(p, project_paths(), repro=repro)
        except rt.RetrainError as err:
            err_console.print(f"[red]✗ retrain:[/] {err}")
            raise typer.Exit(1) from None
    part = done.partition
    console.print(f"[green]✓[/] {part.rows:,} labelled rows -> {part.path}")
    if done.versioned:
        console.print(f"  versioned by DVC: {part.path.name}.dvc (commit it; `dvc push` the data)")
    d = done.decision
    if d is None:
        console.print("  next: `dvc repro` retrains on the new data version")
        return
    if d.get("registered") and d.get("alias") == "champion":
        console.print(f"[green]✓ retrain: v{d['version']} is the new @champion[/]")
    elif d.get("registered"):
        console.print(
            f"[yellow]retrain: v{d['version']} registered as @{d['alias']}; the champion "
            f"v{d.get('champion_version')} stays[/]"
        )
    else:
        console.print("[yellow]retrain: the new model missed the register gate; nothing changed[/]")
    for reason in d.get("reasons", []):
        console.print(f"  - {reason}")
    if reload:
        _reload_service(reload, p.serving.admin_token_env)


def _reload_service(url: str, token_env: str) -> None:
    """POST /admin/reload to a running service, with its admin token from the environment."""
    import os

    import httpx

    token = os.environ.get(token_env, "")
    if not token:
        err_console.print(f"[yellow]--reload: set {token_env} to the service's admin token[/]")
        raise typer.Exit(1)
    try:
        answer = httpx.post(
            url.rstrip("/") + "/admin/reload",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        answer.raise_for_status()
    except httpx.HTTPError as err:
        err_console.print(f"[red]✗ reload of {url} failed:[/] {err}")
        raise typer.Exit(1) from None
    info = answer.json()
    console.print(f"[green]✓[/] {url} now serves v{info['now']} (was v{info['before']})")


def loop(
    rows: Annotated[int, typer.Option(min=500, help="training rows of v1 (demo data)")] = 6000,
    traffic: Annotated[
        int, typer.Option(min=500, help="production requests per wave (labelled later)")
    ] = 5000,
    scenario: Annotated[
        str, typer.Option(help="drift scenario of the traffic: churn_propensity, price_rise, …")
    ] = "churn_propensity",
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials per training")] = 4,
    workspace: Annotated[Path, typer.Option(help="throwaway project folder (rebuilt)")] = Path(
        "loop"
    ),
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-S", help="a param in the loop's project: KEY=VALUE (YAML value)"),
    ] = None,
) -> None:
    """The whole lifecycle in one go: train v1, serve it, drifted traffic with late labels,
    monitor, retrain, promote v2 with no downtime, and a before/after summary."""
    from cycleml.config import ConfigError, apply_overrides
    from cycleml.data.demo import SCENARIOS
    from cycleml.demo import loop as lifecycle

    if scenario not in SCENARIOS:
        err_console.print(f"[red]--scenario: one of {', '.join(SCENARIOS)}[/]")
        raise typer.Exit(2)
    overrides = tuple(set_ or [])
    try:
        apply_overrides({}, overrides)  # a malformed item fails now, not after the training
    except ConfigError as err:
        err_console.print(f"[red]--set {err}[/]")
        raise typer.Exit(2) from None
    repo = project_paths().root
    settings = lifecycle.LoopSettings(
        rows=rows, traffic=traffic, scenario=scenario, trials=trials, overrides=overrides
    )
    console.rule("[bold]cycleml loop")
    try:
        with console.status("[bold]the loop is running…[/]") as status:

            def say(text: str) -> None:
                console.print(f"[green]●[/] {text}")
                status.update("[bold]the loop is running…[/]")

            outcome = lifecycle.run(repo, (repo / workspace).resolve(), settings, say)
    except ConfigError as err:
        err_console.print(f"[red]✗ loop: invalid --set[/]\n{err}")
        raise typer.Exit(2) from None
    except RuntimeError as err:
        err_console.print(f"[red]✗ loop failed:[/] {err}")
        raise typer.Exit(1) from None
    loop_summary(outcome)
