"""Simulated labeler profiles: Plackett-Luce rankings over gold scores, or a known bias, and what to expect of them.

A labeler perceives each output's gold score standardised within the task, plus Gumbel noise at its temperature:
``u_i = z_i + T * (g_i - euler_gamma)``. Sorting by ``u`` is an exact Plackett-Luce sample with weights
``exp(z_i / T)`` (the Gumbel-max trick), so output i is ranked above output j with probability
``sigmoid((z_i - z_j) / T)`` however many outputs the task has. T is in units of the task's gold spread, so the
same profile is as hard on every gold preference. Ratings and flags come from the same perceived scores, mapped
back to gold units.

Items are passed in a fixed order (the task's completion ids, sorted), not the order shown, so a seeded labeler
ranks a task the same way whatever order the server shuffled it into; only ``first_shown`` is about display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from app import metrics
from app.simulate.gold import GoldPreference

EULER_GAMMA = 0.5772156649015329
Bias = Literal["none", "ties", "first_shown", "longest"]


@dataclass(frozen=True)
class Profile:
    """How one kind of simulated labeler ranks, rates and flags."""

    name: str
    temperature: float
    """Plackett-Luce temperature in units of the task's gold spread (math.inf: uniformly random)."""
    bias: Bias = "none"
    """none; ties (ties outputs it is unsure of); first_shown (puts the first output shown best);
    longest (ranks by length instead of gold)."""
    tie_margin: float = 0.0
    """ties: neighbouring perceived scores closer than this (task-spread units) share a bucket."""
    description: str = ""


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("careful", 0.25, description="Plackett-Luce at T = 0.25: rarely swaps a clear pair"),
        Profile("noisy", 1.0, description="Plackett-Luce at T = 1: right more often than not"),
        Profile("random", math.inf, description="uniformly random order, random ratings and flags"),
        Profile("tie-happy", 0.5, "ties", 0.75, description="T = 0.5, ties neighbours perceived within 0.75"),
        Profile("first-shown", 0.25, "first_shown", description="first output shown best, the rest at T = 0.25"),
        Profile("longest", 0.25, "longest", description="ranks by length (Plackett-Luce at T = 0.25 over length)"),
    )
}
"""The profiles `--labelers` can mix, by name."""


def parse_mix(text: str) -> list[tuple[Profile, int]]:
    """'careful:6,noisy:3,random:2' -> [(careful, 6), (noisy, 3), (random, 2)]."""
    mix = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, count = part.partition(":")
        if name not in PROFILES:
            raise ValueError(f"unknown labeler profile {name!r}; choose from {', '.join(PROFILES)}")
        try:
            n = int(count or 1)
        except ValueError:
            raise ValueError(f"{part!r}: the count after ':' must be a whole number") from None
        if n < 1:
            raise ValueError(f"{part!r}: the count must be at least 1")
        mix.append((PROFILES[name], n))
    if not mix:
        raise ValueError("give at least one profile, e.g. careful:3,random:1")
    return mix


def standardize(x: np.ndarray) -> np.ndarray:
    """(..., K) -> zero mean, unit standard deviation along the last axis (zeros where all are equal)."""
    centered = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return np.divide(centered, std, out=np.zeros_like(centered, dtype=np.float64), where=std > 0)


def gumbel_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Centered Gumbel draws (mean 0)."""
    return rng.gumbel(size=shape) - EULER_GAMMA


def perceive(
    profile: Profile, scores: np.ndarray, lengths: np.ndarray, noise: np.ndarray, first_shown: int
) -> np.ndarray:
    """(D, K) perceived utilities for D draws of noise: what the profile sorts by."""
    if profile.bias == "longest":
        return standardize(lengths.astype(np.float64)) + profile.temperature * noise
    u = noise.copy() if math.isinf(profile.temperature) else standardize(scores) + profile.temperature * noise
    if profile.bias == "first_shown":
        u[:, first_shown] = np.inf
    return u


def ranks_from_utilities(u: np.ndarray, tie_margin: float = 0.0) -> np.ndarray:
    """(D, K) utilities -> (D, K) bucket ranks, 0 = best; sorted neighbours within tie_margin share a bucket."""
    order = np.argsort(-u, axis=1, kind="stable")  # (D, K) best first
    sorted_u = np.take_along_axis(u, order, axis=1)
    with np.errstate(invalid="ignore"):
        new_bucket = (sorted_u[:, :-1] - sorted_u[:, 1:]) > tie_margin  # (D, K - 1)
    bucket = np.concatenate([np.zeros((u.shape[0], 1), dtype=np.int64), np.cumsum(new_bucket, axis=1)], axis=1)
    ranks = np.empty_like(bucket)
    np.put_along_axis(ranks, order, bucket, axis=1)
    return ranks


def gold_ranks(scores: np.ndarray) -> np.ndarray:
    """(K,) bucket ranks of the gold order: higher score better, equal scores tied."""
    _, inverse = np.unique(-np.asarray(scores, dtype=np.float64), return_inverse=True)
    return inverse.astype(np.int64).reshape(-1)


def buckets(ranks: Sequence[int], ids: Sequence[int]) -> list[list[int]]:
    """Rank vector aligned to ids -> buckets of ids, best first."""
    out: dict[int, list[int]] = {}
    for rank, item in sorted(zip(ranks, ids, strict=True)):
        out.setdefault(int(rank), []).append(item)
    return [out[r] for r in sorted(out)]


@dataclass(frozen=True)
class Judgement:
    """One simulated person's answer to one task, items in the fixed order."""

    ranks: np.ndarray  # (K,)
    ratings: list[int]
    flags: list[list[str]]


def judge(
    profile: Profile,
    gold: GoldPreference,
    *,
    scores: np.ndarray,
    lengths: np.ndarray,
    first_shown: int,
    rng: np.random.Generator,
) -> Judgement:
    """Rank, rate and flag one task as this profile does."""
    k = scores.size
    noise = gumbel_noise(rng, (1, k))
    ranks = ranks_from_utilities(perceive(profile, scores, lengths, noise, first_shown), profile.tie_margin)[0]
    if math.isinf(profile.temperature):
        ratings = [int(r) for r in rng.integers(1, 8, size=k)]
        flagged = rng.random(k) < 0.5
        return Judgement(ranks, ratings, [[gold.flag] if f and gold.flag_below is not None else [] for f in flagged])
    perceived = perceived_scores(profile, scores, noise[0])
    return Judgement(ranks, [gold.rating(s) for s in perceived], [gold.flags(s) for s in perceived])


def perceived_scores(profile: Profile, scores: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Perceived gold scores in gold units (for ratings and flags): s + T * spread * noise."""
    return scores + profile.temperature * scores.std() * noise


def researcher_judgement(gold: GoldPreference, scores: np.ndarray) -> Judgement:
    """A simulated researcher ranks, rates and flags by the gold itself."""
    return Judgement(gold_ranks(scores), [gold.rating(s) for s in scores], [gold.flags(s) for s in scores])


@dataclass(frozen=True)
class TaskScores:
    """What is needed to predict a profile's agreement on one task."""

    scores: np.ndarray  # (K,) gold scores, fixed order
    lengths: np.ndarray  # (K,) characters
    first_shown: int


@dataclass(frozen=True)
class Expectation:
    """A profile's expected pooled agreement with gold over given tasks and its sampling spread."""

    agreement: float | None
    sd: float | None
    flag_agreement: float | None
    method: str


def pl_expected_agreement(tasks: Sequence[TaskScores], temperature: float) -> float | None:
    """Exact expected pooled agreement of Plackett-Luce rankings with the gold: mean sigmoid(|z_i - z_j| / T)."""
    total, n = 0.0, 0
    for t in tasks:
        z = standardize(t.scores)
        i, j = np.triu_indices(z.size, 1)
        gap = np.abs(z[i] - z[j])[t.scores[i] != t.scores[j]]  # only pairs the gold orders strictly
        total += 0.5 * gap.size if math.isinf(temperature) else float((1 / (1 + np.exp(-gap / temperature))).sum())
        n += gap.size
    return total / n if n else None


def simulate_expectation(
    profile: Profile, gold: GoldPreference, tasks: Sequence[TaskScores], *, rng: np.random.Generator, draws: int = 400
) -> Expectation:
    """Monte-Carlo: the pooled agreement (ranking and flags) of `draws` campaigns of this profile on these tasks."""
    agree, comparable = np.zeros(draws), np.zeros(draws, dtype=np.int64)  # credit: a tie counts 0.5
    flag_same, flag_n = np.zeros(draws), 0
    for t in tasks:
        k = t.scores.size
        noise = gumbel_noise(rng, (draws, k))
        ranks = ranks_from_utilities(perceive(profile, t.scores, t.lengths, noise, t.first_shown), profile.tie_margin)
        a, c = metrics.pairwise_agreement_batch(ranks, np.broadcast_to(gold_ranks(t.scores), (draws, k)))
        agree += a
        comparable += c
        truth = np.array([bool(gold.flags(s)) for s in t.scores])
        if math.isinf(profile.temperature):
            flagged = (rng.random((draws, k)) < 0.5) & (gold.flag_below is not None)
        else:
            flagged = np.array([[bool(gold.flags(s)) for s in perceived_scores(profile, t.scores, n)] for n in noise])
        flag_same += (flagged == truth).sum(axis=1)
        flag_n += k
    if not tasks or not comparable.any():
        return Expectation(None, None, None, "monte-carlo")
    pooled = agree / np.maximum(comparable, 1)
    return Expectation(float(pooled.mean()), float(pooled.std()), float(flag_same.mean() / flag_n), "monte-carlo")


def expected_agreement(
    profile: Profile, gold: GoldPreference, tasks: Sequence[TaskScores], *, rng: np.random.Generator, draws: int = 400
) -> Expectation:
    """Expected agreement with gold: exact for plain Plackett-Luce profiles, Monte-Carlo for biased ones.

    The spread (sd) is always the Monte-Carlo standard deviation of the pooled figure over repeated campaigns.
    """
    mc = simulate_expectation(profile, gold, tasks, rng=rng, draws=draws)
    if profile.bias != "none" or mc.agreement is None:
        return mc
    return Expectation(pl_expected_agreement(tasks, profile.temperature), mc.sd, mc.flag_agreement, "exact")
