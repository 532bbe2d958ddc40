"""LoRA on the trainers' models: which parameters train, adapters off = the base model exactly (PPO's reference),
and the merged folder that every loader reads like any other version."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from app.schemas.params import LoraParams
from trainer.common.logprobs import forward_logprobs
from trainer.common.lora import (
    ADAPTER_DIR,
    adapters_disabled,
    add_adapters,
    default_target_modules,
    has_adapters,
    save_merged,
    trainable_counts,
)
from trainer.common.reward_model import build_reward_model, load_reward_model, rewards
from trainer.common.tokenizer import load_tokenizer

PROJECTIONS = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def _policy(path: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _nudge_adapters(model: torch.nn.Module) -> None:
    """lora_B starts at 0 (adapters change nothing); give it values so adapters on and off differ."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


def _episodes() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[5, 9, 40, 41, 42, 43], [2, 7, 11, 50, 51, 2]])
    return ids, torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])


def test_default_targets_are_every_attention_and_mlp_projection(tiny_model_dir: Path) -> None:
    assert default_target_modules(_policy(tiny_model_dir)) == PROJECTIONS


def test_only_adapters_train_on_the_policy(tiny_model_dir: Path) -> None:
    model = add_adapters(_policy(tiny_model_dir), LoraParams(r=4)).get_base_model()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    layers = model.config.num_hidden_layers
    assert len(trainable) == 2 * len(PROJECTIONS) * layers  # A and B on every projection of every layer
    n_trainable, n_all = trainable_counts(model)
    assert 0 < n_trainable < n_all / 10


def test_only_adapters_and_the_score_head_train_on_the_reward_model(tiny_model_dir: Path) -> None:
    model = build_reward_model(tiny_model_dir, pad_token_id=2)
    model = add_adapters(model, LoraParams(r=4, target_modules=["q_proj", "v_proj"]), head="score").get_base_model()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    heads = [n for n in trainable if "score" in n]
    assert heads and all(".modules_to_save." in n for n in heads)  # the head's trained copy, fully
    assert all(n in heads or "lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable if "lora_" in n} == {"q_proj", "v_proj"}


def test_unknown_target_module_is_named() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))  # fmt: skip
    with pytest.raises(ValueError, match="lora.target_modules"):
        add_adapters(model, LoraParams(target_modules=["not_a_layer"]))


def test_reference_with_adapters_off_equals_the_base_model_exactly(tiny_model_dir: Path) -> None:
    base = _policy(tiny_model_dir)
    policy = add_adapters(_policy(tiny_model_dir), LoraParams(r=4, dropout=0.0)).get_base_model()
    _nudge_adapters(policy)
    ids, mask = _episodes()
    with torch.no_grad():
        expected, _ = forward_logprobs(base, ids, mask, 3)
        with adapters_disabled(policy):
            reference, _ = forward_logprobs(policy, ids, mask, 3)
        adapted, _ = forward_logprobs(policy, ids, mask, 3)
    assert torch.equal(reference, expected)
    assert not torch.allclose(adapted, expected)  # the adapters are back on after the block
    assert has_adapters(policy) and not has_adapters(base)
    with adapters_disabled(base):  # a model without adapters: nothing to switch
        assert torch.equal(forward_logprobs(base, ids, mask, 3)[0], expected)


def test_merged_policy_folder_loads_with_transformers(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapted = add_adapters(_policy(tiny_model_dir), LoraParams(r=4, dropout=0.0))
    _nudge_adapters(adapted.get_base_model())
    ids, mask = _episodes()
    with torch.no_grad():
        expected, _ = forward_logprobs(adapted.get_base_model(), ids, mask, 3)
    folder = save_merged(adapted, load_tokenizer(tiny_model_dir), tmp_path / "policy")
    assert (folder / ADAPTER_DIR / "adapter_config.json").is_file()
    assert (folder / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    loaded = _policy(folder)
    assert not has_adapters(loaded) and not any("lora" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(forward_logprobs(loaded, ids, mask, 3)[0], expected, rtol=1e-5, atol=1e-5)


def test_merged_reward_model_loads_with_its_trained_head(tiny_model_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    adapted = add_adapters(build_reward_model(tiny_model_dir, pad_token_id=2), LoraParams(r=4, dropout=0.0),
                           head="score")  # fmt: skip
    model = adapted.get_base_model().eval()
    _nudge_adapters(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "score" in name and p.requires_grad:
                p.add_(1.0)  # the trained copy of the head differs from the one it started from
    ids, mask = _episodes()
    with torch.no_grad():
        expected = rewards(model, ids, mask)
    folder = save_merged(adapted, load_tokenizer(tiny_model_dir), tmp_path / "reward")
    loaded, _ = load_reward_model(folder)
    with torch.no_grad():
        torch.testing.assert_close(rewards(loaded, ids, mask), expected, rtol=1e-5, atol=1e-5)


def test_ppo_scoring_reads_the_reference_as_the_base_model_exactly() -> None:
    """score_rollout with the LoRA policy as its own reference: reference log-probs = the base model's, bit for bit,
    while the old log-probs are the adapted policy's."""
    from tests.trainer.ppo_helpers import PROMPTS, TOKENIZER, tiny_policy, tiny_value_model
    from trainer.common.chat import as_messages
    from trainer.common.generation import encode_prompts
    from trainer.ppo.rollout import sample_rollout, score_rollout

    base = tiny_policy()
    policy = add_adapters(tiny_policy(), LoraParams(r=4, dropout=0.0)).get_base_model()
    _nudge_adapters(policy)
    rollout, _ = sample_rollout(
        policy, TOKENIZER, encode_prompts(TOKENIZER, PROMPTS, 64), [as_messages(p) for p in PROMPTS],
        lambda batch: batch.response_mask.sum(-1).float(), max_new_tokens=5, temperature=1.0, eos_ids=[2],
        generation_batch_size=4, seed=3, step=0, first_chunk=0,
    )  # fmt: skip
    chunks = list(torch.arange(len(PROMPTS)).split(3))
    score_rollout(rollout, policy, policy, tiny_value_model(), chunks, temperature=1.0, chunk_tokens=4)
    shared = rollout.ref_logprobs.clone()
    adapted = rollout.logprobs.clone()
    score_rollout(rollout, policy, base, tiny_value_model(), chunks, temperature=1.0, chunk_tokens=4)
    assert torch.equal(shared, rollout.ref_logprobs)  # adapters off = the base model, exactly
    assert not torch.equal(adapted, shared)  # and the policy itself still reads with its adapters
    assert has_adapters(policy) and all(p.requires_grad for n, p in policy.named_parameters() if "lora_" in n)


def test_ppo_keeps_the_adapters_trainable_when_the_reference_is_the_policy() -> None:
    from tests.trainer.ppo_helpers import tiny_policy, tiny_value_model
    from trainer.ppo.train import _prepare

    policy = add_adapters(tiny_policy(), LoraParams(r=4)).get_base_model()
    _prepare(policy, policy, tiny_value_model())
    assert policy.training and trainable_counts(policy)[0] > 0
    assert all(m.p == 0.0 for n, m in policy.named_modules() if n.endswith("lora_dropout.default"))  # ratio 1


def test_lora_in_several_processes_is_refused_with_a_message_and_one_process_adapts_the_policy(tiny_model_dir):
    from trainer.common.lora import ONE_PROCESS, adapt_policy, check_processes

    check_processes(None, 4)  # no LoRA: any number of processes
    check_processes(LoraParams(), 1)
    with pytest.raises(ValueError, match="set processes to 1") as refused:
        check_processes(LoraParams(), 2)
    assert str(refused.value) == ONE_PROCESS
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="processes > 1"):
        adapt_policy(base, LoraParams(), 2)
    policy, wrapper = adapt_policy(base, LoraParams(r=4), 1)
    assert policy is wrapper.get_base_model()
    trainable = [name for name, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
