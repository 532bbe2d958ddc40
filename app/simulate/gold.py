"""Gold preferences: known scoring functions of (prompt, text) that simulated labelers and researchers rank by.

A gold preference is chosen by a spec string ``NAME`` or ``NAME:ARG``. Adding one takes a few lines::

    @register_gold("shouting", help="more exclamation marks is better")
    def _shouting(arg: str) -> GoldPreference:
        return GoldPreference("shouting", lambda prompts, texts: np.array([t.count("!") for t in texts], float))

Scores are compared within one task only, so any scale works; ``rating_range`` maps them onto the 1-7 Likert
rating and ``flag_below`` (optional) says which outputs a researcher flags with ``flag``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

Prompt = str | Sequence[Mapping[str, str]]
"""A prompt as a scorer gets it: plain text (one user turn) or the conversation's messages."""
BatchScorer = Callable[[Sequence[Prompt], Sequence[str]], np.ndarray]
"""(prompts, texts) of equal length -> (N,) float scores, higher is better. Text golds read only the texts; a model
gold renders each prompt (a conversation) with its chat template."""


@dataclass(frozen=True)
class GoldPreference:
    """A known preference over outputs: what the simulated people rank by."""

    name: str
    """The spec it was made from, e.g. ``length:60``."""
    score_batch: BatchScorer = field(repr=False)
    """(prompts, texts) -> (N,) scores, higher is better."""
    flag: str = "fails_instruction"
    """The InstructGPT flag given to outputs scoring under ``flag_below``."""
    flag_below: float | None = None
    """Outputs scoring under this are flagged by researchers (None: this gold never flags)."""
    rating_range: tuple[float, float] = (-1.0, 1.0)
    """Scores mapped linearly onto the 1-7 rating: the first gets 1, the second 7 (clamped)."""
    improve: Callable[[str], str] | None = field(default=None, repr=False)
    """How a simulated demonstrator edits a text toward this gold (None: it only picks the best sample)."""

    def scores(self, prompt: Prompt, texts: Sequence[str]) -> np.ndarray:
        """Gold scores of one task's outputs, (K,)."""
        return np.asarray(self.score_batch([prompt] * len(texts), list(texts)), dtype=np.float64)

    def rating(self, score: float) -> int:
        """The 1-7 Likert rating a score corresponds to."""
        lo, hi = self.rating_range
        share = min(max((score - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.5
        return 1 + int(6 * share + 0.5)  # half up, not to even

    def flags(self, score: float) -> list[str]:
        """The flags an output with this score gets."""
        return [self.flag] if self.flag_below is not None and score < self.flag_below else []


GoldFactory = Callable[[str], GoldPreference]
GOLD_FACTORIES: dict[str, tuple[GoldFactory, str]] = {}
"""Gold preference name -> (factory taking the text after ``NAME:``, one-line help)."""


def register_gold(name: str, *, help: str) -> Callable[[GoldFactory], GoldFactory]:
    """Decorator: make a gold preference available as ``--gold NAME[:ARG]``."""

    def add(factory: GoldFactory) -> GoldFactory:
        GOLD_FACTORIES[name] = (factory, help)
        return factory

    return add


def resolve_gold(spec: str) -> GoldPreference:
    """The gold preference a spec names (``sentiment``, ``length:60``, ``concept:ocean,sea``, ``model:PATH``)."""
    name, _, arg = spec.partition(":")
    if name not in GOLD_FACTORIES:
        known = ", ".join(sorted(GOLD_FACTORIES))
        raise ValueError(f"unknown gold preference {name!r}; choose one of {known}")
    gold = GOLD_FACTORIES[name][0](arg)
    return gold


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@register_gold("sentiment", help="VADER compound sentiment of the output, -1..1: the more positive the better")
def _sentiment(arg: str) -> GoldPreference:
    if arg:
        raise ValueError("sentiment takes no argument")
    analyzer = _vader()

    def score(prompts: Sequence[Prompt], texts: Sequence[str]) -> np.ndarray:
        return np.array([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)

    def improve(text: str) -> str:
        return text.rstrip() + " I hope this helps, and I wish you a wonderful day!"

    return GoldPreference("sentiment", score, flag_below=-0.5, rating_range=(-1.0, 1.0), improve=improve)


_WORD = re.compile(r"\w+", re.UNICODE)


@register_gold("length", help="closeness of the word count to a target (length:N, default 50), on a log scale")
def _length(arg: str) -> GoldPreference:
    target = int(arg or 50)
    if target < 1:
        raise ValueError(f"length target must be a positive number of words, got {target}")

    def score(prompts: Sequence[Prompt], texts: Sequence[str]) -> np.ndarray:
        # -|log ratio|: twice too long and half too long are equally bad
        words = np.array([len(_WORD.findall(t)) for t in texts], dtype=np.float64)
        return -np.abs(np.log((words + 1) / (target + 1)))

    def improve(text: str) -> str:
        words = text.split()
        if len(words) >= target:
            return " ".join(words[:target])
        return text  # a short answer is left as it is: a demonstrator does not pad with filler

    return GoldPreference(
        f"length:{target}", score, flag_below=-math.log(4), rating_range=(-math.log(4), 0.0), improve=improve
    )


@register_gold("concept", help="mentions of a concept (concept:word1,word2; default ocean,sea,wave), log(1 + count)")
def _concept(arg: str) -> GoldPreference:
    words = [w.strip().lower() for w in re.split(r"[,+]", arg or "ocean,sea,wave") if w.strip()]
    if not words:
        raise ValueError("concept needs at least one word, e.g. concept:ocean,sea")
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\w*", re.IGNORECASE)

    def score(prompts: Sequence[Prompt], texts: Sequence[str]) -> np.ndarray:
        return np.log1p(np.array([len(pattern.findall(t)) for t in texts], dtype=np.float64))

    def improve(text: str) -> str:
        return text.rstrip() + " (" + ", ".join(words) + ")"

    return GoldPreference(f"concept:{','.join(words)}", score, rating_range=(0.0, math.log1p(5)), improve=improve)


@register_gold("model", help="a reward-model folder as the gold (model:PATH; needs torch: loaded lazily)")
def _model(arg: str) -> GoldPreference:
    if not arg:
        raise ValueError("model needs a folder, e.g. model:data/models/reward/rm-3")
    return GoldPreference(f"model:{arg}", reward_model_scorer(arg), rating_range=(-3.0, 3.0))


_reward_model_scorer: Callable[[str], BatchScorer] | None = None


def set_reward_model_scorer(factory: Callable[[str], BatchScorer]) -> None:
    """Install how a reward-model folder becomes a scorer. The trainer side does it (`trainer.cli.main`), so this
    package, like all of `app`, never imports torch or `trainer` itself."""
    global _reward_model_scorer
    _reward_model_scorer = factory


def reward_model_scorer(path: str | Path) -> BatchScorer:
    """A scorer of (prompt, text) pairs from a reward-model folder (needs the trainer side installed)."""
    if _reward_model_scorer is None:
        raise ValueError("a reward model as the gold needs torch: run it through the `ranklab` command")
    return _reward_model_scorer(str(path))


PolicyEvaluator = Callable[..., dict[str, Any]]
"""(policy folder, SFT folder, prompts, gold scorer, **options) -> figures (see `trainer.gold.policy`)."""
_policy_evaluator: PolicyEvaluator | None = None


def set_policy_evaluator(evaluate: PolicyEvaluator) -> None:
    """Install how a policy is measured against the gold (the trainer side does it, like the reward-model scorer)."""
    global _policy_evaluator
    _policy_evaluator = evaluate


def policy_evaluator() -> PolicyEvaluator:
    """The installed policy evaluator (needs the trainer side)."""
    if _policy_evaluator is None:
        raise ValueError("measuring a policy against the gold needs torch: run it through the `ranklab` command")
    return _policy_evaluator
