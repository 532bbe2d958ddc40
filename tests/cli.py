"""Run the `ranklab` command line as a real subprocess, as an operator would."""

from __future__ import annotations

import subprocess
import sys


def ranklab(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`ranklab ARGS...` with this environment; its exit status, stdout and stderr."""
    command = [sys.executable, "-c", "from trainer.cli import main; main()", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=300)
