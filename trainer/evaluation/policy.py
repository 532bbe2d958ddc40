"""Policy evaluation figures: RM win rate and the summary (pure functions over arrays), and perplexity on held-out
answered conversations. Sampling and the KL on samples are `trainer.common.generation` / `trainer.common.logprobs`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from trainer.common.chat import encode_prompt_completion, to_messages
from trainer.common.generation import Episodes, collate_queries
from trainer.common.logprobs import sequence_logprob

BATCH = 16
"""Answered conversations per scoring pass in `perplexity`."""


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
def perplexity(model: torch.nn.Module, tokenizer: object, pairs: Sequence[tuple[str, str]]) -> float:
    """exp(mean negative log-likelihood per token) of each completion given its prompt: the completion's tokens as
    `trainer.common.chat.encode_prompt_completion` draws the boundary (end-of-turn token included)."""
    pad = int(tokenizer.pad_token_id)  # type: ignore[attr-defined]
    encoded = [encode_prompt_completion(tokenizer, to_messages(p), c) for p, c in pairs]  # type: ignore[arg-type]
    queries = [e.prompt_ids[-1024:] for e in encoded]
    answers = [e.completion_ids[:1024] for e in encoded]
    total, count = 0.0, 0
    for start in range(0, len(pairs), BATCH):
        query_ids, query_mask = collate_queries(queries[start : start + BATCH], pad)
        rows = answers[start : start + BATCH]
        width = max(len(r) for r in rows)
        response_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        response_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        part = Episodes(
            query_ids, query_mask, response_ids, response_mask, torch.ones(len(rows)), torch.zeros(len(rows))
        )
        total += float(sequence_logprob(model, part).sum())
        count += int(response_mask.sum())
    return math.exp(-total / max(count, 1))
