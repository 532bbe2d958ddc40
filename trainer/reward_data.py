"""Reward-model data: rankings grouped by task, tokenised, length-grouped into batches and collated.

One task holds K completions of one prompt and every ranking of it (several labelers may rank the same task).
A batch holds whole tasks; each distinct completion is one row (one forward pass), and every ranking is one
group (G, K) of indices into those rows, so rankings of one task share the forward passes of its completions.
Plain Python types only at import time (torch is imported inside the collator).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

EXCLUDED = -1
"""Rank of a completion left out of a ranking (flagged and excluded); such a completion is in no pair."""


@dataclass(frozen=True)
class RankingRecord:
    """One labeler's ranking of a task's completions."""

    ranks: list[int]
    """Bucket index per completion, 0 = best; ties share an index; -1 = left out of this ranking."""
    weight: float = 1.0
    """Weight of this ranking in the loss (e.g. from labeler agreement); used when the config asks for it."""
    labeler: str = ""
    """Who ranked (for leave-labelers-out evaluation)."""
    ranking_id: int | None = None
    """Database id, for tracing only."""


@dataclass(frozen=True)
class TaskGroup:
    """One task: a prompt, its K completions, and every ranking of them."""

    task_id: int
    """Database id of the ranking task (the unit of the train/validation split)."""
    prompt: str
    """The prompt as shown to the labelers."""
    completions: list[str]
    """The K completion texts, in the order the ranks refer to."""
    rankings: list[RankingRecord]
    """Every usable ranking of this task ("not rankable" answers are left out by the caller)."""
    completion_ids: list[int] | None = None
    """Database ids of the completions, for tracing only."""

    def __post_init__(self) -> None:
        k = len(self.completions)
        for ranking in self.rankings:
            if len(ranking.ranks) != k or any(r < EXCLUDED for r in ranking.ranks):
                raise ValueError(f"task {self.task_id}: ranks {ranking.ranks} do not fit {k} completions")


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
    (`trainer.reward_shared`): ``input_ids`` hold only the completions' own tokens, and each row continues the
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


def has_strict_pair(ranks: Sequence[int]) -> bool:
    """True when at least two ranked completions sit in different buckets."""
    return len({r for r in ranks if r != EXCLUDED}) >= 2


def format_text(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str) -> tuple[str, bool]:
    """Text the reward model reads, and whether it already holds the special tokens (chat template)."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return str(text), True
    return f"{prompt}\n\n{completion}", False


def encode_completion(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str, max_length: int) -> list[int]:
    """Token ids of one (prompt, completion), truncated from the left (prompt first) to `max_length`.

    A trailing pad id is dropped: with pad = EOS, Hugging Face's sequence-classification head reads the reward at
    the last token that is not the pad id, so a sequence ending in it would be scored elsewhere once saved.
    """
    text, templated = format_text(tokenizer, prompt, completion)
    ids: list[int] = tokenizer(text, add_special_tokens=not templated)["input_ids"]
    ids = ids[-max_length:]
    while ids and ids[-1] == tokenizer.pad_token_id:
        ids.pop()
    if not ids:
        raise ValueError(f"empty sequence for prompt {prompt[:40]!r} and completion {completion[:40]!r}")
    return ids


def encode_tasks(tasks: Sequence[TaskGroup], tokenizer: PreTrainedTokenizerBase, max_length: int) -> list[EncodedTask]:
    """Tokenise every task; rankings without a strict pair, and tasks left without rankings, are dropped."""
    encoded = []
    for task in tasks:
        rankings = [r for r in task.rankings if has_strict_pair(r.ranks)]
        if rankings:
            sequences = [encode_completion(tokenizer, task.prompt, c, max_length) for c in task.completions]
            encoded.append(EncodedTask(task.task_id, sequences, rankings))
    return encoded


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, mega_batch_size: int = 16
) -> list[list[int]]:
    """Batches of item indices: shuffled, sorted by length within mega-batches, batch order shuffled.

    Deterministic for (seed, epoch), so a resumed run finds its position again from a batch counter.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    mega = batch_size * mega_batch_size
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


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


def split_tasks(
    tasks: Sequence[TaskGroup], val_fraction: float, *, seed: int = 0
) -> tuple[list[TaskGroup], list[TaskGroup]]:
    """Split by task (so by prompt): (train, validation), seeded."""
    order = list(range(len(tasks)))
    random.Random(seed).shuffle(order)
    n_val = round(len(tasks) * val_fraction)
    val = set(order[:n_val])
    return [t for i, t in enumerate(tasks) if i not in val], [t for i, t in enumerate(tasks) if i in val]


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
