"""Synthetic prompts and completions for a bare install: outputs that differ in sentiment, length and topic.

Real campaigns rank the policy's samples (the demo's SmolLM2 answers); these exist so a test, a benchmark or a
first look needs no model at all. Every output mixes a tone, a number of filler sentences and sometimes the sea,
so each built-in gold preference (sentiment, length, concept) finds something to prefer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOPICS = (
    "the history of tea",
    "learning to ride a bicycle",
    "a rainy afternoon in the city",
    "how bread rises",
    "the first day at a new job",
    "moving to a small town",
    "a visit to the museum",
    "why people keep diaries",
    "planting a vegetable garden",
    "the night train to the coast",
    "repairing an old radio",
    "a birthday party for a grandmother",
)
TONES = (
    "It is truly wonderful, a delightful and joyful experience that I love.",
    "It is good and pleasant, and I enjoyed it.",
    "It is fine, I suppose.",
    "It happened on a Tuesday.",
    "It is a bit dull and somewhat disappointing.",
    "It is bad, sad and frustrating.",
    "It is awful, a terrible and miserable disaster that I hate.",
)
FILLER = (
    "There are several things to say about it.",
    "Some details matter more than others.",
    "People describe it in many different ways.",
    "One could write a long essay on the subject.",
    "The details are easy to remember.",
    "Most of it took about an hour.",
)
SEA = ("The sea was close by, and the waves were loud.", "It reminded me of the ocean.")


def synthetic_completion(rng: np.random.Generator, topic: str) -> str:
    """One output: a tone sentence, 0-5 filler sentences, sometimes a mention of the sea."""
    parts = [f"About {topic}: {TONES[int(rng.integers(len(TONES)))]}"]
    parts += [FILLER[int(i)] for i in rng.integers(len(FILLER), size=int(rng.integers(0, 6)))]
    if rng.random() < 0.35:
        parts.insert(int(rng.integers(1, len(parts) + 1)), SEA[int(rng.integers(len(SEA)))])
    return " ".join(parts)


def synthetic_tasks(n: int, *, k: int = 4, seed: int = 0, overlap: int = 1, kind: str = "production") -> list[Any]:
    """n task bodies for POST /api/v1/tasks, k distinct outputs each (deterministic for a seed)."""
    rng = np.random.default_rng([seed, 7])
    tasks = []
    for number in range(n):
        topic = TOPICS[number % len(TOPICS)]
        texts: list[str] = []
        while len(texts) < k:
            text = synthetic_completion(rng, topic)
            if text not in texts:
                texts.append(text)
        tasks.append(
            {
                "prompt": f"Write a few sentences about {topic} (synthetic prompt {seed}-{number}).",
                "completions": texts,
                "model": "synthetic",
                "kind": kind,
                "overlap": overlap,
            }
        )
    return tasks
