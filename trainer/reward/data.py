"""Reward-model data: rankings grouped by task, tokenised, length-grouped into batches and collated.

One task holds K completions of one prompt and every ranking of it (several labelers may rank the same task).
A batch holds whole tasks; each distinct completion is one row (one forward pass), and every ranking is one
group (G, K) of indices into those rows, so rankings of one task share the forward passes of its completions.
Plain Python types only at import time (torch is imported inside the tokenising and collating functions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainer.common.chat import to_messages
from trainer.common.rankings import (  # noqa: F401 (the reward trainer's names for them)
    EXCLUDED,
    RankingRecord,
    TaskGroup,
    has_strict_pair,
    length_grouped_batches,
    split_tasks,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class EncodedTask:
    """A task after tokenisation, keeping only rankings with at least one strict pair."""

    task_id: int
    sequences: list[list[int]]
    """Token ids of prompt + completion, one list per completion; never ending in the pad id."""
    rankings: list[RankingRecord]

    @property
    def n_tokens(self) -> int:
        return sum(len(s) for s in self.sequences)


@dataclass
class RewardBatch:
    """Tensors for one forward/backward pass; G rankings over N distinct completion rows.

    Plain mode: ``input_ids`` hold whole prompt + completion rows. Shared-prompt mode
    (`trainer.reward.shared`): ``input_ids`` hold only the completions' own tokens, and each row continues the
    prompt row ``prompt_of_row`` of ``prompt_ids``.
    """

    input_ids: torch.Tensor  # (N, T) right-padded
    attention_mask: torch.Tensor  # (N, T)
    group_index: torch.Tensor  # (G, K) row of each slot, -1 = padding
    ranks: torch.Tensor  # (G, K) bucket of each slot, -1 = padding or left out
    weights: torch.Tensor  # (G,)
    n_tokens: int = 0
    """Real (non-padding) tokens in the batch, each shared prompt counted once."""
    task_ids: list[int] = field(default_factory=list)
    prompt_ids: torch.Tensor | None = None  # (P, Tp) right-padded, shared-prompt mode only
    prompt_mask: torch.Tensor | None = None  # (P, Tp)
    prompt_of_row: torch.Tensor | None = None  # (N,) prompt row each completion row continues

    def to(self, device: Any) -> RewardBatch:
        moved = {k: v.to(device) if hasattr(v, "to") else v for k, v in vars(self).items()}
        return RewardBatch(**moved)


def encode_tasks(tasks: Sequence[TaskGroup], tokenizer: PreTrainedTokenizerBase, max_length: int) -> list[EncodedTask]:
    """Tokenise every task (`trainer.common.reward_model.encode_completion`); rankings without a strict pair, and
    tasks left without rankings, are dropped."""
    from trainer.common.reward_model import encode_completion

    encoded = []
    for task in tasks:
        rankings = [r for r in task.rankings if has_strict_pair(r.ranks)]
        if rankings:
            messages = to_messages(task.prompt)
            sequences = [encode_completion(tokenizer, messages, c, max_length) for c in task.completions]
            encoded.append(EncodedTask(task.task_id, sequences, rankings))
    return encoded


@dataclass(frozen=True)
class RankingLayout:
    """Which completion rows a list of tasks needs, and each ranking as a group of row indices."""

    rows: list[tuple[int, int]]
    """(task position, completion index) of each row: completions that at least one ranking places."""
    groups: list[list[int]]
    ranks: list[list[int]]
    weights: list[float]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """group_index (G, K), ranks (G, K), weights (G,), padded with -1 to the largest K."""
        import torch

        k_max = max(len(g) for g in self.groups)
        group_index = torch.tensor([g + [EXCLUDED] * (k_max - len(g)) for g in self.groups])  # (G, K)
        ranks = torch.tensor([r + [EXCLUDED] * (k_max - len(r)) for r in self.ranks])  # (G, K)
        return group_index, ranks, torch.tensor(self.weights, dtype=torch.float32)


def layout_rankings(tasks: Sequence[EncodedTask], *, use_weights: bool = True) -> RankingLayout:
    """One row per used completion (shared by every ranking of its task), one group per ranking."""
    layout = RankingLayout([], [], [], [])
    for t, task in enumerate(tasks):
        used = [k for k in range(len(task.sequences)) if any(r.ranks[k] != EXCLUDED for r in task.rankings)]
        row_of = {k: len(layout.rows) + i for i, k in enumerate(used)}
        layout.rows.extend((t, k) for k in used)
        for ranking in task.rankings:
            layout.groups.append([row_of[k] if r != EXCLUDED else EXCLUDED for k, r in enumerate(ranking.ranks)])
            layout.ranks.append(list(ranking.ranks))
            layout.weights.append(ranking.weight if use_weights else 1.0)
    return layout


def pad_right(
    rows: Sequence[list[int]], pad_token_id: int, pad_to_multiple_of: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input_ids (N, T) and attention_mask (N, T)."""
    import torch

    width = -(-max(len(r) for r in rows) // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (N, T)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (N, T)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


def collate_rankings(
    tasks: Sequence[EncodedTask], *, pad_token_id: int, use_weights: bool = True, pad_to_multiple_of: int = 1
) -> RewardBatch:
    """One row per completion that some ranking uses, one group per ranking; right padding."""
    layout = layout_rankings(tasks, use_weights=use_weights)
    rows = [tasks[t].sequences[k] for t, k in layout.rows]
    input_ids, attention_mask = pad_right(rows, pad_token_id, pad_to_multiple_of)
    group_index, ranks, weights = layout.tensors()
    return RewardBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        group_index=group_index,
        ranks=ranks,
        weights=weights,
        n_tokens=sum(len(r) for r in rows),
        task_ids=[t.task_id for t in tasks],
    )


def split_labelers(tasks: Sequence[TaskGroup], held_out: set[str]) -> tuple[list[TaskGroup], list[TaskGroup]]:
    """Leave-labelers-out: (tasks with only the other labelers' rankings, tasks with only `held_out`'s)."""
    kept, out = [], []
    for task in tasks:
        mine = [r for r in task.rankings if r.labeler in held_out]
        rest = [r for r in task.rankings if r.labeler not in held_out]
        if rest:
            kept.append(TaskGroup(task.task_id, task.prompt, task.completions, rest, task.completion_ids))
        if mine:
            out.append(TaskGroup(task.task_id, task.prompt, task.completions, mine, task.completion_ids))
    return kept, out
