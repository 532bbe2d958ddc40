"""PPO rollouts: sample responses to a batch of prompts, score them, and record what the update needs.

An episode is prompt -> sampled response -> one score at the end (a bandit, InstructGPT section 3.5). Responses
are cut after their first EOS (the EOS is the last action, so it is kept in the mask); a response without EOS is
``finished = False`` and the trainer may penalise it. Generation runs in chunks, each with its own seed derived
from (run seed, step, global chunk index), so the same chunk of prompts gives the same responses on any process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from trainer.common.chat import Message
from trainer.common.generation import (
    Episodes,
    batch_seed,
    collate_queries,
    decode_responses,
    generate_responses,
    pack_episodes,
    truncate_after_eos,
)
from trainer.common.logprobs import DEFAULT_CHUNK_TOKENS, forward_logprobs
from trainer.common.lora import adapters_disabled
from trainer.common.reward_model import encode_completion, rewards, score_sequences
from trainer.ppo.model import forward_values

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class RewardInput:
    """What a reward function sees of a batch of episodes (rows in the same order)."""

    prompts: list[list[Message]]
    """The prompt conversations as given (before any chat template)."""
    responses: list[str]
    """Decoded responses, EOS and everything after it removed."""
    query_ids: Tensor
    """(B, Tq) left-padded prompt ids as the policy saw them."""
    query_mask: Tensor
    """(B, Tq) 1 on real prompt tokens."""
    response_ids: Tensor
    """(B, Tr) response ids, padded after EOS."""
    response_mask: Tensor
    """(B, Tr) 1 on response tokens up to and including EOS."""
    finished: Tensor
    """(B,) True where the response ended with EOS."""


RewardFn = Callable[[RewardInput], Tensor]
"""Maps a batch of episodes to (B,) scores (a reward model, or a programmatic reward in tests)."""


@dataclass
class Rollout(Episodes):
    """A batch of PPO episodes; per-token fields are (B, Tr) over response tokens, 0 after EOS. `scores` are the
    reward function's, before the no-EOS penalty and normalisation."""

    logprobs: Tensor | None = None
    """Policy log-probs at rollout time (the PPO "old" log-probs)."""
    ref_logprobs: Tensor | None = None
    values: Tensor | None = None
    entropy: Tensor | None = None


def sample_rollout(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[Sequence[int]],
    prompts: Sequence[Sequence[Message]],
    reward_fn: RewardFn,
    *,
    max_new_tokens: int,
    temperature: float,
    eos_ids: Sequence[int],
    generation_batch_size: int,
    seed: int,
    step: int,
    first_chunk: int = 0,
    cache_implementation: str | None = None,
) -> tuple[Rollout, float]:
    """Generate and score one batch of episodes; returns the rollout (on CPU) and the seconds spent generating.

    Chunk ``j`` of this call is global chunk ``first_chunk + j`` (its seed), so processes that split one batch
    produce exactly the episodes one process would.
    """
    import time

    pad = int(tokenizer.pad_token_id)
    query_ids, query_mask = collate_queries(prompt_ids, pad)
    started, pieces = time.perf_counter(), []
    for j, start in enumerate(range(0, len(prompt_ids), generation_batch_size)):
        rows = slice(start, start + generation_batch_size)
        ids, mask = collate_queries(prompt_ids[rows], pad)
        sampled = generate_responses(
            policy, ids, mask,
            max_new_tokens=max_new_tokens, temperature=temperature, eos_ids=eos_ids, pad_token_id=pad,
            seed=batch_seed(seed, step, first_chunk + j), cache_implementation=cache_implementation,
        )  # fmt: skip
        pieces.append(sampled.cpu())
    generation_seconds = time.perf_counter() - started
    response_ids, response_mask, finished = truncate_after_eos(torch.cat(pieces), eos_ids, pad)
    texts = decode_responses(tokenizer, response_ids, response_mask, finished)
    reward_input = RewardInput(
        [list(p) for p in prompts], texts, query_ids, query_mask, response_ids, response_mask, finished
    )
    scores = reward_fn(reward_input).detach().float().cpu().reshape(-1)
    if scores.shape[0] != len(prompt_ids):
        raise ValueError(f"reward function returned {scores.shape[0]} scores for {len(prompt_ids)} episodes")
    return Rollout(query_ids, query_mask, response_ids, response_mask, finished, scores), generation_seconds


def pad_response_width(values: Tensor, width: int) -> Tensor:
    """(B, w) -> (B, width) with zeros on the right."""
    return torch.nn.functional.pad(values, (0, width - values.shape[1]))


@torch.no_grad()
def score_rollout(
    rollout: Rollout,
    policy: PreTrainedModel,
    ref_policy: PreTrainedModel,
    value_model: PreTrainedModel,
    chunks: Sequence[Tensor],
    *,
    temperature: float,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> None:
    """Fill the rollout's old log-probs, reference log-probs, values and entropy, one micro-batch per chunk.

    `chunks` are the row indices of the update's first-epoch micro-batches: the first update pass then sees the
    very tensors scored here, so its PPO ratio is exactly 1.
    """
    width = rollout.response_ids.shape[1]
    out = {k: torch.zeros(rollout.response_ids.shape) for k in ("logprobs", "ref_logprobs", "values", "entropy")}
    for index in chunks:
        input_ids, attention_mask, start = pack_episodes(rollout.select(index))
        device = policy.device
        logprobs, entropy = forward_logprobs(
            policy, input_ids.to(device), attention_mask.to(device), start,
            temperature=temperature, chunk_tokens=chunk_tokens, with_entropy=True,
        )  # fmt: skip
        with adapters_disabled(ref_policy):  # with LoRA the reference is the policy itself, adapters off
            ref, _ = forward_logprobs(
                ref_policy, input_ids, attention_mask, start, temperature=temperature, chunk_tokens=chunk_tokens
            )
        values = forward_values(value_model, input_ids, attention_mask, start)
        assert entropy is not None
        for key, value in (("logprobs", logprobs), ("ref_logprobs", ref), ("values", values), ("entropy", entropy)):
            out[key][index] = pad_response_width(value.float().cpu(), width)
    mask = rollout.response_mask.float()
    rollout.logprobs, rollout.ref_logprobs = out["logprobs"] * mask, out["ref_logprobs"] * mask
    rollout.values, rollout.entropy = out["values"] * mask, out["entropy"] * mask


def reward_model_fn(
    reward_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    max_length: int = 512,
    batch_size: int = 32,
) -> RewardFn:
    """A `RewardFn` scoring episodes with a ranklab reward model (offset applied, read at the last real token).

    With `tokenizer`, each (prompt, response text) is re-encoded exactly as the reward model was trained
    (`trainer.common.reward_model.encode_completion`); without it the sampled tokens ``query | response`` are scored as
    they are (faster; right when the reward model was trained on the policy's own token layout).
    """

    def by_text(batch: RewardInput) -> Tensor:
        assert tokenizer is not None
        pairs = zip(batch.prompts, batch.responses, strict=True)
        sequences = [encode_completion(tokenizer, p, r, max_length) for p, r in pairs]
        return score_sequences(reward_model, sequences, pad_token_id=int(tokenizer.pad_token_id), batch_size=batch_size)

    @torch.no_grad()
    def by_tokens(batch: RewardInput) -> Tensor:
        episodes = Rollout(
            batch.query_ids, batch.query_mask, batch.response_ids, batch.response_mask, batch.finished,
            torch.zeros(len(batch.prompts)),
        )  # fmt: skip
        out = []
        for start in range(0, len(batch.prompts), batch_size):
            input_ids, attention_mask, _ = pack_episodes(
                episodes.select(torch.arange(start, min(start + batch_size, len(batch.prompts))))
            )
            device = reward_model.device
            out.append(rewards(reward_model, input_ids.to(device), attention_mask.to(device)).float().cpu())
        return torch.cat(out)

    return by_text if tokenizer is not None else by_tokens
