"""The `ranklab` command line. Each feature registers its commands in its own module."""

from __future__ import annotations

import typer

cli = typer.Typer(
    name="ranklab",
    help="ranklab: collect human preference rankings and turn them into aligned models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console entry point."""
    from app.cli import core, export, imports, simulate, users, worker  # noqa: F401 - register commands

    cli()
