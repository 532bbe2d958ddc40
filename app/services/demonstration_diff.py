"""What a labeler changed when rewriting a sampled output: a line diff for the review page (pure, no database)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

DiffKind = Literal["same", "added", "removed"]


@dataclass(frozen=True)
class DiffLine:
    """One line of the diff: kept, added by the labeler, or removed from the sampled output."""

    kind: DiffKind
    text: str


@dataclass(frozen=True)
class RewriteDiff:
    """The line diff of a rewrite and how much of the sampled output it kept."""

    lines: list[DiffLine]
    added: int
    removed: int
    similarity: float
    """difflib's ratio over lines: 1.0 unchanged, 0.0 nothing in common."""


def rewrite_diff(source: str, rewritten: str) -> RewriteDiff:
    """The line-by-line diff from the sampled output ``source`` to the labeler's ``rewritten`` answer."""
    before, after = source.splitlines(), rewritten.splitlines()
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    lines: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            lines += [DiffLine("same", text) for text in before[i1:i2]]
            continue
        lines += [DiffLine("removed", text) for text in before[i1:i2]]
        lines += [DiffLine("added", text) for text in after[j1:j2]]
    added = sum(line.kind == "added" for line in lines)
    removed = sum(line.kind == "removed" for line in lines)
    similarity = matcher.ratio() if before or after else 1.0
    return RewriteDiff(lines=lines, added=added, removed=removed, similarity=similarity)
