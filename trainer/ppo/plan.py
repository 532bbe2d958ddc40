"""The versions a PPO job works with, and their models loaded for training (used by the job and by each rank)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.models import ModelKind
from app.schemas.params import LoraParams
from app.services import model_registry as registry
from trainer.common.context import JobContext
from trainer.common.versions import Version, model_folder, sft_ancestor


@dataclass(frozen=True)
class PolicyPlan:
    """The versions a PPO job works with."""

    start: Version
    sft: Version
    """The reference policy: the start's SFT ancestor (the start itself when it is an SFT version)."""
    reward: Version


def resolve_plan(ctx: JobContext, *, policy_version: int | None, reward_version: int | None) -> PolicyPlan:
    """The start, reference and reward versions, with errors a person can act on."""
    with ctx.transaction() as session:
        start = (
            registry.get_model(session, model_id=policy_version)
            if policy_version is not None
            else registry.newest_model(session, kind=ModelKind.sft)
        )
        reward = (
            registry.get_model(session, model_id=reward_version)
            if reward_version is not None
            else registry.newest_model(session, kind=ModelKind.reward)
        )
        if start is None or start.kind == ModelKind.reward:
            raise ValueError("no SFT or policy model to start from: run `ranklab demo` or `ranklab models add`")
        if reward is None or reward.kind != ModelKind.reward:
            raise ValueError("no reward model: train one first (a train_reward job)")
        return PolicyPlan(model_folder(start), model_folder(sft_ancestor(session, start)), model_folder(reward))


@dataclass
class PPOModels:
    """Everything PPO trains and reads: trainables in float32, frozen ones in bf16 on CUDA."""

    policy: Any
    reference: Any
    value_model: Any
    reward_model: Any
    reward_tokenizer: Any
    """The reward model's own tokenizer: episodes are re-encoded as the reward model was trained."""
    tokenizer: Any
    """The policy's tokenizer."""
    policy_adapters: Any = None
    """With LoRA: peft's wrapper of the policy (`trainer.common.lora.save_merged` writes the version from it)."""


def load_models(plan: PolicyPlan, device: str, lora: LoraParams | None = None) -> PPOModels:
    """The policy and value model to train, the frozen reference and reward model, on `device`.

    With `lora` the policy and the value model train adapters; when the policy starts from the SFT version the
    reference is the policy object itself (its adapters switched off while scoring), so the base is held once."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.common.lora import add_adapters
    from trainer.common.models import load_policy
    from trainer.common.reward_model import build_reward_model, load_reward_model

    frozen = torch.bfloat16 if device == "cuda" else torch.float32
    policy, tokenizer = load_policy(plan.start.path, device=device, dtype=torch.float32)
    value_model = build_reward_model(plan.reward.path, pad_token_id=int(tokenizer.pad_token_id))
    value_model.to(torch.device(device))  # type: ignore[arg-type]  # transformers types .to oddly
    adapters, shared = None, lora is not None and plan.start.id == plan.sft.id
    if lora is not None:
        adapters = add_adapters(policy, lora)
        policy = adapters.get_base_model()
        value_model = add_adapters(value_model, lora, head="score").get_base_model()
    if shared:
        reference = policy
    else:
        reference = AutoModelForCausalLM.from_pretrained(plan.sft.path, dtype=frozen, device_map=device).eval()
    reward_model, reward_tokenizer = load_reward_model(plan.reward.path, device=device, dtype=frozen)
    return PPOModels(policy, reference, value_model, reward_model, reward_tokenizer, tokenizer, adapters)
