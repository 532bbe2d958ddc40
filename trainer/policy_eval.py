"""Policy evaluation: sample both versions, score with a reward model, KL on the policy's samples, perplexity.

Torch pieces sample and score; the summary figures (`rm_win_rate`, `summarize`) are pure functions over arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from trainer.ppo_model import forward_logprobs
from trainer.ppo_rollout import (
    Rollout,
    collate_queries,
    decode_responses,
    encode_prompts,
    generate_responses,
    pack_episodes,
    truncate_after_eos,
)

BATCH = 16
"""Sequences per generate / scoring call."""


@dataclass
class Samples:
    """One version's responses: `n` per prompt, prompt-major (prompt 0's n responses first)."""

    rollout: Rollout
    texts: list[str]
    n: int


def rm_win_rate(policy_rewards: np.ndarray, baseline_rewards: np.ndarray) -> float:
    """P(policy response beats baseline response) under the RM, over every pair within each prompt (ties half).

    Both arrays are (prompts, samples); pairs are only formed within a prompt.
    """
    diff = policy_rewards[:, :, None] - baseline_rewards[:, None, :]  # (P, n, m)
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def summarize(policy_rewards: np.ndarray, baseline_rewards: np.ndarray, kl_per_episode: np.ndarray) -> dict[str, float]:
    """The RM figures of an evaluation (rewards are (prompts, samples); KL per policy episode)."""
    return {
        "policy_reward": float(policy_rewards.mean()),
        "baseline_reward": float(baseline_rewards.mean()),
        "reward_gain": float(policy_rewards.mean() - baseline_rewards.mean()),
        "rm_win_rate": rm_win_rate(policy_rewards, baseline_rewards),
        "kl": float(kl_per_episode.mean()),
    }


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    tokenizer: object,
    prompts: Sequence[str],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float,
    eos_ids: Sequence[int],
    seed: int,
) -> Samples:
    """`n` sampled responses per prompt, in batches (KV-cached generation)."""
    pad = int(tokenizer.pad_token_id)  # type: ignore[attr-defined]
    repeated = [p for p in prompts for _ in range(n)]
    ids = encode_prompts(tokenizer, repeated, 1024)  # type: ignore[arg-type]
    parts = []
    for start in range(0, len(ids), BATCH):
        query_ids, query_mask = collate_queries(ids[start : start + BATCH], pad)
        raw = generate_responses(
            model, query_ids, query_mask, max_new_tokens=max_new_tokens, temperature=temperature,  # type: ignore[arg-type]
            eos_ids=eos_ids, pad_token_id=pad, seed=seed + start,
        )  # fmt: skip
        response_ids, response_mask, finished = truncate_after_eos(raw.cpu(), eos_ids, pad)
        parts.append(Rollout(query_ids, query_mask, response_ids, response_mask, finished, torch.zeros(len(raw))))
    texts = [t for part in parts for t in decode_responses(tokenizer, part.response_ids, part.response_mask,  # type: ignore[arg-type]
                                                           part.finished)]  # fmt: skip
    return Samples(_concat(parts, pad), texts, n)


def _concat(parts: list[Rollout], pad: int) -> Rollout:
    query_width = max(p.query_ids.shape[1] for p in parts)
    response_width = max(p.response_ids.shape[1] for p in parts)

    def left(t: Tensor, value: int) -> Tensor:
        return torch.nn.functional.pad(t, (query_width - t.shape[1], 0), value=value)

    def right(t: Tensor, value: int) -> Tensor:
        return torch.nn.functional.pad(t, (0, response_width - t.shape[1]), value=value)

    return Rollout(
        torch.cat([left(p.query_ids, pad) for p in parts]), torch.cat([left(p.query_mask, 0) for p in parts]),
        torch.cat([right(p.response_ids, pad) for p in parts]), torch.cat([right(p.response_mask, 0) for p in parts]),
        torch.cat([p.finished for p in parts]), torch.cat([p.scores for p in parts]),
    )  # fmt: skip


@torch.no_grad()
def sequence_logprob(model: torch.nn.Module, rollout: Rollout) -> Tensor:
    """(B,) summed log-probability of each response (up to and including EOS) at temperature 1."""
    out = []
    for start in range(0, rollout.query_ids.shape[0], BATCH):
        part = rollout.select(torch.arange(start, min(start + BATCH, rollout.query_ids.shape[0])))
        input_ids, attention_mask, response_start = pack_episodes(part)
        logprobs, _ = forward_logprobs(model, input_ids, attention_mask, response_start)  # type: ignore[arg-type]
        mask = part.response_mask[:, : logprobs.shape[1]].to(logprobs.device)
        out.append((logprobs * mask).sum(-1).cpu())
    return torch.cat(out)


def kl_on_samples(policy: torch.nn.Module, baseline: torch.nn.Module, samples: Samples) -> np.ndarray:
    """Per-episode KL estimate of policy from baseline: log pi(y|x) - log pi_base(y|x) on the policy's samples."""
    return (sequence_logprob(policy, samples.rollout) - sequence_logprob(baseline, samples.rollout)).numpy()


@torch.no_grad()
def perplexity(model: torch.nn.Module, tokenizer: object, pairs: Sequence[tuple[str, str]]) -> float:
    """exp(mean negative log-likelihood per token) of each completion given its prompt (chat format)."""
    pad = int(tokenizer.pad_token_id)  # type: ignore[attr-defined]
    eos = int(tokenizer.eos_token_id)  # type: ignore[attr-defined]
    queries = encode_prompts(tokenizer, [p for p, _ in pairs], 1024)  # type: ignore[arg-type]
    answers = [tokenizer(c, add_special_tokens=False)["input_ids"][:1023] + [eos] for _, c in pairs]  # type: ignore[operator]
    total, count = 0.0, 0
    for start in range(0, len(pairs), BATCH):
        query_ids, query_mask = collate_queries(queries[start : start + BATCH], pad)
        rows = answers[start : start + BATCH]
        width = max(len(r) for r in rows)
        response_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        response_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        part = Rollout(
            query_ids, query_mask, response_ids, response_mask, torch.ones(len(rows)), torch.zeros(len(rows))
        )
        total += float(sequence_logprob(model, part).sum())
        count += int(response_mask.sum())
    return math.exp(-total / max(count, 1))
