"""The ``cycleml`` command line, the top layer: it may import everything in cycleml.

``app`` holds the Typer app, the order of its commands and ``main``; ``pipeline`` the ten
stage commands; ``registry`` the registry's approval workflow and lineage; ``operate``
summary, predict, monitor, retrain and loop; ``render`` the consoles, the ``--params``
option, the error-to-exit-code contexts and the helpers that print results. Nothing below
the CLI imports it.
"""


def main() -> None:
    """The console script ``cycleml`` (``cycleml.cli:main``, as installed before the CLI
    became a package): runs :func:`cycleml.cli.app.main`, imported only when called."""
    from cycleml.cli.app import main as run

    run()
