"""Generation shared by sampling, PPO and evaluation: prompt ids, left-padded queries, seeded KV-cached sampling,
responses cut after their first EOS, and the episode layout every log-prob pass reads.

An episode is ``query | response``: queries are left-padded (the prompt's ids from `trainer.common.chat`), responses
right-padded after their first EOS (the EOS is the last action, so it is kept in the mask); a response without EOS
is ``finished = False``. Every generate call gets an explicit attention mask (pad may equal EOS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
from torch import Tensor

from trainer.common.chat import Message, as_messages, encode_prompt
from trainer.common.precision import cpu_bf16_autocast

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def batch_seed(seed: int, round_index: int, batch_index: int) -> int:
    """A well-mixed 32-bit seed for one batch of one round (or step)."""
    return int(np.random.SeedSequence([seed, round_index, batch_index]).generate_state(1)[0])


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Every id that ends generation: the generation config's EOS ids and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return {int(i) for i in ids if i is not None}


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str | Sequence[Message]], max_prompt_length: int
) -> list[list[int]]:
    """Prompt ids (`trainer.common.chat.encode_prompt`) of texts or conversations, cut from the left to
    `max_prompt_length` (the generation prompt at the end is kept)."""
    encoded = [encode_prompt(tokenizer, as_messages(p) if isinstance(p, str) else p) for p in prompts]
    return [ids[-max_prompt_length:] for ids in encoded]


def collate_queries(
    prompt_ids: Sequence[Sequence[int]], pad_token_id: int, pad_to_multiple_of: int = 1
) -> tuple[Tensor, Tensor]:
    """Left-pad prompt ids: (B, Tq) ids and (B, Tq) attention mask (Tq rounded up to `pad_to_multiple_of`)."""
    width = -(-max(len(ids) for ids in prompt_ids) // pad_to_multiple_of) * pad_to_multiple_of
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
    with torch.random.fork_rng(devices=devices, device_type=device.type), cpu_bf16_autocast(device):
        torch.manual_seed(seed)
        out = policy.generate(  # type: ignore[operator]
            input_ids=query_ids.to(device), attention_mask=query_mask.to(device), generation_config=config
        )  # (B, Tq + T_new), T_new <= max_new_tokens (it stops when every row has ended)
    responses = out[:, query_ids.shape[1] :]
    padding = responses.new_full((responses.shape[0], max_new_tokens - responses.shape[1]), pad_token_id)
    return torch.cat([responses, padding], dim=1)


def decode_responses(
    tokenizer: PreTrainedTokenizerBase, response_ids: Tensor, response_mask: Tensor, finished: Tensor
) -> list[str]:
    """Response texts without their EOS."""
    lengths = (response_mask.sum(-1) - finished.long()).tolist()  # (B,)
    rows = [ids[:n] for ids, n in zip(response_ids.tolist(), lengths, strict=True)]
    return [str(text) for text in tokenizer.batch_decode(rows, skip_special_tokens=True)]


@dataclass
class Episodes:
    """A batch of episodes ``query | response`` (on the CPU unless moved)."""

    query_ids: Tensor
    """(B, Tq) left-padded prompt ids."""
    query_mask: Tensor
    """(B, Tq) 1 on real prompt tokens."""
    response_ids: Tensor
    """(B, Tr) response ids, padded after EOS."""
    response_mask: Tensor
    """(B, Tr) 1 on response tokens up to and including EOS."""
    finished: Tensor
    """(B,) the response ended with EOS."""
    scores: Tensor
    """(B,) a score per episode (a reward function's; zeros where none was asked for)."""

    def select(self, index: Tensor) -> Self:
        """The episodes at `index` (every tensor field indexed on its first dimension)."""
        picked: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        return type(self)(**{k: v[index] if isinstance(v, Tensor) else v for k, v in picked.items()})


def pack_episodes(episodes: Episodes) -> tuple[Tensor, Tensor, int]:
    """(input_ids, attention_mask, response_start) of ``query | response``, without columns that are padding in
    every row (so a micro-batch computes only what it needs; the same rows always give the same tensors)."""
    real_query = episodes.query_mask.any(0).nonzero()
    first = int(real_query[0]) if real_query.numel() else episodes.query_mask.shape[1] - 1
    width = max(int(episodes.response_mask.sum(-1).max()), 1)
    input_ids = torch.cat([episodes.query_ids[:, first:], episodes.response_ids[:, :width]], dim=1)
    attention_mask = torch.cat([episodes.query_mask[:, first:], episodes.response_mask[:, :width]], dim=1)
    return input_ids, attention_mask, episodes.query_ids.shape[1] - first


@dataclass
class Samples:
    """`n` sampled responses per prompt, prompt-major (prompt 0's n responses first)."""

    episodes: Episodes
    texts: list[str]
    n: int


SAMPLE_BATCH = 16
"""Sequences per generate call in `sample_responses`."""


@torch.no_grad()
def sample_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str | Sequence[Message]],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float,
    eos_ids: Sequence[int],
    seed: int,
    max_prompt_length: int = 1024,
    batch_size: int = SAMPLE_BATCH,
) -> Samples:
    """`n` sampled responses per prompt (texts or conversations), in batches of `batch_size` sequences (KV-cached
    generation; the seed of each batch follows its first sequence's index, so equal batch sizes give equal samples)."""
    pad = int(tokenizer.pad_token_id)
    repeated = [p for p in prompts for _ in range(n)]
    ids = encode_prompts(tokenizer, repeated, max_prompt_length)
    parts = []
    for start in range(0, len(ids), batch_size):
        query_ids, query_mask = collate_queries(ids[start : start + batch_size], pad)
        raw = generate_responses(
            model, query_ids, query_mask, max_new_tokens=max_new_tokens, temperature=temperature,
            eos_ids=eos_ids, pad_token_id=pad, seed=seed + start,
        )  # fmt: skip
        response_ids, response_mask, finished = truncate_after_eos(raw.cpu(), eos_ids, pad)
        parts.append(Episodes(query_ids, query_mask, response_ids, response_mask, finished, torch.zeros(len(raw))))
    texts = [t for p in parts for t in decode_responses(tokenizer, p.response_ids, p.response_mask, p.finished)]
    return Samples(concat_episodes(parts, pad), texts, n)


def concat_episodes(parts: Sequence[Episodes], pad_token_id: int) -> Episodes:
    """One batch from several (queries re-padded on the left, responses on the right)."""
    query_width = max(p.query_ids.shape[1] for p in parts)
    response_width = max(p.response_ids.shape[1] for p in parts)

    def left(t: Tensor, value: int) -> Tensor:
        return torch.nn.functional.pad(t, (query_width - t.shape[1], 0), value=value)

    def right(t: Tensor, value: int) -> Tensor:
        return torch.nn.functional.pad(t, (0, response_width - t.shape[1]), value=value)

    return Episodes(
        torch.cat([left(p.query_ids, pad_token_id) for p in parts]), torch.cat([left(p.query_mask, 0) for p in parts]),
        torch.cat([right(p.response_ids, pad_token_id) for p in parts]),
        torch.cat([right(p.response_mask, 0) for p in parts]),
        torch.cat([p.finished for p in parts]), torch.cat([p.scores for p in parts]),
    )  # fmt: skip
