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

from app.simulate.gold import Prompt

GoldFn = Callable[[Sequence[Prompt], Sequence[str]], np.ndarray]
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


def curve_at_kl(curve: Sequence[dict[str, float]], kl: float) -> float | None:
    """The best-of-n curve's gold at `kl`, linear in KL between its measured n (the comparison at matching KL);
    None past its largest n (more SFT samples are needed there). A KL at or under 0 reads the n = 1 point."""
    points = sorted((p["kl"], p["gold"]) for p in curve)
    if not points or kl > points[-1][0]:
        return None
    if kl <= points[0][0]:
        return points[0][1]
    for (k0, g0), (k1, g1) in zip(points, points[1:], strict=False):
        if k0 <= kl <= k1:
            return g0 + (g1 - g0) * (kl - k0) / (k1 - k0) if k1 > k0 else g1
    return None  # unreachable: kl lies within the points


def gain_and_se(policy_gold: np.ndarray, sft_gold: np.ndarray) -> tuple[float, float]:
    """Mean gold gain of the policy over SFT and its standard error, clustered by prompt: rows are prompts, columns
    samples; the gain of each prompt is its policy mean minus its SFT mean, the SE that of their mean (samples of one
    prompt are not independent, so the per-sample SE would overstate the evidence). SE is nan for one prompt."""
    per_prompt = policy_gold.mean(axis=1) - sft_gold.mean(axis=1)
    se = float(per_prompt.std(ddof=1) / np.sqrt(len(per_prompt))) if len(per_prompt) > 1 else float("nan")
    return float(per_prompt.mean()), se


def policy_against_gold(
    policy_path: Path,
    sft_path: Path,
    prompts: Sequence[Prompt],
    gold: GoldFn,
    *,
    samples: int = 8,
    best_of: Sequence[int] = (1, 2, 4, 8),
    picker: GoldFn | None = None,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    cache_dir: Path | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Gold score of policy vs SFT samples, the policy's KL from SFT, and best-of-n from SFT picked by `picker`
    (a reward model; the gold itself when None, an upper bound). With `cache_dir`, the SFT samples are kept there
    and reused by the next measurement against the same SFT model and settings (`trainer.gold.cache`)."""
    import torch

    from trainer.common.generation import eos_token_ids, sample_responses
    from trainer.common.logprobs import kl_on_samples
    from trainer.common.models import load_policy
    from trainer.gold.cache import cache_key, cached_texts

    policy, tokenizer = load_policy(policy_path, device="cpu")
    sft, _ = load_policy(sft_path, device="cpu")
    eos = sorted(eos_token_ids(policy, tokenizer))
    n = max(max(best_of), samples)
    ours = sample_responses(policy, tokenizer, prompts, n=samples, max_new_tokens=max_new_tokens,
                            temperature=temperature, eos_ids=eos, seed=seed, batch_size=batch_size)  # fmt: skip

    def draw_base() -> list[str]:
        return sample_responses(sft, tokenizer, prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                eos_ids=eos, seed=seed + 1, batch_size=batch_size).texts  # fmt: skip

    key = cache_key(sft_path, prompts=prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                    seed=seed + 1, batch_size=batch_size, torch=torch.__version__)  # fmt: skip
    base_texts = cached_texts(cache_dir, key, draw_base)
    repeat = [p for p in prompts for _ in range(n)]
    base_gold = np.asarray(gold(repeat, base_texts), dtype=np.float64).reshape(len(prompts), n)
    chooser = base_gold if picker is None else np.asarray(picker(repeat, base_texts)).reshape(len(prompts), n)
    policy_gold = np.asarray(gold([p for p in prompts for _ in range(samples)], ours.texts), dtype=np.float64)
    gain, gain_se = gain_and_se(policy_gold.reshape(len(prompts), samples), base_gold)
    by_gold = [{"n": k, "kl": best_of_n_kl(k), "gold": best_of_n(base_gold, base_gold, k)} for k in best_of]
    return {
        "prompts": len(prompts),
        "policy_gold": float(policy_gold.mean()),
        "sft_gold": float(base_gold.mean()),
        "gain": gain,
        "gain_se": gain_se,
        "policy_kl": float(kl_on_samples(policy, sft, ours.episodes).mean()),
        "best_of_n": [{"n": k, "kl": best_of_n_kl(k), "gold": best_of_n(base_gold, chooser, k)} for k in best_of],
        "picker": "reward model" if picker is not None else "gold (upper bound)",
        "best_of_n_by_gold": by_gold,  # the upper bound, from the same SFT samples (equal to best_of_n without picker)
    }
