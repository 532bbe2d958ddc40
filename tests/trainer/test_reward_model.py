"""Reward read at the last real token; padding side; HF round trip; centring offset; dropout off."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, GPT2Config

from tests.trainer.reward_helpers import marker_tasks, one_thread, tiny_reward_model, tiny_tokenizer
from trainer.common.reward_model import (
    OFFSET_KEY,
    build_reward_model,
    center_rewards,
    last_token_index,
    load_reward_model,
    reward_offset,
    rewards,
    save_reward_model,
    score_sequences,
)
from trainer.common.tiny import build_tiny_model
from trainer.reward.data import collate_rankings, encode_tasks

PAD = 2
pytestmark = pytest.mark.usefixtures(one_thread.__name__)


def left_pad(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = attention_mask.sum(-1)
    ids, mask = torch.full_like(input_ids, PAD), torch.zeros_like(attention_mask)
    width = input_ids.shape[1]
    for i, n in enumerate(lengths.tolist()):
        ids[i, width - n :] = input_ids[i, :n]
        mask[i, width - n :] = 1
    return ids, mask


@pytest.fixture(scope="module")
def batch():
    tasks = encode_tasks(marker_tasks(3, seed=1), tiny_tokenizer(), max_length=64)
    return collate_rankings(tasks, pad_token_id=PAD)


def test_last_token_index_any_padding_side() -> None:
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [2, 3, 3]


def test_left_and_right_padding_give_the_same_rewards(batch) -> None:
    model = tiny_reward_model()
    right = rewards(model, batch.input_ids, batch.attention_mask)
    ids, mask = left_pad(batch.input_ids, batch.attention_mask)
    assert not torch.equal(ids, batch.input_ids)
    torch.testing.assert_close(rewards(model, ids, mask), right, atol=1e-5, rtol=1e-5)
    rows = zip(ids, mask, strict=True)
    one_by_one = torch.cat([rewards(model, i[m.bool()][None], m[m.bool()][None]) for i, m in rows])
    torch.testing.assert_close(one_by_one, right, atol=1e-5, rtol=1e-5)


def test_saved_folder_scores_identically_with_hf(batch, tmp_path: Path) -> None:
    model = tiny_reward_model()
    setattr(model.config, OFFSET_KEY, 0.75)
    expected = rewards(model, batch.input_ids, batch.attention_mask).detach()
    save_reward_model(model, tiny_tokenizer(), tmp_path / "rm")
    assert json.loads((tmp_path / "rm" / "config.json").read_text())[OFFSET_KEY] == 0.75
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    with torch.no_grad():
        logits = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (N, 1)
    torch.testing.assert_close(logits.squeeze(-1) - 0.75, expected, atol=1e-5, rtol=1e-5)
    ours, _ = load_reward_model(tmp_path / "rm")
    assert reward_offset(ours) == 0.75
    torch.testing.assert_close(rewards(ours, batch.input_ids, batch.attention_mask), expected)


def test_pad_equal_to_eos_trap_is_why_sequences_never_end_in_pad() -> None:
    model = tiny_reward_model()
    ids, mask = torch.tensor([[5, 6, 7, PAD]]), torch.ones(1, 4, dtype=torch.long)  # ends in EOS = pad
    with torch.no_grad():
        hf = model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)
        assert not torch.allclose(hf, rewards(model, ids, mask))  # HF reads token 7, the mask says EOS
        torch.testing.assert_close(hf, rewards(model, ids[:, :3], mask[:, :3]))


def test_build_from_causal_lm_folder_has_fresh_head(tmp_path: Path) -> None:
    model = build_reward_model(build_tiny_model(tmp_path / "sft"), pad_token_id=PAD)
    assert model.config.num_labels == 1 and model.config.pad_token_id == PAD
    assert model.score.weight.shape == (1, 64) and reward_offset(model) == 0.0


def test_dropout_is_off_in_train_mode() -> None:
    config = GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32, eos_token_id=0)
    model = build_reward_model(config, pad_token_id=0).train()
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    ids, mask = torch.tensor([[3, 4, 5]]), torch.ones(1, 3, dtype=torch.long)
    torch.testing.assert_close(rewards(model, ids, mask), rewards(model, ids, mask), atol=0, rtol=0)
    llama = tiny_reward_model()
    assert llama.config.attention_dropout == 0.0 and llama.model.layers[0].self_attn.attention_dropout == 0.0


def test_center_rewards_makes_the_sft_mean_zero(batch) -> None:
    model = tiny_reward_model()
    sequences = [row[m.bool()].tolist() for row, m in zip(batch.input_ids, batch.attention_mask, strict=True)]
    before = score_sequences(model, sequences, pad_token_id=PAD, batch_size=3)
    offset = center_rewards(model, sequences, pad_token_id=PAD, batch_size=5)
    after = score_sequences(model, sequences, pad_token_id=PAD)
    assert offset == pytest.approx(float(before.mean()), abs=1e-6)
    assert float(after.mean()) == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(after, before - offset)
    with pytest.raises(ValueError):
        center_rewards(model, [], pad_token_id=PAD)
