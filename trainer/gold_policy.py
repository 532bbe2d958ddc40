"""A policy against a known gold preference (the simulated-labeler setting of Gao et al.): mean gold score of the
policy's and its SFT model's samples on held-out prompts, the policy's KL from the SFT model, and best-of-n sampling
from the SFT model as the reference point (its KL is log n - (n-1)/n, whatever the scorer that picks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

GoldFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]
"""(prompts, texts) -> gold scores."""


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || base) = log n - (n - 1) / n (Stiennon et al. 2020, appendix)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return math.log(n) - (n - 1) / n


def best_of_n(gold: np.ndarray, picker: np.ndarray, n: int) -> float:
    """Expected gold score of the sample the picker scores highest among `n` of each prompt's N samples, averaged
    over prompts ((P, N) arrays). Every size-n subset of the N counts (the unbiased estimator, as for pass@k): the
    sample ranked i-th lowest by the picker is the best of C(i, n-1) of the C(N, n) subsets. Reading only the first
    n samples would be as unbiased but far noisier (best-of-1 would be one sample per prompt, not the SFT mean)."""
    if not 1 <= n <= gold.shape[1]:
        raise ValueError(f"n must be between 1 and {gold.shape[1]}")
    order = np.argsort(picker, axis=1, kind="stable")
    ranked = np.take_along_axis(np.asarray(gold, dtype=np.float64), order, axis=1)
    weights = np.array([math.comb(i, n - 1) for i in range(gold.shape[1])], dtype=np.float64) / math.comb(
        gold.shape[1], n
    )
    return float((ranked @ weights).mean())


def policy_against_gold(
    policy_path: Path,
    sft_path: Path,
    prompts: Sequence[str],
    gold: GoldFn,
    *,
    samples: int = 8,
    best_of: Sequence[int] = (1, 2, 4, 8),
    picker: GoldFn | None = None,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Gold score of policy vs SFT samples, the policy's KL from SFT, and best-of-n from SFT picked by `picker`
    (a reward model; the gold itself when None, an upper bound)."""
    from trainer.models import load_policy
    from trainer.policy_eval import kl_on_samples, sample
    from trainer.sampling import eos_token_ids

    policy, tokenizer = load_policy(policy_path, device="cpu")
    sft, _ = load_policy(sft_path, device="cpu")
    eos = sorted(eos_token_ids(policy, tokenizer))
    n = max(max(best_of), samples)
    ours = sample(policy, tokenizer, prompts, n=samples, max_new_tokens=max_new_tokens, temperature=temperature,
                  eos_ids=eos, seed=seed)  # fmt: skip
    base = sample(sft, tokenizer, prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                  eos_ids=eos, seed=seed + 1)  # fmt: skip
    repeat = [p for p in prompts for _ in range(n)]
    base_gold = np.asarray(gold(repeat, base.texts), dtype=np.float64).reshape(len(prompts), n)
    chooser = base_gold if picker is None else np.asarray(picker(repeat, base.texts)).reshape(len(prompts), n)
    policy_gold = np.asarray(gold([p for p in prompts for _ in range(samples)], ours.texts), dtype=np.float64)
    return {
        "prompts": len(prompts),
        "policy_gold": float(policy_gold.mean()),
        "sft_gold": float(base_gold.mean()),
        "policy_kl": float(kl_on_samples(policy, sft, ours).mean()),
        "best_of_n": [{"n": k, "kl": best_of_n_kl(k), "gold": best_of_n(base_gold, chooser, k)} for k in best_of],
        "picker": "reward model" if picker is not None else "gold (upper bound)",
    }
