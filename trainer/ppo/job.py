"""The `train_policy` job from database to registered model: versions, prompts, models, PPO, a `policy` version.

Policy from an SFT or policy version (the newest SFT by default); frozen reference = its SFT ancestor; value model
initialised from the reward version (the newest by default), which also scores the episodes; prompts from the train
split, fixed by the first attempt so a resumed job continues on the same prompt order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.models import Completion, ModelKind, Prompt, Ranking, RankingTask, Split
from app.schemas.training import TrainPolicyParams
from trainer.common.chat import encode_prompt_completion, to_messages
from trainer.common.context import JobContext, NewModelVersion, WorkerStopping
from trainer.common.progress import Reporter
from trainer.ppo.plan import PolicyPlan, resolve_plan

MAX_PTX_TEXTS = 2048
"""SFT-style texts for PPO-ptx: at most this many top-ranked outputs of train prompts."""


def fixed_prompts(ctx: JobContext, params: TrainPolicyParams, path: Path) -> list[list[dict[str, str]]]:
    """Train-split prompts (their conversations), chosen once: the first attempt writes their ids to `path`, later
    ones read them."""
    if path.is_file():
        ids = json.loads(path.read_text())["prompt_ids"]
    else:
        with ctx.transaction() as session:
            stmt = select(Prompt.id).where(Prompt.split == Split.train).order_by(Prompt.id)
            ids = list(session.scalars(stmt.limit(params.max_prompts) if params.max_prompts else stmt))
        if not ids:
            raise ValueError("no train-split prompts to run PPO on: import prompts first")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + ".part").write_text(json.dumps({"prompt_ids": ids}))
        os.replace(path.with_name(path.name + ".part"), path)
    with ctx.transaction() as session:
        texts: dict[int, list[dict[str, str]]] = dict(
            session.execute(select(Prompt.id, Prompt.messages).where(Prompt.id.in_(ids))).all()  # type: ignore[arg-type]
        )
    return [texts[i] for i in ids if i in texts]


def ptx_texts(ctx: JobContext, tokenizer: Any) -> list[list[int]]:
    """SFT-style text for PPO-ptx: the labelers' top-ranked output of train prompts, as the token ids of the answered
    conversation (`trainer.common.chat`)."""
    with ctx.transaction() as session:
        rows = session.execute(
            select(Prompt.messages, Ranking.buckets)
            .join(RankingTask, RankingTask.id == Ranking.task_id)
            .join(Prompt, Prompt.id == RankingTask.prompt_id)
            .where(Prompt.split == Split.train, Ranking.not_rankable.is_(False))
            .order_by(Ranking.id)
            .limit(MAX_PTX_TEXTS)
        ).all()
        best = {bucket[0][0] for _, bucket in rows if bucket and bucket[0]}
        texts = dict(session.execute(select(Completion.id, Completion.text).where(Completion.id.in_(best))).all())
    pairs = [(prompt, texts[buckets[0][0]]) for prompt, buckets in rows if buckets and buckets[0][0] in texts]
    if not pairs:
        raise ValueError("ptx_coef > 0 needs ranked outputs of train prompts (the SFT-style text it trains on)")
    return [encode_prompt_completion(tokenizer, to_messages(p), c).input_ids for p, c in pairs]


def ppo_config(params: TrainPolicyParams) -> Any:
    """The trainer's config from the job's params (`PPOConfig.from_params`)."""
    from trainer.ppo.config import PPOConfig

    return PPOConfig.from_params(params)


def plan_memory(ctx: JobContext, params: TrainPolicyParams, cfg: Any, m: Any, prompts: list[Any]) -> Any:
    """The config with the largest micro-batch (a divisor of a minibatch, the rest by accumulation) whose memory
    estimate fits `max_memory_gb` (default: what is free), with activation checkpointing of policy and value model
    when needed; the choice goes to the job log. DoesNotFit, naming the numbers, when one episode does not fit."""
    from dataclasses import replace

    from trainer.common.generation import encode_prompts
    from trainer.common.memory import FLOAT32, available_memory, choose_micro_batch, divisors, frozen, shape_of
    from trainer.common.models import enable_activation_checkpointing

    budget, source = available_memory(ctx.device, params.max_memory_gb)
    models = [shape_of(m.policy), shape_of(m.value_model), frozen(shape_of(m.reward_model))]
    if m.reference is not m.policy:
        models.append(frozen(shape_of(m.reference)))
    tokens = max(len(ids) for ids in encode_prompts(m.tokenizer, prompts, cfg.max_prompt_length)) + cfg.response_length
    config = m.policy.config
    logits = 3 * cfg.chunk_tokens * int(config.vocab_size) * FLOAT32  # a chunk of logits, its softmax, its gradient
    kv_cache = cfg.generation_batch_size * tokens * 2 * config.num_hidden_layers * config.hidden_size * FLOAT32
    per_minibatch = cfg.batch_size // cfg.minibatches
    plan = choose_micro_batch(
        models, candidates=divisors(per_minibatch), tokens_per_example=tokens, budget=budget, budget_source=source,
        extra=max(logits, kv_cache),
    )  # fmt: skip
    ctx.log(plan.describe() + f" (an episode = {tokens} tokens at most)")
    if plan.checkpointing:
        enable_activation_checkpointing(m.policy)
        enable_activation_checkpointing(m.value_model)
    return replace(cfg, grad_accum=per_minibatch // plan.micro_batch)


def final_metrics(history: list[dict[str, float]], plan: PolicyPlan, steps: int) -> dict[str, Any]:
    """What the registry keeps: the last steps' mean reward and KL, and which versions it came from."""
    tail = history[-max(1, len(history) // 10) :] or [{}]

    def mean(key: str) -> float | None:
        values = [m[key] for m in tail if key in m]
        return round(sum(values) / len(values), 6) if values else None

    return {
        "reward_version": plan.reward.id, "sft_version": plan.sft.id, "steps": steps,
        "mean_score": mean("objective/scores"), "kl": mean("objective/kl"), "entropy": mean("objective/entropy"),
        "eos_rate": mean("episode/eos_rate"),
        "first_mean_score": history[0].get("objective/scores") if history else None,
    }  # fmt: skip


def train_policy_job(ctx: JobContext, params: TrainPolicyParams) -> NewModelVersion:
    """Everything the `train_policy` job does; returns the model for the worker to register."""
    import torch

    from trainer.common.lora import check_processes

    plan = resolve_plan(ctx, policy_version=params.policy_version, reward_version=params.reward_version)
    checkpoint_dir = ctx.data_dir / "checkpoints" / f"job-{ctx.job_id}-policy"
    prompts = fixed_prompts(ctx, params, checkpoint_dir.with_name(checkpoint_dir.name + "-prompts.json"))
    ctx.log(f"PPO on {len(prompts)} train prompts: policy v{plan.start.id}, reference SFT v{plan.sft.id}, "
            f"reward v{plan.reward.id}, {params.steps} steps of {params.batch_size} episodes")  # fmt: skip
    history: list[dict[str, float]] = []
    reporter = Reporter(ctx, start=0.05, end=0.95)
    report = reporter.on_metrics(params.steps)

    def on_metrics(step: int, metrics: dict[str, float]) -> None:
        history.append(metrics)
        report(step, metrics)

    processes = params.processes or (torch.cuda.device_count() if ctx.device == "cuda" else 1)
    folder = ctx.model_dir("policy")
    check_processes(params.lora, processes)
    if processes > 1:
        steps = _ppo_distributed(ctx, params, plan, prompts, checkpoint_dir, folder, processes, on_metrics, reporter)
    else:
        steps = _ppo_here(ctx, params, plan, prompts, checkpoint_dir, folder, on_metrics, reporter)
    _remove(checkpoint_dir)
    ctx.progress(1.0)
    metrics = final_metrics(history, plan, steps) | {"processes": processes, "method": "ppo"}
    ctx.log(f"PPO done: mean RM score {metrics['mean_score']}, KL {metrics['kl']} over the last steps")
    name = f"policy-job{ctx.job_id}"
    return NewModelVersion(ModelKind.policy, name, folder, parent_id=plan.start.id, metrics=metrics)


MetricsFn = Callable[[int, dict[str, float]], None]


def _ppo_here(
    ctx: JobContext,
    params: TrainPolicyParams,
    plan: PolicyPlan,
    prompts: list[list[dict[str, str]]],
    checkpoint_dir: Path,
    folder: Path,
    on_metrics: MetricsFn,
    reporter: Reporter,
) -> int:
    """PPO in this process; writes the policy folder; returns the steps done (WorkerStopping if paused)."""
    from trainer.common.models import save_model_folder
    from trainer.ppo.plan import load_models
    from trainer.ppo.rollout import reward_model_fn
    from trainer.ppo.train import train_policy

    m = load_models(plan, ctx.device, params.lora)
    if params.lora is not None:
        from trainer.common.lora import describe

        same = "the policy with its adapters off" if m.reference is m.policy else f"SFT v{plan.sft.id}, loaded apart"
        ctx.log(f"policy {describe(m.policy)}; value model {describe(m.value_model)}; reference: {same}")
    cfg = plan_memory(ctx, params, ppo_config(params), m, prompts)
    result = train_policy(
        cfg, m.policy, m.reference, m.value_model, reward_model_fn(m.reward_model, m.reward_tokenizer),
        prompts, m.tokenizer, on_metrics=on_metrics, checkpoint_dir=checkpoint_dir,
        checkpoint_every=params.checkpoint_every, should_stop=reporter.should_stop,
        ptx_texts=ptx_texts(ctx, m.tokenizer) if params.ptx_coef > 0 else None,
    )  # fmt: skip
    if result.stopped:
        raise WorkerStopping(f"worker stopping: PPO paused at step {result.steps} (checkpointed)")
    if m.policy_adapters is not None:
        from trainer.common.lora import save_merged

        save_merged(m.policy_adapters, m.tokenizer, folder)
    else:
        save_model_folder(m.policy, m.tokenizer, folder)
    return result.steps


def _ppo_distributed(
    ctx: JobContext,
    params: TrainPolicyParams,
    plan: PolicyPlan,
    prompts: list[list[dict[str, str]]],
    checkpoint_dir: Path,
    folder: Path,
    processes: int,
    on_metrics: MetricsFn,
    reporter: Reporter,
) -> int:
    """PPO under torchrun with `processes` ranks (rollouts split across them); rank 0 writes the policy folder."""
    from dataclasses import asdict

    from trainer.common.launch import RunFolder, launch_job
    from trainer.common.tokenizer import load_tokenizer

    run = RunFolder.beside(checkpoint_dir)
    texts = ptx_texts(ctx, load_tokenizer(plan.start.path)) if params.ptx_coef > 0 else None
    steps = 0

    def count(step: int, metrics: dict[str, float]) -> None:
        nonlocal steps
        steps = step
        on_metrics(step, metrics)

    launch_job(
        ctx, run, module="trainer.ppo.ddp", what="PPO", processes=processes, on_metrics=count,
        should_stop=reporter.should_stop, checkpoint_dir=checkpoint_dir, checkpoint_every=params.checkpoint_every,
        out_dir=folder, config=asdict(ppo_config(params)), prompts=prompts, ptx_texts=texts,
        **{name: {"id": v["id"], "path": str(v["path"])} for name, v in asdict(plan).items()},
    )  # fmt: skip
    run.remove()
    return steps


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
