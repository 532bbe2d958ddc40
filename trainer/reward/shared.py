"""Shared-prompt mode: each task's prompt is encoded once and its K completions continue from that one pass.

The prompt rows run with a KV cache; the cache is then gathered so that every completion row sees its own
task's prompt keys and values (``Cache.batch_select_indices``), and the completion rows run on top with
positions continuing after the prompt. Attention sees exactly what it sees in the plain mode (the same tokens,
positions and mask), so the rewards are the same; gradients into the prompt flow back through the gathered cache.

The split point is the longest token prefix common to all K sequences of a task (each keeping at least one
token of its own), so it never depends on how a tokenizer merges across the prompt/completion boundary.
Not combinable with activation checkpointing (the cached pass is not re-run in the backward).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from trainer.common.reward_model import last_token_index, reward_offset
from trainer.reward.data import EncodedTask, RewardBatch, layout_rankings, pad_right

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def split_shared_prompt(sequences: Sequence[list[int]], max_length: int) -> tuple[list[int], list[list[int]]]:
    """(prompt, K responses): the longest common prefix, each response keeping >= 1 token; then truncated so
    prompt + longest response <= `max_length` (responses keep their ends, the prompt loses its start first)."""
    shortest = min(len(s) for s in sequences)
    split = 0
    while split < shortest - 1 and all(s[split] == sequences[0][split] for s in sequences):
        split += 1
    if split == 0:
        raise ValueError("the task's sequences share no leading token; use the plain (unshared) mode")
    responses = [list(s[split:])[-(max_length - 1) :] for s in sequences]
    room = max_length - max(len(r) for r in responses)
    return list(sequences[0][:split])[-room:], responses


def collate_shared_prompt(
    tasks: Sequence[EncodedTask],
    *,
    pad_token_id: int,
    max_length: int,
    use_weights: bool = True,
    pad_to_multiple_of: int = 1,
) -> RewardBatch:
    """Like `collate_rankings`, with one prompt row per task and completion rows holding only their own tokens.

    `tasks` should be encoded without truncation (`encode_tasks(..., max_length=<large>)`); truncation to
    `max_length` happens here, per task.
    """
    layout = layout_rankings(tasks, use_weights=use_weights)
    splits = [split_shared_prompt(task.sequences, max_length) for task in tasks]
    prompts = [prompt for prompt, _ in splits]
    rows = [splits[t][1][k] for t, k in layout.rows]
    prompt_ids, prompt_mask = pad_right(prompts, pad_token_id, pad_to_multiple_of)
    input_ids, attention_mask = pad_right(rows, pad_token_id, pad_to_multiple_of)
    group_index, ranks, weights = layout.tensors()
    return RewardBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        group_index=group_index,
        ranks=ranks,
        weights=weights,
        n_tokens=sum(len(p) for p in prompts) + sum(len(r) for r in rows),
        task_ids=[t.task_id for t in tasks],
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        prompt_of_row=torch.tensor([t for t, _ in layout.rows]),
    )


def _cache_kwarg(base: torch.nn.Module) -> str:
    """transformers 5 names the KV-cache argument ``cache``; 4.x named it ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def shared_prompt_rewards(
    model: PreTrainedModel,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    prompt_of_row: Tensor,
) -> Tensor:
    """(P, Tp) prompts + (N, T) continuations of prompt ``prompt_of_row`` -> (N,) rewards, minus the offset."""
    base = model.base_model
    cache_name = _cache_kwarg(base)
    prompt_positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)  # (P, Tp)
    out: Any = base(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=prompt_positions, use_cache=True)
    cache = getattr(out, cache_name)
    cache.batch_select_indices(prompt_of_row)  # (P, ...) -> (N, ...)
    full_mask = torch.cat([prompt_mask[prompt_of_row], attention_mask], dim=-1)  # (N, Tp + T)
    positions = prompt_mask.long().sum(-1)[prompt_of_row, None] + torch.arange(
        input_ids.shape[1], device=input_ids.device
    )  # (N, T)
    hidden = base(
        input_ids=input_ids, attention_mask=full_mask, position_ids=positions, use_cache=True, **{cache_name: cache}
    ).last_hidden_state  # (N, T, H)
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]  # (N, H)
    head: torch.nn.Module = model.score  # type: ignore[assignment]
    return head(last).squeeze(-1).float() - reward_offset(model)  # (N,)
