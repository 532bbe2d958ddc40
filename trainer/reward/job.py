"""The `train_reward` job from database to registered model: data, backbone, training, centring, evaluation.

The handler (`trainer/jobs/train_reward.py`) calls `train_reward_job`; each step is a small function so tests can
call them one by one. Rankings come from `app.services.exports.ranked_groups`, i.e. through exactly the export's
filters. Train/validation is the prompt's split; labelers held out for the leave-labelers-out figure never train.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.models import Completion, ModelKind, ModelVersion, Prompt, Split
from app.schemas.training import TrainRewardParams
from app.services import export_options, exports
from app.services import model_registry as registry
from trainer.common.chat import PromptLike as Prompt_
from trainer.common.context import JobContext, NewModelVersion, WorkerStopping
from trainer.common.progress import Reporter
from trainer.common.rankings import TaskGroup, group_tasks, manifest_tasks, split_tasks, tasks_from_manifest
from trainer.common.versions import model_folder

logger = logging.getLogger("ranklab.reward")
MIN_LABELERS_TO_HOLD_OUT = 5
"""Fewer labelers than this and none are held out (one held-out labeler says little)."""
FALLBACK_VAL_SHARE = 0.1
"""Share of tasks (whole prompts) kept for validation when no ranked prompt is in the validation split."""
SFT_SAMPLES_FOR_CENTRING = 256
"""SFT completions scored to centre the reward at 0."""


@dataclass(frozen=True)
class RewardData:
    """The rankings a reward-model job learns from, split."""

    train: list[TaskGroup]
    validation: list[TaskGroup]
    held_out_labelers: tuple[str, ...]
    n_rankings: int
    note: str = ""
    """How the split was made, for the job log."""


def pick_held_out(tasks: Iterable[TaskGroup], *, share: float, seed: int, researchers: set[str]) -> tuple[str, ...]:
    """A seeded share of the labelers (never researchers), or none when fewer than MIN_LABELERS_TO_HOLD_OUT."""
    labelers = sorted({r.labeler for t in tasks for r in t.rankings} - researchers)
    n = int(len(labelers) * share)
    if len(labelers) < MIN_LABELERS_TO_HOLD_OUT or n == 0:
        return ()
    return tuple(sorted(random.Random(seed).sample(labelers, n)))


def without_labelers(tasks: Iterable[TaskGroup], labelers: set[str]) -> list[TaskGroup]:
    """The tasks with those labelers' rankings removed (tasks left with none are dropped)."""
    kept = []
    for t in tasks:
        rankings = [r for r in t.rankings if r.labeler not in labelers]
        if rankings:
            kept.append(TaskGroup(t.task_id, t.prompt, t.completions, rankings, t.completion_ids))
    return kept


def load_reward_data(ctx: JobContext, params: TrainRewardParams) -> RewardData:
    """Read the filtered rankings, split train/validation by prompt and hold some labelers out."""
    options = export_options.options_from_params(params)
    groups = list(exports.ranked_groups(ctx.transaction, settings=ctx.settings, options=options))
    if not groups:
        raise ValueError(
            "no rankings to train on with these filters (active_only, min_agreement, model_versions, dates): "
            "rank some tasks first, or relax the filters"
        )
    researchers = {g.labeler for g in groups if g.by_researcher}
    by_split = group_tasks(groups, weight_by_agreement=params.weight_by_agreement)
    train, validation, note = by_split[Split.train], by_split[Split.validation], "validation = the validation split"
    if not validation:
        train, validation = split_tasks(train + by_split[Split.eval], FALLBACK_VAL_SHARE, seed=params.seed)
        note = f"no ranked validation prompt: {len(validation)} tasks (whole prompts) held out for validation"
    held_out = pick_held_out(train + validation, share=params.heldout_labeler_share, seed=params.seed,
                             researchers=researchers)  # fmt: skip
    train = without_labelers(train, set(held_out))
    if not train or not validation:
        raise ValueError(f"too few ranked tasks to train and validate ({len(train)} train, {len(validation)} val)")
    return RewardData(train, validation, held_out, len(groups), note)


def _manifest(data: RewardData) -> dict[str, Any]:
    return {"train": manifest_tasks(data.train), "validation": manifest_tasks(data.validation),
            "n_rankings": data.n_rankings, "held_out_labelers": list(data.held_out_labelers),
            "note": data.note}  # fmt: skip


def _from_manifest(ctx: JobContext, params: TrainRewardParams, manifest: dict[str, Any]) -> RewardData:
    """The first attempt's data again: the same rankings, split and weights, whatever changed since."""
    wanted = {int(rid) for part in ("train", "validation") for rows in manifest[part].values() for rid, _ in rows}
    options = exports.ExportOptions(exclude_flags=tuple(params.exclude_flags), ranking_ids=frozenset(wanted))
    found = {g.ranking_id: g for g in exports.ranked_groups(ctx.transaction, settings=ctx.settings, options=options)}
    if set(found) != wanted:
        raise ValueError(f"{len(wanted - set(found))} rankings this job trained on were deleted; it cannot resume")

    def tasks(part: str) -> list[TaskGroup]:
        return tasks_from_manifest(manifest[part], found)

    return RewardData(tasks("train"), tasks("validation"), tuple(manifest["held_out_labelers"]),
                      int(manifest["n_rankings"]), manifest["note"])  # fmt: skip


def fixed_reward_data(ctx: JobContext, params: TrainRewardParams, path: Path) -> RewardData:
    """The job's data, chosen once: the first attempt writes what it chose to `path`, later attempts read it back,
    so a resumed run sees exactly the batches the checkpoint expects (new rankings wait for the next job)."""
    if path.is_file():
        ctx.log("resuming: the rankings, split and weights of the first attempt")
        return _from_manifest(ctx, params, json.loads(path.read_text()))
    data = load_reward_data(ctx, params)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(_manifest(data)))
    os.replace(partial, path)
    return data


def resolve_backbone(ctx: JobContext, params: TrainRewardParams) -> tuple[int, Path]:
    """The SFT version the reward model starts from: (id, folder), with an error a person can act on."""
    with ctx.transaction() as session:
        if params.sft_version is not None:
            sft: ModelVersion | None = registry.get_model(session, model_id=params.sft_version)
        else:
            sft = registry.newest_model(session, kind=ModelKind.sft)
        if sft is None or sft.kind != ModelKind.sft:
            raise ValueError("no SFT model is registered: run `ranklab demo` or `ranklab models add PATH --kind sft`")
        version = model_folder(sft)
    return version.id, version.path


def sft_samples(ctx: JobContext, *, sft_id: int, fallback: list[TaskGroup]) -> list[tuple[Prompt_, str]]:
    """(prompt, completion) pairs the SFT version wrote, to centre rewards on; the training outputs if none."""
    with ctx.transaction() as session:
        rows = session.execute(
            select(Prompt.messages, Completion.text)
            .join(Prompt, Prompt.id == Completion.prompt_id)
            .where(Completion.model_version_id == sft_id)
            .order_by(Completion.id)
            .limit(SFT_SAMPLES_FOR_CENTRING)
        ).all()
    if rows:
        return [(p, c) for p, c in rows]
    return [(t.prompt, c) for t in fallback for c in t.completions][:SFT_SAMPLES_FOR_CENTRING]


def evaluation_record(evaluation: Any, *, data: RewardData, offset: float, seconds: float) -> dict[str, Any]:
    """What the registry stores for a reward version: every number of the evaluation, and how it was made."""
    record: dict[str, Any] = {k.replace("/", "_"): round(float(v), 6) for k, v in evaluation.metrics().items()}
    record["calibration"] = [
        {"lower": b.lower, "upper": b.upper, "count": b.count, "predicted": round(b.predicted, 4),
         "observed": round(b.observed, 4)}
        for b in evaluation.calibration
    ]  # fmt: skip
    record |= {
        "train_tasks": len(data.train),
        "val_tasks": len(data.validation),
        "rankings": data.n_rankings,
        "held_out_labelers": len(data.held_out_labelers),
        "reward_offset": round(offset, 6),
        "train_seconds": round(seconds, 1),
    }
    return record


def reward_config(ctx: JobContext, params: TrainRewardParams, data: RewardData) -> Any:
    """The trainer's config from the job's params (a batch no larger than the training set allows)."""
    from trainer.reward.config import RewardConfig

    batch_size = min(params.batch_size, max(1, len(data.train) // params.grad_accum_steps))
    if batch_size < params.batch_size:
        ctx.log(f"only {len(data.train)} training tasks: batch size {batch_size} instead of {params.batch_size}")
    return RewardConfig.from_params(params, batch_size=batch_size)


def plan_memory(ctx: JobContext, params: TrainRewardParams, cfg: Any, data: RewardData, model: Any) -> Any:
    """The config with the largest micro-batch whose memory estimate fits `max_memory_gb` (default: what is free),
    checkpointing activations when needed (`trainer.common.memory.fit_config`); DoesNotFit, naming the numbers,
    when even one task with checkpointing does not fit."""
    from trainer.common.memory import DoesNotFit, available_memory, fit_config, shape_of

    budget, source = available_memory(ctx.device, params.max_memory_gb)
    k = max(len(t.completions) for t in data.train)  # one task's K outputs, each at most max_length tokens
    planned = fit_config(cfg, [shape_of(model)], tokens_per_example=k * cfg.max_length, budget=budget,
                         budget_source=source, log=ctx.log, unit="tasks")  # fmt: skip
    if planned.gradient_checkpointing and cfg.shared_prompt:
        raise DoesNotFit("the memory plan needs activation checkpointing, which shared_prompt excludes: turn it off")
    return planned


def train_model(
    ctx: JobContext,
    params: TrainRewardParams,
    data: RewardData,
    sft_path: Path,
    checkpoint_dir: Path,
    processes: int,
    reporter: Reporter,
) -> tuple[Any, Any]:
    """Train in this process, or under torchrun on several; returns the trained model and, with LoRA, peft's wrapper
    (to save merged). WorkerStopping if paused."""
    import torch

    from trainer.common.reward_model import build_reward_model
    from trainer.common.tokenizer import load_tokenizer
    from trainer.reward.train import train_reward_model

    cfg = reward_config(ctx, params, data)
    if processes > 1:
        from trainer.common.lora import check_processes

        check_processes(params.lora, processes)
        return _train_distributed(ctx, params, cfg, data, sft_path, checkpoint_dir, processes, reporter), None
    tokenizer = load_tokenizer(sft_path)
    torch.manual_seed(params.seed)  # the head's initialisation
    model = build_reward_model(sft_path, pad_token_id=int(tokenizer.pad_token_id))
    adapted = None
    if params.lora is not None:
        from trainer.common.lora import add_adapters, describe

        adapted = add_adapters(model, params.lora, head="score")
        model = adapted.get_base_model()
        ctx.log(describe(model) + " (the score head fully)")
    cfg = plan_memory(ctx, params, cfg, data, model)
    model.to(torch.device(ctx.device))  # type: ignore[arg-type]  # transformers types .to oddly
    result = train_reward_model(
        cfg, model, tokenizer, data.train, on_metrics=reporter.on_metrics(_total_steps(cfg, data)),
        checkpoint_dir=checkpoint_dir, checkpoint_every=params.checkpoint_every, should_stop=reporter.should_stop,
    )  # fmt: skip
    if result.stopped:
        raise WorkerStopping(f"worker stopping: reward training paused at step {result.steps} (checkpointed)")
    return model, adapted


def train_reward_job(ctx: JobContext, params: TrainRewardParams) -> NewModelVersion:
    """Everything the `train_reward` job does; returns the model for the worker to register."""
    import torch

    from trainer.common.reward_model import save_reward_model
    from trainer.common.tokenizer import load_tokenizer
    from trainer.reward.train import center_on_sft, evaluate_reward_model

    sft_id, sft_path = resolve_backbone(ctx, params)
    checkpoint_dir = ctx.data_dir / "checkpoints" / f"job-{ctx.job_id}-reward"
    data = fixed_reward_data(ctx, params, checkpoint_dir.with_name(checkpoint_dir.name + "-data.json"))
    processes = params.processes or (torch.cuda.device_count() if ctx.device == "cuda" else 1)
    ctx.log(
        f"{data.n_rankings} rankings: {len(data.train)} training tasks, {len(data.validation)} validation tasks "
        f"({data.note}); {len(data.held_out_labelers)} labelers held out; backbone SFT version {sft_id}"
    )
    started, reporter = time.monotonic(), Reporter(ctx)
    model, adapted = train_model(ctx, params, data, sft_path, checkpoint_dir, processes, reporter)
    seconds, tokenizer = time.monotonic() - started, load_tokenizer(sft_path)
    offset = center_on_sft(model, tokenizer, sft_samples(ctx, sft_id=sft_id, fallback=data.train), max_length=512)
    evaluation = evaluate_reward_model(
        model, tokenizer, data.validation, max_length=params.max_length, held_out_labelers=data.held_out_labelers
    )
    metrics = evaluation_record(evaluation, data=data, offset=offset, seconds=seconds) | {"processes": processes}
    ctx.metrics(step=reporter.last_step, **{k: v for k, v in metrics.items() if k.startswith("val_")})
    ctx.log(f"validation accuracy {evaluation.accuracy:.3f} on {evaluation.pairs} pairs; reward offset {offset:.4f}")
    if adapted is not None:
        from trainer.common.lora import save_merged

        folder = save_merged(adapted.cpu(), tokenizer, ctx.model_dir("reward"))
    else:
        folder = save_reward_model(model.cpu(), tokenizer, ctx.model_dir("reward"))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # optimizer state is large; the model folder is complete
    ctx.progress(1.0)
    return NewModelVersion(ModelKind.reward, f"reward-job{ctx.job_id}", folder, parent_id=sft_id, metrics=metrics)


def _train_distributed(
    ctx: JobContext,
    params: TrainRewardParams,
    cfg: Any,
    data: RewardData,
    sft_path: Path,
    checkpoint_dir: Path,
    processes: int,
    reporter: Reporter,
) -> Any:
    """Train under torchrun with `processes` ranks (DDP); returns the trained model loaded back in this process."""
    from dataclasses import asdict

    from trainer.common.launch import RunFolder, launch_job
    from trainer.common.reward_model import build_reward_model
    from trainer.common.tokenizer import load_tokenizer
    from trainer.reward.ddp import spec_tasks

    run = RunFolder.beside(checkpoint_dir)
    total = _total_steps(cfg, data) // processes or 1
    launch_job(
        ctx, run, module="trainer.reward.ddp", what="reward training", processes=processes,
        on_metrics=reporter.on_metrics(total), should_stop=reporter.should_stop, checkpoint_dir=checkpoint_dir,
        checkpoint_every=params.checkpoint_every, backbone=str(sft_path), config=asdict(cfg),
        train=spec_tasks(data.train),
    )  # fmt: skip
    model = build_reward_model(run.out_dir, pad_token_id=int(load_tokenizer(sft_path).pad_token_id))
    model.to(ctx.device)  # type: ignore[arg-type]  # transformers types .to oddly
    run.remove()
    return model


def _total_steps(cfg: Any, data: RewardData) -> int:
    per_step = cfg.batch_size * cfg.grad_accum_steps
    return max(1, (len(data.train) // per_step) * cfg.epochs)
