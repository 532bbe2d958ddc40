"""DPO data: ranking tasks -> one token sequence per completion, the reference's log-probs of each computed once, and
micro-batches whose rankings share their task's forward passes.

A batch holds whole tasks. Each completion of a task is one sequence (one policy forward pass, packed or padded:
`trainer.common.packing`), and every ranking of the task is one group (G, K) of indices into those sequences with
its ranks, so C(K,2) pairs (or a Plackett-Luce list) come from K passes. The reference's log-probabilities are
computed once per completion before training (`reference_logprobs`) and read from the task thereafter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.common.chat import to_messages
from trainer.common.packing import (
    CompletionBatch,
    TokenSequence,
    chat_pair_encoder,
    collate_packed,
    collate_padded,
    encode_sequence,
    sequence_logprobs,
)
from trainer.common.precision import bf16_autocast
from trainer.common.rankings import EXCLUDED, RankingRecord, TaskGroup, has_strict_pair


@dataclass
class DpoTask:
    """One task ready for DPO: its completions as sequences, their reference log-probs, its usable rankings."""

    task_id: int
    sequences: list[TokenSequence]
    rankings: list[RankingRecord]
    reference_logps: list[float] = field(default_factory=list)
    """Summed completion log-probability of each sequence under the frozen reference (`reference_logprobs`)."""

    @property
    def n_tokens(self) -> int:
        return sum(len(s.input_ids) for s in self.sequences)


def encode_dpo_tasks(tasks: Sequence[TaskGroup], tokenizer: Any, max_length: int) -> list[DpoTask]:
    """Tokenise every task through the one chat renderer; rankings without a strict pair, and tasks left without
    rankings, are dropped (ties and "all bad" teach DPO nothing). A completion that leaves no token after
    truncation is excluded from every ranking of its task."""
    encode_pair = chat_pair_encoder(tokenizer)
    out = []
    for task in tasks:
        messages = to_messages(task.prompt)
        encoded = [encode_sequence(encode_pair, messages, c, max_length=max_length) for c in task.completions]
        usable = [e is not None for e in encoded]
        rankings = [
            RankingRecord(
                [r if ok else EXCLUDED for r, ok in zip(rec.ranks, usable, strict=True)],
                rec.weight,
                rec.labeler,
                rec.ranking_id,
            )  # fmt: skip
            for rec in task.rankings
        ]
        rankings = [r for r in rankings if has_strict_pair(r.ranks)]
        if rankings:
            sequences = [e if e is not None else TokenSequence((0, 0), 1) for e in encoded]
            out.append(DpoTask(task.task_id, sequences, rankings))
    return out


@dataclass
class DpoBatch:
    """K sequences per task in one completion batch, G rankings over them."""

    sequences: CompletionBatch
    group_index: torch.Tensor  # (G, K) sequence of each slot, -1 = padding
    ranks: torch.Tensor  # (G, K) bucket, -1 = padding or left out
    reference_logps: torch.Tensor  # (G, K) the reference's log-prob of each slot (0 on padding)

    def to(self, device: torch.device | str) -> DpoBatch:
        return DpoBatch(self.sequences.to(device), self.group_index.to(device), self.ranks.to(device),
                        self.reference_logps.to(device))  # fmt: skip


def collate_dpo(tasks: Sequence[DpoTask], *, packing: bool, pad_id: int) -> DpoBatch:
    """Every sequence of the tasks (one pass each) and one (G, K) group per ranking."""
    sequences = [s for t in tasks for s in t.sequences]
    batch = collate_packed(sequences) if packing else collate_padded(sequences, pad_id=pad_id)
    width = max(len(t.sequences) for t in tasks)
    index, ranks, reference = [], [], []
    start = 0
    for task in tasks:
        k = len(task.sequences)
        logps = task.reference_logps or [0.0] * k
        for ranking in task.rankings:
            index.append(list(range(start, start + k)) + [-1] * (width - k))
            ranks.append(list(ranking.ranks) + [EXCLUDED] * (width - k))
            reference.append(list(logps) + [0.0] * (width - k))
        start += k
    return DpoBatch(batch, torch.tensor(index), torch.tensor(ranks), torch.tensor(reference, dtype=torch.float32))


def gather_groups(per_sequence: torch.Tensor, group_index: torch.Tensor) -> torch.Tensor:
    """(S,) per-sequence values -> (G, K) by `group_index`, 0 where it is -1."""
    return per_sequence[group_index.clamp(min=0)].masked_fill(group_index < 0, 0.0)


@torch.no_grad()
def reference_logprobs(
    reference: Any, tasks: Sequence[DpoTask], *, packing: bool, pad_id: int, batch_tasks: int = 8
) -> None:
    """Fill every task's `reference_logps` with one no-grad pass per completion through the frozen reference."""
    device = next(reference.parameters()).device
    for start in range(0, len(tasks), batch_tasks):
        chunk = tasks[start : start + batch_tasks]
        sequences = [s for t in chunk for s in t.sequences]
        batch = (collate_packed(sequences) if packing else collate_padded(sequences, pad_id=pad_id)).to(device)
        with bf16_autocast(True, device):
            logps = sequence_logprobs(reference, batch).float().cpu().tolist()
        for task in chunk:
            task.reference_logps, logps = logps[: len(task.sequences)], logps[len(task.sequences) :]
