"""PPO fine-tuning of a policy against a reward (InstructGPT section 3.5; "The N implementation details of RLHF").

One step: take `batch_size` prompts (all processes together), sample a response to each, score it, compute per-token
rewards ``-beta * (log pi - log pi_ref)`` plus the (whitened) score on the last token, GAE advantages, then
`epochs` passes of `minibatches` optimizer steps of the clipped policy and value losses (plus the PPO-ptx LM loss).

Data position. Prompt order is a permutation per pass over the prompts from (seed, pass); generation seeds come
from (seed, step, chunk); minibatch order from (seed, step, epoch). So the step count alone locates the data and a
resumed run repeats an uninterrupted one exactly. Under torchrun each process takes its slice of every batch and
its own minibatches; DDP averages the gradients; whitening, score statistics, the KL controller and metrics use
every process's episodes. The caller initialises the process group and places the models on their devices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainer.common.chat import Message, as_messages, to_messages
from trainer.common.checkpoint import has_checkpoint, load_state, save_state, seed_everything
from trainer.common.distributed import agreed_stop, barrier, world
from trainer.common.generation import collate_queries, encode_prompts, eos_token_ids
from trainer.common.loop import MetricsCallback, TrainResult
from trainer.common.models import disable_dropout
from trainer.common.precision import bf16_autocast
from trainer.ppo.config import PPOConfig
from trainer.ppo.model import PolicyAndValue
from trainer.ppo.rollout import RewardFn, sample_rollout, score_rollout
from trainer.ppo.state import STATE_FILE, AdaptiveKLController, FixedKLController, RunningMoments
from trainer.ppo.update import micro_batches, ppo_update, seeded_generator, shape_rewards

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def prompt_indices(step: int, n_prompts: int, batch_size: int, seed: int) -> list[int]:
    """Prompt index of each episode of step `step`: consecutive slices of one permutation per pass over prompts."""
    out = []
    for episode in range(step * batch_size, (step + 1) * batch_size):
        epoch, position = divmod(episode, n_prompts)
        out.append(int(torch.randperm(n_prompts, generator=seeded_generator(seed, 1, epoch))[position]))
    return out


Prompt = str | Sequence[Message] | Sequence[int]
"""A prompt text (one user message), a conversation, or token ids used as they are."""


def _prompt_conversations_and_ids(
    prompts: Sequence[Prompt], tokenizer: PreTrainedTokenizerBase, max_prompt_length: int
) -> tuple[list[list[Message]], list[list[int]]]:
    """Each prompt's conversation (what the reward function sees) and ids (what the policy continues)."""
    if not prompts:
        raise ValueError("train_policy needs at least one prompt")
    conversations: list[list[Message]] = []
    ids: list[list[int]] = []
    for prompt in prompts:
        if isinstance(prompt, str):
            messages: list[Message] = list(to_messages(prompt))
        elif all(isinstance(m, Mapping) for m in prompt):
            messages = [m for m in prompt if isinstance(m, Mapping)]
        else:
            row = [int(i) for i in prompt if not isinstance(i, Mapping)][-max_prompt_length:]
            conversations.append(list(as_messages(str(tokenizer.decode(row, skip_special_tokens=True)))))
            ids.append(row)
            continue
        conversations.append(messages)
        ids.extend(encode_prompts(tokenizer, [messages], max_prompt_length))
    return conversations, ids


def ptx_stream(
    texts: Sequence[str | Sequence[int]],
    tokenizer: PreTrainedTokenizerBase,
    cfg: PPOConfig,
    step: int,
    rank: int,
    world_size: int,
) -> Callable[[int], tuple[Tensor, Tensor]]:
    """Micro-batch `i` of step `step` -> right-padded (ids, mask) of pretraining texts (strings are tokenised,
    id lists used as they are), cycling deterministically."""
    encoded = [(tokenizer(t)["input_ids"] if isinstance(t, str) else list(t))[: cfg.ptx_max_length] for t in texts]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    if not encoded:
        raise ValueError("PPO-ptx needs texts of at least two tokens")
    per_step = cfg.epochs * cfg.minibatches * cfg.grad_accum

    def batch(i: int) -> tuple[Tensor, Tensor]:
        first = ((step * per_step + i) * world_size + rank) * cfg.ptx_batch_size
        rows = [encoded[(first + k) % len(encoded)] for k in range(cfg.ptx_batch_size)]
        ids, mask = collate_queries([r[::-1] for r in rows], int(tokenizer.pad_token_id))
        return ids.flip(-1), mask.flip(-1)  # right padding

    return batch


def _prepare(policy: PreTrainedModel, ref_policy: PreTrainedModel, value_model: PreTrainedModel) -> None:
    for model in (policy, ref_policy, value_model):
        disable_dropout(model)  # LoRA's dropout too: the first minibatch's ratio must be exactly 1
    if ref_policy is not policy:  # with LoRA the reference is the policy with its adapters off
        ref_policy.eval()
        ref_policy.requires_grad_(False)
    policy.train()
    value_model.train()


def _optimizer(
    cfg: PPOConfig, policy: nn.Module, value_model: nn.Module
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    groups = [
        {"params": [p for p in policy.parameters() if p.requires_grad], "lr": cfg.learning_rate},
        {"params": [p for p in value_model.parameters() if p.requires_grad], "lr": cfg.value_lr or cfg.learning_rate},
    ]
    optimizer = torch.optim.Adam(groups, eps=cfg.adam_eps)
    anneal = (lambda step: 1.0 - step / cfg.steps) if cfg.anneal_lr else (lambda step: 1.0)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, anneal)


@dataclass
class _Run:
    """Everything one `train_policy` call carries from step to step (and checkpoints)."""

    cfg: PPOConfig
    policy: PreTrainedModel
    ref_policy: PreTrainedModel
    value_model: PreTrainedModel
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    kl_ctl: FixedKLController
    moments: RunningMoments
    config: dict[str, Any]
    step: int = 0

    def state(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "value_model": self.value_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "kl_controller": self.kl_ctl.state_dict(),
            "score_moments": self.moments.state_dict(),
            "step": self.step,
            "config": self.config,
        }

    def load(self, path: Path) -> None:
        state = load_state(path, self.config, state_file=STATE_FILE)
        self.policy.load_state_dict(state["policy"])
        self.value_model.load_state_dict(state["value_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.kl_ctl.load_state_dict(state["kl_controller"])
        self.moments.load_state_dict(state["score_moments"])
        self.step = int(state["step"])


def train_policy(
    cfg: PPOConfig,
    policy: PreTrainedModel,
    ref_policy: PreTrainedModel,
    value_model: PreTrainedModel,
    reward_fn: RewardFn,
    prompts: Sequence[Prompt],
    tokenizer: PreTrainedTokenizerBase,
    *,
    on_metrics: MetricsCallback | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] | None = None,
    ptx_texts: Sequence[str | Sequence[int]] | None = None,
) -> TrainResult:
    """Train `policy` (and `value_model`) in place with PPO; resume from `checkpoint_dir` when it holds a state.

    `prompts` are texts or conversations (rendered and tokenised by `trainer.common.chat`) or token-id lists (used
    as they are); `ptx_texts` are texts or token-id lists for the PPO-ptx loss; `reward_fn`
    scores episodes (see `trainer.ppo.rollout.RewardInput`); `ref_policy` is frozen and may sit on another device
    or in bf16. Only rank 0 reports metrics and writes checkpoints.
    """
    rank, world_size = world()
    if cfg.batch_size % world_size or (cfg.batch_size // world_size) % (cfg.minibatches * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} does not split over {world_size} processes and minibatches")
    if cfg.ptx_coef > 0 and not ptx_texts:
        raise ValueError("ptx_coef > 0 needs ptx_texts")
    conversations, prompt_ids = _prompt_conversations_and_ids(prompts, tokenizer, cfg.max_prompt_length)
    _prepare(policy, ref_policy, value_model)
    optimizer, scheduler = _optimizer(cfg, policy, value_model)
    kl_ctl = (
        AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
        if cfg.adaptive_kl
        else FixedKLController(cfg.kl_coef)
    )
    net: nn.Module = PolicyAndValue(policy, value_model, cfg.chunk_tokens)
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(net)
    config = asdict(cfg) | {"world_size": world_size, "prompts": len(prompt_ids)}
    run = _Run(cfg, policy, ref_policy, value_model, net, optimizer, scheduler, kl_ctl, RunningMoments(), config)
    if checkpoint_dir is not None and has_checkpoint(checkpoint_dir, STATE_FILE):
        run.load(checkpoint_dir)
    else:
        seed_everything(cfg.seed)
    eos_ids = sorted(eos_token_ids(policy, tokenizer))
    metrics: dict[str, float] = {}

    def checkpoint() -> None:
        if checkpoint_dir is not None and rank == 0:
            save_state(checkpoint_dir, run.state(), state_file=STATE_FILE)
        barrier()

    while run.step < cfg.steps:
        if agreed_stop(should_stop):
            checkpoint()
            return TrainResult(run.step, cfg.steps, True, metrics)
        metrics = _ppo_step(run, reward_fn, conversations, prompt_ids, tokenizer, eos_ids, ptx_texts, rank, world_size)
        run.step += 1
        if on_metrics is not None and rank == 0:
            on_metrics(run.step, metrics)
        if (checkpoint_every and run.step % checkpoint_every == 0) or run.step == cfg.steps:
            checkpoint()
    return TrainResult(run.step, cfg.steps, False, metrics)


def _ppo_step(
    run: _Run,
    reward_fn: RewardFn,
    conversations: list[list[Message]],
    prompt_ids: list[list[int]],
    tokenizer: PreTrainedTokenizerBase,
    eos_ids: list[int],
    ptx_texts: Sequence[str | Sequence[int]] | None,
    rank: int,
    world_size: int,
) -> dict[str, float]:
    """One rollout, scoring and update; returns the step's metrics."""
    cfg, step, started = run.cfg, run.step, time.perf_counter()
    local = cfg.batch_size // world_size
    chosen = prompt_indices(step, len(prompt_ids), cfg.batch_size, cfg.seed)[rank * local : (rank + 1) * local]
    first_epoch = micro_batches(local, cfg, step, 0, rank)
    with bf16_autocast(cfg.bf16, run.policy.device):
        rollout, generation_s = sample_rollout(
            run.policy, tokenizer, [prompt_ids[i] for i in chosen], [conversations[i] for i in chosen], reward_fn,
            max_new_tokens=cfg.response_length, temperature=cfg.temperature, eos_ids=eos_ids,
            generation_batch_size=cfg.generation_batch_size, seed=cfg.seed, step=step,
            first_chunk=rank * -(-local // cfg.generation_batch_size), cache_implementation=cfg.cache_implementation,
        )  # fmt: skip
        score_rollout(
            rollout, run.policy, run.ref_policy, run.value_model, [i for mb in first_epoch for i in mb],
            temperature=cfg.temperature, chunk_tokens=cfg.chunk_tokens,
        )  # fmt: skip
    batch = shape_rewards(rollout, cfg, run.kl_ctl.value, run.moments)
    scored = time.perf_counter()
    ptx = ptx_stream(ptx_texts, tokenizer, cfg, step, rank, world_size) if cfg.ptx_coef > 0 and ptx_texts else None
    lr = float(run.scheduler.get_last_lr()[0])
    metrics = batch.metrics | ppo_update(
        run.net, run.optimizer, batch, first_epoch, cfg, step=step, rank=rank, ptx_batch=ptx
    )
    run.scheduler.step()
    run.kl_ctl.update(batch.metrics["objective/kl"], cfg.batch_size)
    seconds = time.perf_counter() - started
    return metrics | {
        "lr": lr,
        "perf/episodes_per_s": cfg.batch_size / seconds,
        "perf/generation_s": generation_s,
        "perf/scoring_s": scored - started - generation_s,
        "perf/update_s": time.perf_counter() - scored,
        "perf/step_s": seconds,
    }
