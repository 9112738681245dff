"""What every command shares: the consoles, the ``--params`` option, the two contexts that
turn known errors into a clear message and an exit code, and the helpers that render results.

Exit codes: 2 for invalid params, 1 for a stage or registry error (monitor adds 3 and 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cycleml.paths import Paths, project_paths

if TYPE_CHECKING:
    from cycleml.config import Params

__all__ = [
    "ParamsOption",
    "console",
    "err_console",
    "in_depth_lines",
    "loop_summary",
    "metric_lines",
    "registry_client",
    "running_stage",
    "show",
]

console = Console()
err_console = Console(stderr=True)

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="params file (every knob of the pipeline)")
]


@contextmanager
def running_stage(
    name: str, params_file: Path, spinner: bool = True
) -> Iterator[tuple[Params, Paths]]:
    """Load params and paths, show a spinner, turn known errors into clear exits."""
    from cycleml.config import ConfigError, load_params
    from cycleml.data.sources import IngestError
    from cycleml.data.validation_report import ValidationFailed
    from cycleml.evaluation.baselines import RuleError
    from cycleml.model.tracking import StoreError
    from cycleml.tuning.space import TuneError

    try:
        params = load_params(params_file)
        # a stage with its own progress bar (tune) runs without the spinner
        with console.status(f"[bold]{name}[/]…") if spinner else nullcontext():
            yield params, project_paths()
    except ConfigError as err:
        err_console.print(f"[red]✗ {name}: invalid params[/]\n{err}")
        raise typer.Exit(2) from None
    except (IngestError, ValidationFailed, RuleError, TuneError, StoreError) as err:
        err_console.print(f"[red]✗ {name} failed:[/] {err}")
        raise typer.Exit(1) from None
    except FileNotFoundError as err:
        err_console.print(
            f"[red]✗ {name}: input {err.filename} is missing;[/] run the earlier stages first "
            "(`dvc repro` runs them in order)"
        )
        raise typer.Exit(1) from None


@contextmanager
def registry_client(params_file: Path) -> Iterator[tuple[Any, str]]:
    """An MLflow client on the configured store and the model name; clear errors."""
    from cycleml.config import ConfigError, load_params
    from cycleml.model.registry import RegistryError
    from cycleml.model.tracking import StoreError, configure

    try:
        p = load_params(params_file)
        yield configure(p.tracking, project_paths()), p.register_.model_name
    except ConfigError as err:
        err_console.print(f"[red]✗ invalid params[/]\n{err}")
        raise typer.Exit(2) from None
    except (RegistryError, StoreError) as err:
        err_console.print(f"[red]✗ {err}[/]")
        raise typer.Exit(1) from None


def show(title: str, lines: list[str]) -> None:
    """A green tick, the title, then the lines indented."""
    console.print(f"[green]✓[/] [bold]{title}[/]")
    for line in lines:
        console.print(f"  {line}")


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    """One aligned line per float metric."""
    return [f"{k:<20} {v:,.4f}" for k, v in metrics.items() if isinstance(v, float)]


def in_depth_lines(reports: dict[str, Any]) -> list[str]:
    """Fairness limits and behavioural checks of evaluate's in-depth reports."""
    lines = []
    fairness = reports["fairness"]
    if "skipped" in fairness:
        lines.append(f"fairness: not checked ({fairness['skipped']})")
    else:
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


def loop_summary(s: dict[str, Any]) -> None:
    """The loop's before/after table, the register reasons and where the reports are."""
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
