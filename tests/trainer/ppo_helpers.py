"""Shared builders for the PPO tests: a tiny random Llama policy and a tiny value model, made in memory."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from tests.trainer.reward_helpers import tiny_reward_model
from trainer.common.models import disable_dropout
from trainer.common.tiny import build_tiny_tokenizer
from trainer.ppo.config import PPOConfig
from trainer.ppo.rollout import RewardInput

TOKENIZER = build_tiny_tokenizer()
VOCAB = len(TOKENIZER)
PROMPTS = [
    "Hello",
    "Write a short poem about the sea.",
    "What is 2 + 2?",
    "Rank the answers.",
    "Explain a list and a tuple.",
    "The quick brown dog",
    "How are you today?",
    "Paris is",
]


def tiny_policy(seed: int = 0, hidden: int = 32, *, dropout: bool = False) -> PreTrainedModel:
    """A random Llama policy; `dropout=True` leaves attention dropout on (to test that the trainer disables it)."""
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=TOKENIZER.bos_token_id,
        eos_token_id=TOKENIZER.eos_token_id,
        pad_token_id=TOKENIZER.pad_token_id,
        attention_dropout=0.1,  # the trainer must switch it off
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = TOKENIZER.pad_token_id
    if not dropout:
        disable_dropout(model)
    return model


def tiny_value_model(seed: int = 1) -> PreTrainedModel:
    model = tiny_reward_model(seed=seed, vocab_size=VOCAB)
    disable_dropout(model)
    return model


def token_id(text: str) -> int:
    ids = TOKENIZER(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, (text, ids)
    return int(ids[0])


MARKERS = torch.arange(100, 148)  # 48 of ~384 tokens: a random policy hits one in eight
CFG = PPOConfig(
    steps=30, batch_size=16, minibatches=2, epochs=2, learning_rate=3e-3, response_length=6, temperature=1.0,
    kl_coef=0.02, generation_batch_size=16,
)  # fmt: skip


def marker_reward(batch: RewardInput) -> torch.Tensor:
    """Fraction of response tokens (EOS included) that are markers."""
    hits = torch.isin(batch.response_ids, MARKERS) & batch.response_mask.bool()
    return hits.float().sum(-1) / batch.response_mask.sum(-1)
