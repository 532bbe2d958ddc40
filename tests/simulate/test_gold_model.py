"""The `model:PATH` gold: a tiny random reward-model folder built in code scores (prompt, text) pairs."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest

from app.simulate.gold import resolve_gold

PROMPTS = ["Write a short poem about the sea.", "What is 2 + 2?", "Hello"]
TEXTS = ["The sea is wide and the sky is blue.", "4", "Hello, how are you today? I am fine, thank you!"]


def build_tiny_reward_model(out_dir: Path) -> Path:
    """A 2-layer random Llama with a one-label head and the tiny ChatML tokenizer, saved in HF format."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from trainer.common.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForSequenceClassification(config)
        torch.nn.init.normal_(model.score.weight, std=1.0)  # visible differences between texts
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_reward_model(tmp_path_factory.mktemp("rm"))


def test_scores_do_not_depend_on_batching(rm_dir):
    from trainer.gold.model import RewardModelScorer

    batched = RewardModelScorer(rm_dir, device="cpu", batch_size=8)(PROMPTS, TEXTS)
    one_by_one = RewardModelScorer(rm_dir, device="cpu", batch_size=1)(PROMPTS, TEXTS)
    assert batched.shape == (3,)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert np.unique(batched.round(6)).size == 3


def test_chat_template_formats_user_then_assistant(rm_dir):
    from trainer.gold.model import RewardModelScorer

    text = RewardModelScorer(rm_dir, device="cpu").format("hi", "there")
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nthere<|im_end|>\n"


def test_offset_in_config_is_subtracted_and_model_gold_uses_the_scorer(rm_dir, tmp_path):
    import shutil

    from trainer.cli import install_reward_model_gold

    install_reward_model_gold()

    shifted = tmp_path / "shifted"
    shutil.copytree(rm_dir, shifted)
    data = json.loads((shifted / "config.json").read_text())
    (shifted / "config.json").write_text(json.dumps({**data, "ranklab_reward_offset": 1.5}))
    plain = resolve_gold(f"model:{rm_dir}")
    moved = resolve_gold(f"model:{shifted}")
    np.testing.assert_allclose(moved.scores(PROMPTS[0], TEXTS), plain.scores(PROMPTS[0], TEXTS) - 1.5, atol=1e-5)
    assert plain.name == f"model:{rm_dir}" and plain.flag_below is None
