"""Shared-prompt mode gives the plain mode's rewards, gradients and trained weights."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dataclasses import replace

import pytest
import torch

from tests.trainer.reward_helpers import marker_tasks, one_thread, tiny_reward_model, tiny_tokenizer
from trainer.common.reward_model import OFFSET_KEY, rewards
from trainer.reward.config import RewardConfig
from trainer.reward.data import EncodedTask, RankingRecord, collate_rankings, encode_tasks
from trainer.reward.shared import collate_shared_prompt, shared_prompt_rewards, split_shared_prompt
from trainer.reward.train import train_reward_model

pytestmark = pytest.mark.usefixtures(one_thread.__name__)
PAD = 2


def test_split_shared_prompt() -> None:
    sequences = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3]]
    assert split_shared_prompt(sequences, max_length=100) == ([1, 2], [[3, 4, 5], [3, 9], [3]])
    assert split_shared_prompt(sequences, max_length=4) == ([2], [[3, 4, 5], [3, 9], [3]])
    assert split_shared_prompt(sequences, max_length=3) == ([2], [[4, 5], [3, 9], [3]])
    with pytest.raises(ValueError):
        split_shared_prompt([[1, 2], [3, 4]], max_length=10)


def test_collate_shared_prompt_rows() -> None:
    task = EncodedTask(5, [[7, 8, 1], [7, 8, 2, 3], [7, 8, 4]], [RankingRecord([0, 1, -1])])
    batch = collate_shared_prompt([task, task], pad_token_id=PAD, max_length=100)
    assert batch.prompt_ids is not None and batch.prompt_of_row is not None
    torch.testing.assert_close(batch.prompt_ids, torch.tensor([[7, 8], [7, 8]]))
    torch.testing.assert_close(batch.input_ids, torch.tensor([[1, PAD], [2, 3], [1, PAD], [2, 3]]))
    torch.testing.assert_close(batch.prompt_of_row, torch.tensor([0, 0, 1, 1]))
    torch.testing.assert_close(batch.group_index, torch.tensor([[0, 1, -1], [2, 3, -1]]))
    assert batch.n_tokens == 4 + 6


def test_shared_prompt_rewards_and_gradients_equal_plain() -> None:
    tasks = encode_tasks(marker_tasks(4, seed=0, k_range=(4, 9)), tiny_tokenizer(), max_length=10_000)
    plain = collate_rankings(tasks, pad_token_id=PAD)
    shared = collate_shared_prompt(tasks, pad_token_id=PAD, max_length=10_000)
    assert shared.n_tokens < plain.n_tokens
    model = tiny_reward_model()
    setattr(model.config, OFFSET_KEY, 0.3)
    expected = rewards(model, plain.input_ids, plain.attention_mask)
    assert shared.prompt_ids is not None and shared.prompt_mask is not None and shared.prompt_of_row is not None
    got = shared_prompt_rewards(
        model, shared.prompt_ids, shared.prompt_mask, shared.input_ids, shared.attention_mask, shared.prompt_of_row
    )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    weights = torch.linspace(-1, 1, expected.shape[0])
    params = list(model.parameters())
    for g_shared, g_plain in zip(
        torch.autograd.grad((got * weights).sum(), params),
        torch.autograd.grad((expected * weights).sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(g_shared, g_plain, atol=1e-4, rtol=1e-4)


def test_training_in_shared_mode_reaches_the_same_weights() -> None:
    cfg = RewardConfig(learning_rate=3e-3, batch_size=4, warmup_ratio=0.0, max_length=256)
    tasks, tokenizer = marker_tasks(8, seed=3), tiny_tokenizer()
    plain, shared = tiny_reward_model(), tiny_reward_model()
    train_reward_model(cfg, plain, tokenizer, tasks)
    train_reward_model(replace(cfg, shared_prompt=True), shared, tokenizer, tasks)
    for (name, p), q in zip(plain.state_dict().items(), shared.state_dict().values(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-4, rtol=1e-4, msg=name)


def test_shared_prompt_excludes_activation_checkpointing() -> None:
    with pytest.raises(ValueError, match="shared_prompt"):
        RewardConfig(shared_prompt=True, gradient_checkpointing=True)
