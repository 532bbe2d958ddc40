"""A bounded disk cache of SFT samples for `trainer.gold.policy`: measuring several policies against one SFT model
draws the same SFT samples (same prompts, n, length, temperature, seed) every time, and on a CPU those samples are
most of a measurement's wall time. The key fingerprints the model folder's files (name, size, modification time), so
a model rewritten in place is sampled again; the newest `keep` entries are kept, older ones removed."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEEP = 16
"""Entries kept in a cache folder (each is a few hundred KB of text at most)."""


def folder_fingerprint(folder: Path) -> list[tuple[str, int, int]]:
    """(relative name, size, mtime ns) of every file under `folder`, sorted: what changes when its weights do."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        out.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return out


def cache_key(model_dir: Path, **parts: Any) -> str:
    """A stable hash of the model folder's fingerprint and the sampling settings `parts` (JSON-serialisable)."""
    payload = {"model": folder_fingerprint(model_dir), **parts}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cached_texts(cache_dir: Path | None, key: str, compute: Callable[[], list[str]], keep: int = KEEP) -> list[str]:
    """The texts stored under `key`, else `compute()` stored there (written atomically; the oldest entries beyond
    `keep` removed). No cache folder: always compute."""
    if cache_dir is None:
        return compute()
    path = cache_dir / f"{key}.json"
    if path.is_file():
        try:
            texts = json.loads(path.read_text())
            if isinstance(texts, list) and all(isinstance(t, str) for t in texts):
                os.utime(path)  # recently used: kept longest
                return texts
        except (OSError, ValueError):
            pass  # a damaged entry is recomputed and overwritten
    texts = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(texts))
    tmp.replace(path)
    entries = sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)
    return texts
