"""Folders that appear whole or not at all: model folders, checkpoints, exports under the data folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dir(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `target`; on success it is renamed to `target`.

    On an error the temporary folder is removed and `target` is untouched, so a reader (a worker on another
    machine, a resumed job) never sees a half-written folder. With `replace`, an existing `target` is swapped out
    (renamed aside, then removed) only after the new folder is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not replace:
        raise FileExistsError(f"{target} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if replace and target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "x")
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            # Without `replace`, a folder another writer published under the name meanwhile is kept: the rename
            # fails (OSError) and the caller decides (e.g. a concurrent conversion of the same model just uses it).
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


ABANDONED_AFTER_S = 24 * 3600.0
"""A `.partial` / `.old` folder untouched this long was left by a process that died while writing (or swapping)."""


def sweep_abandoned(root: Path, *, older_than_s: float = ABANDONED_AFTER_S, now: float | None = None) -> list[Path]:
    """Remove the hidden temporary folders `atomic_dir` leaves when its process is killed mid-write.

    Only folders named as `atomic_dir` names them (``.<name>.<random>.partial`` / ``.old``) and not modified for
    `older_than_s` go: a writer still at work (another worker, on a shared data folder) keeps touching its folder.
    Returns what was removed.
    """
    now = time.time() if now is None else now
    removed = []
    for suffix in (".partial", ".old"):
        for folder in Path(root).rglob(f".*{suffix}"):
            if folder.is_dir() and not folder.is_symlink() and now - _last_change(folder) > older_than_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _last_change(folder: Path) -> float:
    """The newest modification time of the folder or anything in it."""
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])


def _fsync_tree(folder: Path) -> None:
    """Flush every file so a crash right after the rename cannot leave empty files behind a complete name."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
