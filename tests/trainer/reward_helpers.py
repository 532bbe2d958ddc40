"""Shared builders for the reward-model tests: a tiny random Llama RM and synthetic ranking tasks."""

import random
from collections.abc import Iterator

import pytest
import torch
from transformers import LlamaConfig, PreTrainedModel

from trainer.common.reward_model import build_reward_model
from trainer.common.tiny import build_tiny_tokenizer
from trainer.reward.data import RankingRecord, TaskGroup

WORDS = [
    "the",
    "quick",
    "brown",
    "dog",
    "jumps",
    "over",
    "lazy",
    "sea",
    "sky",
    "answer",
    "poem",
    "list",
    "tuple",
    "python",
    "hello",
    "paris",
]
MARKER = "fox"


def tiny_tokenizer():
    return build_tiny_tokenizer()


def tiny_reward_model(seed: int = 0, vocab_size: int = 384, layers: int = 2) -> PreTrainedModel:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        attention_dropout=0.1,  # build_reward_model must switch it off
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_reward_model(config, pad_token_id=2)


def marker_tasks(n: int, *, seed: int, k_range: tuple[int, int] = (4, 6)) -> list[TaskGroup]:
    """Completions are random word strings; those containing the marker word are ranked better (ties among them)."""
    rng = random.Random(seed)
    tasks = []
    for task_id in range(n):
        k = rng.randint(*k_range)
        has_marker = [i < k // 2 for i in range(k)]
        rng.shuffle(has_marker)
        completions = []
        for marked in has_marker:
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
            if marked:
                words.insert(rng.randrange(len(words) + 1), MARKER)
            completions.append(" ".join(words))
        ranks = [0 if marked else 1 for marked in has_marker]
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        tasks.append(TaskGroup(task_id, prompt, completions, [RankingRecord(ranks, labeler=f"l{task_id % 3}")]))
    return tasks


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a loaded machine two threads can be 50x slower (spin-waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
