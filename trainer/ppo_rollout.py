"""PPO rollouts: sample responses to a batch of prompts, score them, and record what the update needs.

An episode is prompt -> sampled response -> one score at the end (a bandit, InstructGPT section 3.5). Responses
are cut after their first EOS (the EOS is the last action, so it is kept in the mask); a response without EOS is
``finished = False`` and the trainer may penalise it. Generation runs in chunks, each with its own seed derived
from (run seed, step, global chunk index), so the same chunk of prompts gives the same responses on any process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from trainer.ppo_model import DEFAULT_CHUNK_TOKENS, forward_logprobs, forward_values
from trainer.sampling import batch_seed, format_prompt, has_chat_template

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class RewardInput:
    """What a reward function sees of a batch of episodes (rows in the same order)."""

    prompts: list[str]
    """Prompt texts as given (before any chat template)."""
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
class Rollout:
    """A batch of episodes; per-token fields are (B, Tr) over response tokens, 0 after EOS."""

    query_ids: Tensor
    query_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor
    finished: Tensor
    """(B,) the response ended with EOS."""
    scores: Tensor
    """(B,) the reward function's scores, before the no-EOS penalty and normalisation."""
    logprobs: Tensor | None = None
    """Policy log-probs at rollout time (the PPO "old" log-probs)."""
    ref_logprobs: Tensor | None = None
    values: Tensor | None = None
    entropy: Tensor | None = None

    def select(self, index: Tensor) -> Rollout:
        """The episodes at `index` (every tensor field indexed on its first dimension)."""
        picked = {f.name: getattr(self, f.name) for f in fields(self)}
        return Rollout(**{k: v[index] if isinstance(v, Tensor) else v for k, v in picked.items()})


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_prompt_length: int
) -> list[list[int]]:
    """Chat-formatted prompt ids, cut from the left to `max_prompt_length` (the generation prompt is kept)."""
    add_special = not has_chat_template(tokenizer)
    encoded = [tokenizer(format_prompt(tokenizer, p), add_special_tokens=add_special)["input_ids"] for p in prompts]
    return [ids[-max_prompt_length:] for ids in encoded]


def collate_queries(prompt_ids: Sequence[Sequence[int]], pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Left-pad prompt ids: (B, Tq) ids and (B, Tq) attention mask."""
    width = max(len(ids) for ids in prompt_ids)
    query_ids = torch.full((len(prompt_ids), width), pad_token_id, dtype=torch.long)
    query_mask = torch.zeros(len(prompt_ids), width, dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        if ids:
            query_ids[row, width - len(ids) :] = torch.as_tensor(list(ids))
            query_mask[row, width - len(ids) :] = 1
    return query_ids, query_mask


def truncate_after_eos(
    response_ids: Tensor, eos_ids: Sequence[int], pad_token_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(B, Tr) sampled ids -> (ids padded after the first EOS, mask up to and including it, (B,) finished)."""
    is_eos = torch.isin(response_ids, torch.as_tensor(list(eos_ids), device=response_ids.device))  # (B, Tr)
    finished = is_eos.any(-1)  # (B,)
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0  # (B, Tr): strictly after the first EOS
    mask = (~after_eos).long()
    return response_ids.masked_fill(after_eos, pad_token_id), mask, finished


@torch.no_grad()
def generate_responses(
    policy: PreTrainedModel,
    query_ids: Tensor,
    query_mask: Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    eos_ids: Sequence[int],
    pad_token_id: int,
    seed: int,
    cache_implementation: str | None = None,
) -> Tensor:
    """(B, Tq) left-padded prompts -> (B, max_new_tokens) sampled ids (KV-cached; pad after EOS; plain sampling)."""
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        eos_token_id=list(eos_ids),
        pad_token_id=pad_token_id,
        use_cache=True,
        cache_implementation=cache_implementation,
    )
    device = policy.device
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(seed)
        out = policy.generate(  # type: ignore[operator]
            input_ids=query_ids.to(device), attention_mask=query_mask.to(device), generation_config=config
        )  # (B, Tq + T_new), T_new <= max_new_tokens (it stops when every row has ended)
    responses = out[:, query_ids.shape[1] :]
    padding = responses.new_full((responses.shape[0], max_new_tokens - responses.shape[1]), pad_token_id)
    return torch.cat([responses, padding], dim=1)


def sample_rollout(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[Sequence[int]],
    prompt_texts: Sequence[str],
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
    reward_input = RewardInput(list(prompt_texts), texts, query_ids, query_mask, response_ids, response_mask, finished)
    scores = reward_fn(reward_input).detach().float().cpu().reshape(-1)
    if scores.shape[0] != len(prompt_ids):
        raise ValueError(f"reward function returned {scores.shape[0]} scores for {len(prompt_ids)} episodes")
    return Rollout(query_ids, query_mask, response_ids, response_mask, finished, scores), generation_seconds


def decode_responses(
    tokenizer: PreTrainedTokenizerBase, response_ids: Tensor, response_mask: Tensor, finished: Tensor
) -> list[str]:
    """Response texts without their EOS."""
    lengths = (response_mask.sum(-1) - finished.long()).tolist()  # (B,)
    rows = [ids[:n] for ids, n in zip(response_ids.tolist(), lengths, strict=True)]
    return [str(text) for text in tokenizer.batch_decode(rows, skip_special_tokens=True)]


def pack_episodes(rollout: Rollout) -> tuple[Tensor, Tensor, int]:
    """(input_ids, attention_mask, response_start) of ``query | response``, without columns that are padding in
    every row (so a micro-batch computes only what it needs; the same rows always give the same tensors)."""
    real_query = rollout.query_mask.any(0).nonzero()
    first = int(real_query[0]) if real_query.numel() else rollout.query_mask.shape[1] - 1
    width = max(int(rollout.response_mask.sum(-1).max()), 1)
    input_ids = torch.cat([rollout.query_ids[:, first:], rollout.response_ids[:, :width]], dim=1)
    attention_mask = torch.cat([rollout.query_mask[:, first:], rollout.response_mask[:, :width]], dim=1)
    return input_ids, attention_mask, rollout.query_ids.shape[1] - first


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
    (`trainer.reward_data.encode_completion`); without it the sampled tokens ``query | response`` are scored as
    they are (faster; right when the reward model was trained on the policy's own token layout).
    """
    from trainer.reward_data import encode_completion
    from trainer.reward_model import rewards, score_sequences

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
