"""The `ranklab` command line. Each feature registers its commands in its own module.

The console entry point is `trainer.cli:main`: it adds the commands that run trainer code (`worker`, `demo`) to
these, so that nothing in `app/` imports `trainer/`.
"""

from __future__ import annotations

import importlib

import typer

cli = typer.Typer(
    name="ranklab",
    help="ranklab: collect human preference rankings and turn them into aligned models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


COMMAND_MODULES = ("core", "export", "imports", "demonstrations", "users", "models", "simulate", "agreement", "ops")
"""Modules that register commands, in the order `ranklab --help` lists them."""


def register_commands() -> None:
    """Register the web side's commands (torch-free) on `cli`."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")
