"""The `train_sft` job from database to registered model: demonstrations, base model, training, validation.

The handler (`trainer/jobs/train_sft.py`) calls `train_sft_job`. Demonstrations come from `app.services.sft_export`
(exactly the SFT export's records: accepted demonstrations, optionally the best-ranked outputs); the training set is
the train split's prompts, validation the validation split's (or a tenth of the train prompts when that split has
none). The first attempt writes the chosen records next to its checkpoint, so a resumed job trains on exactly them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.models import ModelKind
from app.schemas.sft import TrainSftParams
from app.services import model_registry as registry
from app.services import sft_export
from trainer.common.checkpoint import has_checkpoint
from trainer.common.context import JobContext, NewModelVersion, WorkerStopping
from trainer.common.progress import Reporter
from trainer.common.versions import Version, model_folder
from trainer.sft.data import encode_records

FALLBACK_VAL_SHARE = 0.1
"""Share of the train prompts kept for validation when no demonstration is in the validation split."""
MIN_FOR_FALLBACK = 10
"""Fewer training records than this and no fallback validation is taken (every one is needed to train)."""


@dataclass(frozen=True)
class SftData:
    """The conversations + answers a `train_sft` job learns from, split by prompt."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    note: str
    demonstrations: int
    best_ranked: int
    max_demonstration_id: int


def resolve_base(ctx: JobContext, params: TrainSftParams) -> Version:
    """The model to fine-tune: the named one, else the newest base model, else the newest SFT model."""
    with ctx.transaction() as session:
        model = (
            registry.get_model(session, model_id=params.base_version)
            if params.base_version is not None
            else registry.newest_model(session, kind=ModelKind.base)
            or registry.newest_model(session, kind=ModelKind.sft)
        )
        if model is None:
            raise ValueError("no base or SFT model to fine-tune: `ranklab models add PATH --kind base`")
        return model_folder(model)


def split_records(
    records: list[dict[str, Any]], *, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(train, validation, how): by the prompt's split; eval-split prompts never train."""
    train = [r for r in records if r["split"] == "train"]
    validation = [r for r in records if r["split"] == "validation"]
    if validation or len(train) < MIN_FOR_FALLBACK:
        return train, validation, "validation split"
    prompts = sorted({r["prompt_id"] for r in train})
    held = set(random.Random(seed).sample(prompts, max(1, int(FALLBACK_VAL_SHARE * len(prompts)))))
    return (
        [r for r in train if r["prompt_id"] not in held],
        [r for r in train if r["prompt_id"] in held],
        f"no validation-split demonstrations: {len(held)} train prompts held out",
    )


def load_sft_data(ctx: JobContext, params: TrainSftParams) -> SftData:
    """The export's records for these params, split."""
    options = sft_export.SftOptions(
        active_only=params.active_only,
        since=params.since,
        until=params.until,
        include_best_ranked=params.include_best_ranked,
    )
    records = [
        {"messages": r["messages"], "split": r["split"], "prompt_id": r["prompt_id"], "source": r["source"],
         "demonstration_id": r.get("demonstration_id")}
        for r in sft_export.sft_records(ctx.transaction, settings=ctx.settings, options=options)
    ]  # fmt: skip
    train, validation, note = split_records(records, seed=params.seed)
    demo_ids = [r["demonstration_id"] for r in records if r["demonstration_id"] is not None]
    return SftData(
        train=train,
        validation=validation,
        note=note,
        demonstrations=len(demo_ids),
        best_ranked=sum(r["source"] == "best_ranked" for r in records),
        max_demonstration_id=max(demo_ids, default=0),
    )


def fixed_sft_data(ctx: JobContext, params: TrainSftParams, path: Path) -> SftData:
    """The first attempt's data (written to `path`), so that a resumed job trains on exactly what it began with."""
    if path.is_file():
        return SftData(**json.loads(path.read_text()))
    data = load_sft_data(ctx, params)
    if not data.train:
        raise ValueError(
            "no accepted demonstration of a train-split prompt to fine-tune on: accept some on /demonstrations "
            "(validation- and eval-split prompts never train)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(vars(data)))
    os.replace(part, path)
    return data


def plan_memory(ctx: JobContext, params: TrainSftParams, cfg: Any, policy: Any) -> Any:
    """The config with the largest micro-batch whose memory estimate fits `max_memory_gb` (default: what is free),
    checkpointing when needed (`trainer.common.memory.fit_config`); DoesNotFit, with the numbers, otherwise."""
    from trainer.common.memory import FLOAT32, available_memory, fit_config, shape_of

    budget, source = available_memory(ctx.device, params.max_memory_gb)
    logits = 2 * int(policy.config.vocab_size) * FLOAT32  # per token: the logits and their gradient
    return fit_config(cfg, [shape_of(policy)], tokens_per_example=cfg.max_length, budget=budget, budget_source=source,
                      log=ctx.log, unit="demonstrations", extra_per_token=logits)  # fmt: skip


def train_model(
    ctx: JobContext, params: TrainSftParams, data: SftData, base: Version, checkpoint_dir: Path, processes: int
) -> tuple[Any, Any, float, dict[str, float], Any]:
    """Train here, or under torchrun; returns (model, tokenizer, seconds, last step's metrics, peft's wrapper with
    LoRA else None)."""
    import torch

    from trainer.common.models import load_policy
    from trainer.sft.train import SftConfig, train_sft

    policy, tokenizer = load_policy(base.path, device=ctx.device, dtype=torch.float32)
    adapted = None
    if params.lora is not None:
        from trainer.common.lora import adapt_policy, describe

        policy, adapted = adapt_policy(policy, params.lora, processes)
        ctx.log(describe(policy))
    examples = encode_records(tokenizer, data.train, params.max_length)
    cfg = SftConfig.from_params(
        params, batch_size=min(params.batch_size, max(1, len(examples) // params.grad_accum_steps))
    )
    if cfg.batch_size < params.batch_size:
        ctx.log(f"only {len(examples)} training examples: batch size {cfg.batch_size} instead of {params.batch_size}")
    if processes == 1:
        cfg = plan_memory(ctx, params, cfg, policy)
    reporter, started = Reporter(ctx), time.monotonic()
    if has_checkpoint(checkpoint_dir):
        ctx.log(f"resuming from the checkpoint in {checkpoint_dir}")
    total = max(1, (-(-len(examples) // cfg.batch_size) // (cfg.grad_accum_steps * processes)) * cfg.epochs)
    if processes > 1:
        from trainer.sft.ddp import train_distributed

        policy = train_distributed(ctx, params, cfg, data, base, checkpoint_dir, processes, reporter, total)
        return policy, tokenizer, time.monotonic() - started, {}, None
    last: dict[str, float] = {}
    report = reporter.on_metrics(total)

    def on_metrics(step: int, metrics: dict[str, float]) -> None:
        last.update(metrics)
        report(step, metrics)

    result = train_sft(
        cfg, policy, examples, pad_token_id=int(tokenizer.pad_token_id), on_metrics=on_metrics,
        checkpoint_dir=checkpoint_dir, checkpoint_every=params.checkpoint_every, should_stop=reporter.should_stop,
    )  # fmt: skip
    if result.stopped:
        raise WorkerStopping(f"worker stopping: SFT paused at step {result.steps} (checkpointed)")
    return policy, tokenizer, time.monotonic() - started, last, adapted


def train_sft_job(ctx: JobContext, params: TrainSftParams) -> NewModelVersion:
    """Everything the `train_sft` job does; returns the model for the worker to register."""
    import torch

    from trainer.common.models import load_policy, save_model_folder
    from trainer.sft.train import validation_loss

    base = resolve_base(ctx, params)
    checkpoint_dir = ctx.data_dir / "checkpoints" / f"job-{ctx.job_id}-sft"
    data = fixed_sft_data(ctx, params, checkpoint_dir.with_name(checkpoint_dir.name + "-data.json"))
    processes = params.processes or (torch.cuda.device_count() if ctx.device == "cuda" else 1)
    ctx.log(
        f"{data.demonstrations} accepted demonstrations + {data.best_ranked} best-ranked outputs: {len(data.train)} "
        f"to train on, {len(data.validation)} to validate on ({data.note}); fine-tuning version {base.id} "
        f"({'packed' if params.packing else 'padded'} batches, {processes} process(es))"
    )
    base_model, tokenizer = load_policy(base.path, device=ctx.device, dtype=torch.float32)
    validation = encode_records(tokenizer, data.validation, params.max_length)
    pad = int(tokenizer.pad_token_id)
    before = validation_loss(base_model, validation, pad_token_id=pad, packing=params.packing)
    del base_model
    model, tokenizer, seconds, last, adapted = train_model(ctx, params, data, base, checkpoint_dir, processes)
    after = validation_loss(model, validation, pad_token_id=pad, packing=params.packing)
    metrics: dict[str, Any] = {
        "method": "sft",
        **{k.replace("/", "_"): round(v, 6) for k, v in after.items()},
        **{f"base_{k.replace('/', '_')}": round(v, 6) for k, v in before.items()},
        "train_loss": round(last.get("loss/sft", float("nan")), 6) if last else None,
        "tokens_per_s": round(last.get("perf/tokens_per_s", 0.0), 1) if last else None,
        "train_seconds": round(seconds, 1),
        "processes": processes,
        "data": {
            "demonstrations": data.demonstrations,
            "best_ranked": data.best_ranked,
            "train": len(data.train),
            "validation": len(data.validation),
            "split": data.note,
            "max_demonstration_id": data.max_demonstration_id,
        },  # fmt: skip
        "params": params.model_dump(mode="json"),
    }
    if after:
        ctx.metrics(step=0, **{k.replace("/", "_"): round(v, 6) for k, v in after.items()})
        ctx.log(f"validation loss {before['val/loss']:.4f} -> {after['val/loss']:.4f} "
                f"(perplexity {before['val/perplexity']:.2f} -> {after['val/perplexity']:.2f})")  # fmt: skip
    if adapted is not None:
        from trainer.common.lora import save_merged

        folder = save_merged(adapted.cpu(), tokenizer, ctx.model_dir("sft"))
    else:
        folder = save_model_folder(model.cpu(), tokenizer, ctx.model_dir("sft"))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    ctx.progress(1.0)
    return NewModelVersion(ModelKind.sft, f"sft-job{ctx.job_id}", folder, parent_id=base.id, metrics=metrics)
