"""The `cycleml` command: the Typer app, its command tree and ``main`` (the console script).

Thin by design: parse, call one stage or library function, render the result. The
commands live by theme (:mod:`~cycleml.cli.pipeline`, :mod:`~cycleml.cli.registry`,
:mod:`~cycleml.cli.operate`); they are registered here, in the order ``cycleml --help``
lists them. Heavy libraries are imported inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import sys

import typer

from cycleml.cli import operate, pipeline, registry

__all__ = ["app", "main"]

app = typer.Typer(
    help="cycleml: the ML lifecycle on your machine. Run the whole pipeline with `dvc repro`; "
    "each stage below is one step of it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (
    pipeline.ingest,
    pipeline.validate,
    pipeline.explore,
    pipeline.split,
    pipeline.frame,
    pipeline.tune,
    pipeline.train,
    pipeline.evaluate,
    pipeline.register,
    operate.summary,
    registry.lineage,
    operate.predict,
    pipeline.reference,
    operate.monitor,
    operate.retrain,
    operate.loop,
):
    app.command()(command)

# not stages, but the registry's approval workflow
registry_app = typer.Typer(
    help="The model registry with approval: list, approve, reject, promote, rollback.",
    no_args_is_help=True,
)
registry_app.command("list")(registry.registry_list)
for action in (registry.approve, registry.reject, registry.promote, registry.rollback):
    registry_app.command()(action)
app.add_typer(registry_app, name="registry")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:])
