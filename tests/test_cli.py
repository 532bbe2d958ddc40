"""The `ranklab` command line, run as a real subprocess against a fresh SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from trainer.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_migrate_create_and_list_users(tmp_path):
    env = {**os.environ, "RANKLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "RANKLAB_DATA_DIR": str(tmp_path)}
    assert "migrate" in _run(["--help"], env).stdout
    out = _run(["migrate"], env)
    assert out.returncode == 0, out.stderr
    created = _run(["users", "create", "carol", "--role", "researcher", "--password-stdin"], env, "a-long-password\n")
    assert created.returncode == 0, created.stderr
    assert "created researcher 'carol'" in created.stdout
    dup = _run(["users", "create", "carol", "--role", "researcher", "--password-stdin"], env, "a-long-password\n")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    short = _run(["users", "create", "dave", "--role", "labeler", "--password-stdin"], env, "short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    listing = _run(["users", "list"], env)
    assert "carol" in listing.stdout and "researcher" in listing.stdout
    changed = _run(["users", "set-password", "carol", "--password-stdin"], env, "another-long-password\n")
    assert changed.returncode == 0 and "signed out" in changed.stdout, changed.stderr
    too_short = _run(["users", "set-password", "carol", "--password-stdin"], env, "short\n")
    assert too_short.returncode == 1 and "at least 8" in too_short.stderr
    nobody = _run(["users", "set-password", "nobody", "--password-stdin"], env, "another-long-password\n")
    assert nobody.returncode == 1 and "no user" in nobody.stderr
