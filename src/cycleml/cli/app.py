"""The `cycleml` command: one subcommand per pipeline stage, same names as in dvc.yaml.

Thin by design: parse, call one stage function, render the result. Heavy libraries are
imported inside the commands, so ``cycleml --help`` answers at once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cycleml.paths import Paths, project_paths

if TYPE_CHECKING:
    from cycleml.config import Params

__all__ = ["app", "main"]

app = typer.Typer(
    help="cycleml: the ML lifecycle on your machine. Run the whole pipeline with `dvc repro`; "
    "each stage below is one step of it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="params file (every knob of the pipeline)")
]


@contextmanager
def _stage(name: str, params_file: Path, spinner: bool = True) -> Iterator[tuple[Params, Paths]]:
    """Load params and paths, show a spinner, turn known errors into clear exits."""
    from cycleml.config import ConfigError, load_params
    from cycleml.data.sources import IngestError
    from cycleml.evaluation.baselines import RuleError
    from cycleml.stages.tune import TuneError
    from cycleml.stages.validate import ValidationFailed

    try:
        params = load_params(params_file)
        # a stage with its own progress bar (tune) runs without the spinner
        with console.status(f"[bold]{name}[/]…") if spinner else nullcontext():
            yield params, project_paths()
    except ConfigError as err:
        err_console.print(f"[red]✗ {name}: invalid params[/]\n{err}")
        raise typer.Exit(2) from None
    except (IngestError, ValidationFailed, RuleError, TuneError) as err:
        err_console.print(f"[red]✗ {name} failed:[/] {err}")
        raise typer.Exit(1) from None
    except FileNotFoundError as err:
        err_console.print(
            f"[red]✗ {name}: input {err.filename} is missing;[/] run the earlier stages first "
            "(`dvc repro` runs them in order)"
        )
        raise typer.Exit(1) from None


def _show(title: str, lines: list[str]) -> None:
    console.print(f"[green]✓[/] [bold]{title}[/]")
    for line in lines:
        console.print(f"  {line}")


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    return [f"{k:<20} {v:,.4f}" for k, v in metrics.items() if isinstance(v, float)]


@app.command()
def ingest(params: ParamsOption = Path("params.yaml")) -> None:
    """Read data.source, apply data.clean rules, write data/raw/data.parquet."""
    from cycleml.stages import ingest as stage

    with _stage("ingest", params) as (p, paths):
        report = stage.run(p, paths)
    _show("ingest", report.lines())


@app.command()
def validate(params: ParamsOption = Path("params.yaml")) -> None:
    """Check the raw table; fix task, target classes and features in data/interim/schema.json."""
    from cycleml.stages import validate as stage

    with _stage("validate", params) as (p, paths):
        report = stage.run(p, paths)
    lines = [f"{report.rows:,} rows, task: {report.task}"]
    if report.class_counts:
        lines.append("classes: " + ", ".join(f"{k}={v:,}" for k, v in report.class_counts.items()))
    lines += [f"[yellow]![/] {w}" for w in report.warnings]
    _show("validate", lines)


@app.command()
def explore(params: ParamsOption = Path("params.yaml")) -> None:
    """Profile the raw table: reports/explore.html, figures, target rate by feature."""
    from cycleml.stages import explore as stage

    with _stage("explore", params) as (p, paths):
        exp = stage.run(p, paths)
    _show("explore", [f"{exp.rows:,} rows -> {paths.report('explore.html')}", *exp.findings])


@app.command()
def split(params: ParamsOption = Path("params.yaml")) -> None:
    """Partition into data/split/{train,valid,test}.parquet (split.strategy, ratios, seed)."""
    from cycleml.stages import split as stage

    with _stage("split", params) as (p, paths):
        summary = stage.run(p, paths)
    _show("split", [f"{name}: {info}" for name, info in summary.items()])


@app.command()
def frame(params: ParamsOption = Path("params.yaml")) -> None:
    """Frame the problem: task, balance, and the baselines (dummy, rules) a model must beat."""
    from cycleml.stages import frame as stage

    with _stage("frame", params) as (p, paths):
        framing = stage.run(p, paths)
    _show("frame", stage.describe(framing))


@app.command()
def tune(params: ParamsOption = Path("params.yaml")) -> None:
    """Search train.xgboost with Optuna on validation data; write models/best_params.json."""
    from cycleml.stages import tune as stage

    with _stage("tune", params, spinner=False) as (p, paths):
        result = stage.run(p, paths)
    _show(f"tune ({result.objective})" if result.enabled else "tune (disabled)", result.lines())


@app.command()
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Fit the pipeline (preprocessing + XGBoost), log the run and model to MLflow."""
    from cycleml.stages import train as stage

    with _stage("train", params) as (p, paths):
        summary = stage.run(p, paths)
    _show(
        f"train: MLflow run {summary['run_id']}",
        [
            f"best iteration {summary['best_iteration']}: train loss "
            f"{summary['train_loss']:.4f}, valid loss {summary['valid_loss']:.4f}",
            f"model: {summary['model_uri']} (and {paths.model_dir})",
            f"fit: {summary['fit']['verdict']}: {summary['fit']['advice']}",
        ],
    )


@app.command()
def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Score the test split; write metrics/evaluate.json and plot data."""
    from cycleml.stages import evaluate as stage

    with _stage("evaluate", params) as (p, paths):
        result = stage.run(p, paths)
    baselines = result["baselines"]
    _show(
        "evaluate (test set)",
        [
            *_metric_lines(result["metrics"]),
            f"baselines ({baselines['kpi']}): "
            + ", ".join(f"{k} {v:,.2f}" for k, v in baselines["test"].items()),
            baselines["verdict"],
            *_in_depth_lines(result["reports"]),
        ],
    )


def _in_depth_lines(reports: dict[str, Any]) -> list[str]:
    lines = []
    fairness = reports["fairness"]
    if "skipped" not in fairness:
        breaks = fairness["violations"]
        lines.append(
            "fairness: " + ("within limits" if not breaks else f"{len(breaks)} limit(s) broken")
        )
        lines += [f"  [red]✗[/] {v['column']}: {v['metric']} {v['value']:.3f}" for v in breaks]
    for check in reports["behaviour"]:
        if "skipped" in check:
            lines.append(f"behaviour {check['name']}: skipped ({check['skipped']})")
        else:
            mark = "[green]✓[/]" if check["passed"] else "[red]✗[/]"
            lines.append(
                f"behaviour {mark} {check['name']}: {check['share_ok']:.1%} of rows as expected"
                f" (needs {check['min_share']:.0%})"
            )
    return lines


@app.command()
def register(params: ParamsOption = Path("params.yaml")) -> None:
    """Gate on register.criteria; register in MLflow as champion or challenger."""
    from cycleml.stages import register as stage

    with _stage("register", params) as (p, paths):
        d = stage.run(p, paths)
    if not d.registered:
        console.print(f"[yellow]✗ register: {d.model_name} not registered[/] (gate not met)")
        for reason in d.reasons:
            console.print(f"  - {reason}")
        console.print(f"  decision written to {paths.report('register.json')}")
        return
    _show(
        f"register: {d.model_name} v{d.version} -> @{d.alias}",
        [f"{d.primary_metric} = {d.candidate:.4f}", *d.reasons, *([d.scorer] if d.scorer else [])],
    )


@app.command()
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:])


# --- registry and lineage: not stages, but the registry's approval workflow -------------

registry_app = typer.Typer(
    help="The model registry with approval: list, approve, reject, promote, rollback.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")

ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="why (recorded on the version)")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="who decides (default: the current user)")
]
VersionArg = Annotated[str, typer.Argument(help="a version number, or an alias like @champion")]


@contextmanager
def _registry(params_file: Path) -> Iterator[tuple[Any, str]]:
    """An MLflow client on the configured store and the model name; clear errors."""
    from cycleml.config import ConfigError, load_params
    from cycleml.model.registry import RegistryError
    from cycleml.model.tracking import configure

    try:
        p = load_params(params_file)
        yield configure(p.tracking, project_paths()), p.register_.model_name
    except ConfigError as err:
        err_console.print(f"[red]✗ invalid params[/]\n{err}")
        raise typer.Exit(2) from None
    except RegistryError as err:
        err_console.print(f"[red]✗ {err}[/]")
        raise typer.Exit(1) from None


@registry_app.command("list")
def registry_list(params: ParamsOption = Path("params.yaml")) -> None:
    """Every version: aliases, approval status, decision and key test metrics."""
    from rich.table import Table

    from cycleml.model.registry import list_versions

    with _registry(params) as (client, name):
        rows = list_versions(client, name)
    if not rows:
        console.print(f"model {name!r} has no versions yet: run `dvc repro`")
        return
    table = Table(title=f"{name} — MLflow Model Registry")
    for column in ("version", "aliases", "status", "decision", "test metrics", "created", "reason"):
        table.add_column(column, overflow="fold")
    colours = {"approved": "green", "rejected": "red", "pending": "yellow"}
    for r in rows:
        table.add_row(
            r.version,
            ", ".join(f"@{a}" for a in r.aliases),
            f"[{colours.get(r.status, 'white')}]{r.status}[/]",
            r.decision,
            "  ".join(f"{k} {v:,.4g}" for k, v in r.metrics.items()),
            r.created,
            r.reason if len(r.reason) <= 70 else r.reason[:69] + "…",
        )
    console.print(table)


@registry_app.command()
def approve(
    version: VersionArg,
    reason: ReasonOption,
    by: ByOption = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Approve a version (manual mode); it becomes champion if it beat the champion."""
    from cycleml.model.registry import approve as do_approve

    with _registry(params) as (client, name):
        number, promoted = do_approve(client, name, version, reason, by)
    console.print(
        f"[green]✓[/] {name} v{number} approved"
        + (" and promoted to @champion" if promoted else "")
    )


@registry_app.command()
def reject(
    version: VersionArg,
    reason: ReasonOption,
    by: ByOption = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Reject a version: it can never become champion."""
    from cycleml.model.registry import reject as do_reject

    with _registry(params) as (client, name):
        number = do_reject(client, name, version, reason, by)
    console.print(f"[yellow]✓[/] {name} v{number} rejected: {reason}")


@registry_app.command()
def promote(version: VersionArg, params: ParamsOption = Path("params.yaml")) -> None:
    """Move @champion to an approved version (servers pick it up)."""
    from cycleml.model.registry import promote as do_promote

    with _registry(params) as (client, name):
        number = do_promote(client, name, version)
    console.print(f"[green]✓[/] {name} @champion -> v{number}")


@registry_app.command()
def rollback(params: ParamsOption = Path("params.yaml")) -> None:
    """Give @champion back to the previous approved champion."""
    from cycleml.model.registry import rollback as do_rollback

    with _registry(params) as (client, name):
        number = do_rollback(client, name)
    console.print(f"[green]✓[/] {name} @champion rolled back to v{number}")


@app.command()
def lineage(
    version: Annotated[str, typer.Argument(help="a version number or alias")] = "@champion",
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Which code, data and params made a version, and whether the workspace still matches."""
    from cycleml.config import load_params
    from cycleml.model.lineage import trace

    with _registry(params) as (client, name):
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


@app.command()
def predict(
    source: Annotated[Path, typer.Argument(help="rows to score: .csv, .csv.gz, .parquet, .pq")],
    target: Annotated[Path, typer.Argument(help="predictions; CSV or Parquet by extension")],
    version: Annotated[
        str, typer.Option("--version", help="a version number or alias")
    ] = "@champion",
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="rows per chunk (bounds memory)")
    ] = 100_000,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score a file of any size with a registered model, in chunks; written atomically."""
    from cycleml.config import load_params
    from cycleml.scoring.batch import BatchError, predict_file
    from cycleml.scoring.loaded import load_model

    with _registry(params) as (client, name):
        model = load_model(client, name, version)
        try:
            report = predict_file(
                source,
                target,
                model,
                chunk_rows,
                progress=sys.stderr.isatty(),
                na_values=load_params(params).data.clean.na_values,
            )
        except (BatchError, FileNotFoundError) as err:
            err_console.print(f"[red]✗ predict failed:[/] {err}")
            raise typer.Exit(1) from None
    _show(f"predict ({name} v{model.version})", report.lines())


@app.command()
def reference(params: ParamsOption = Path("params.yaml")) -> None:
    """Save the reference profile (held-out rows + predictions) that monitoring compares with."""
    from cycleml.stages import reference as stage

    with _stage("reference", params) as (p, paths):
        info = stage.run(p, paths)
    _show(
        "reference",
        [
            f"{info['rows']:,} held-out rows with predictions -> {paths.reference} (and run "
            f"{info['run_id']})"
        ],
    )


@app.command()
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
    show the model got worse), 1 error. Writes reports/monitor.html (+ monitor_quality.html),
    reports/monitor.json, metrics/monitor.json and a snapshot in the Evidently workspace.
    """
    from cycleml.config import load_params
    from cycleml.monitor import check as mon
    from cycleml.scoring.batch import BatchError

    with _registry(params) as (client, _):
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
    colour = {"ok": "green", "drift": "yellow", "degraded": "red"}[result.verdict]
    console.print(
        f"[{colour}]● {result.verdict}[/] [bold]{name} v{result.model_version}[/] "
        f"({result.seconds:.1f} s)"
    )
    for line in mon.describe(result):
        console.print(f"  {line}")
    if result.exit_code:
        console.print(
            "  next: `cycleml retrain` once labels have arrived, or `evidently ui --workspace "
            f"{p.monitor.workspace}` to see the trend"
        )
    raise typer.Exit(result.exit_code)


@app.command()
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

    with _registry(params):
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


@app.command()
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
    from cycleml.config import ConfigError
    from cycleml.data.demo import SCENARIOS
    from cycleml.demo import loop as lifecycle

    if scenario not in SCENARIOS:
        err_console.print(f"[red]--scenario: one of {', '.join(SCENARIOS)}[/]")
        raise typer.Exit(2)
    import yaml

    overrides = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err_console.print(f"[red]--set {item!r}: use KEY=VALUE, e.g. tune.n_trials=2[/]")
            raise typer.Exit(2)
        overrides[key.strip()] = yaml.safe_load(value)
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

            summary = lifecycle.run(repo, (repo / workspace).resolve(), settings, say)
    except ConfigError as err:
        err_console.print(f"[red]✗ loop: invalid --set[/]\n{err}")
        raise typer.Exit(2) from None
    except RuntimeError as err:
        err_console.print(f"[red]✗ loop failed:[/] {err}")
        raise typer.Exit(1) from None
    _loop_summary(summary)


def _loop_summary(s: dict[str, Any]) -> None:
    from rich.table import Table

    console.rule("[bold]summary")
    versions, kpi, m = s["versions"], s["kpi"], s["test_metrics"]
    table = Table(show_header=True)
    table.add_column("")
    table.add_column(f"before (v{versions['before']})", justify="right")
    table.add_column(f"after (v{versions['after']})", justify="right")
    for metric in m["before"]:  # each version on its own data version's test split
        table.add_row(
            f"{metric}, own test split",
            f"{m['before'][metric]:,.4f}",
            f"{m['after'].get(metric, 0):,.4f}",
        )
    table.add_row(
        "profit per customer, served",
        f"{kpi['wave_1_served_by_v1']:,.2f} (wave 1)",
        f"{kpi['wave_2_served_by_v2']:,.2f} (wave 2)",
    )
    table.add_row(
        "profit per customer, wave 2",
        f"{kpi['wave_2_if_v1_had_served']:,.2f} (had v1 served)",
        f"{kpi['wave_2_served_by_v2']:,.2f}",
    )
    table.add_row("monitor verdict", s["monitor"]["before"], s["monitor"]["after"])
    console.print(table)
    for reason in s["register"].get("reasons", []):
        console.print(f"register: {reason}")
    console.print(
        (
            "[green]v{after} promoted and serving[/]"
            if s["promoted"]
            else "[yellow]v{before} kept[/]"
        ).format(**versions)
        + f" — {s['seconds']['total']:.0f} s in all"
    )
    console.print("where to look:")
    for what, where in s["reports"].items():
        console.print(f"  {what:<22} {where}")
