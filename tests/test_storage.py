"""atomic_dir: a folder appears whole under its name or not at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.storage import ABANDONED_AFTER_S, atomic_dir, sweep_abandoned


def test_folder_appears_only_when_complete(tmp_path):
    target = tmp_path / "models" / "reward-1"
    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
        assert not target.exists()
    assert (target / "config.json").read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["reward-1"]


def test_error_leaves_nothing(tmp_path):
    target = tmp_path / "ckpt"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_replace_swaps_only_after_success(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "step").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target, replace=True) as tmp:
        (tmp / "step").write_text("2")
        raise RuntimeError("killed")
    assert (target / "step").read_text() == "1"
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "step").write_text("3")
    assert (target / "step").read_text() == "3"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    with pytest.raises(FileExistsError), atomic_dir(target):
        pass


def test_without_replace_a_folder_published_meanwhile_is_kept(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(OSError), atomic_dir(target) as tmp:
        (tmp / "weights").write_text("ours")
        target.mkdir()  # another process finished first
        (target / "weights").write_text("theirs")
    assert (target / "weights").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def _killed_writer(target: Path) -> None:
    """A process that dies (SIGKILL) half-way through writing `target`, as a worker killed mid-save does."""
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from app.storage import atomic_dir\n"
        "with atomic_dir(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'model.safetensors').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert done.returncode == -signal.SIGKILL


def test_sweep_removes_only_what_a_killed_writer_left_long_ago(tmp_path):
    models = tmp_path / "models"
    _killed_writer(models / "reward-job3-a1")
    (left,) = models.glob(".reward-job3-a1.*.partial")
    assert not (models / "reward-job3-a1").exists()
    with atomic_dir(models / "policy-job4-a1") as tmp:
        (tmp / "config.json").write_text("{}")
    (tmp_path / ".git").mkdir()  # hidden, but not ours
    (models / ".notes.partial").write_text("a file, not a folder")

    assert sweep_abandoned(tmp_path) == []  # just written: a writer might still be at work
    later = time.time() + ABANDONED_AFTER_S + 60
    assert sweep_abandoned(tmp_path, now=later) == [left]
    assert not left.exists()
    assert (models / "policy-job4-a1" / "config.json").exists() and (tmp_path / ".git").is_dir()
    assert (models / ".notes.partial").is_file()


def test_sweep_keeps_a_folder_still_being_written(tmp_path):
    partial = tmp_path / "checkpoints" / ".job7.abc.partial"
    partial.mkdir(parents=True)
    old = time.time() - 2 * ABANDONED_AFTER_S
    os.utime(partial, (old, old))
    (partial / "optimizer.pt").write_bytes(b"written just now")  # the newest change inside counts
    os.utime(partial, (old, old))
    assert sweep_abandoned(tmp_path) == []
    os.utime(partial / "optimizer.pt", (old, old))
    assert sweep_abandoned(tmp_path) == [partial]
