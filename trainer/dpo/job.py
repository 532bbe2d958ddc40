"""The `train_dpo` job from database to registered policy: rankings, start and reference, DPO, validation, KL.

The handler (`trainer/jobs/train_dpo.py`) calls `train_dpo_job`. Rankings come from `app.services.exports` (the
export's filters, as the reward job reads them); train/validation is the prompt's split (a tenth of the tasks when the
validation split has none). The first attempt writes the rankings it chose next to its checkpoint, so a resumed job
trains on exactly them. At the end the policy samples once on validation prompts to estimate its KL to the
reference on its own samples.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.models import ModelKind, Prompt, Split
from app.schemas.dpo import TrainDpoParams
from app.services import export_options, exports
from app.services import model_registry as registry
from trainer.common.context import JobContext, NewModelVersion, WorkerStopping
from trainer.common.progress import Reporter
from trainer.common.rankings import TaskGroup, group_tasks, manifest_tasks, split_tasks, tasks_from_manifest
from trainer.common.versions import Version, model_folder

FALLBACK_VAL_SHARE = 0.1


@dataclass(frozen=True)
class DpoData:
    train: list[TaskGroup]
    validation: list[TaskGroup]
    n_rankings: int
    note: str


def resolve_versions(ctx: JobContext, params: TrainDpoParams) -> tuple[Version, Version]:
    """(start, reference): the named start, else the newest policy, else the newest SFT model; the reference is the
    named one, else the start."""
    with ctx.transaction() as session:
        newest = registry.newest_model(session, kind=ModelKind.policy) or registry.newest_model(
            session, kind=ModelKind.sft
        )
        start = registry.get_model(session, model_id=params.policy_version) if params.policy_version else newest
        if start is None:
            raise ValueError("no SFT or policy model to start DPO from: run `ranklab demo` or `ranklab models add`")
        reference = (
            registry.get_model(session, model_id=params.reference_version) if params.reference_version else start
        )
        return model_folder(start), model_folder(reference)


def load_dpo_data(ctx: JobContext, params: TrainDpoParams) -> DpoData:
    """The filtered rankings, one task per prompt's K outputs, split by prompt."""
    options = export_options.options_from_params(params)
    groups = list(exports.ranked_groups(ctx.transaction, settings=ctx.settings, options=options))
    if not groups:
        raise ValueError("no rankings to train on with these filters: rank some tasks first, or relax the filters")
    by_split = group_tasks(groups, weight_by_agreement=False)
    train, validation, note = by_split[Split.train], by_split[Split.validation], "validation = the validation split"
    if not validation:
        train, validation = split_tasks(train + by_split[Split.eval], FALLBACK_VAL_SHARE, seed=params.seed)
        note = f"no ranked validation prompt: {len(validation)} tasks (whole prompts) held out for validation"
    if not train:
        raise ValueError("no ranked task of a train-split prompt to train on")
    return DpoData(train, validation, len(groups), note)


def fixed_dpo_data(ctx: JobContext, params: TrainDpoParams, path: Path) -> DpoData:
    """The first attempt's rankings and split (written to `path`), read back by later attempts."""
    if path.is_file():
        ctx.log("resuming: the rankings and split of the first attempt")
        manifest = json.loads(path.read_text())
        wanted = {int(rid) for part in ("train", "validation") for rows in manifest[part].values() for rid, _ in rows}
        options = exports.ExportOptions(exclude_flags=tuple(params.exclude_flags), ranking_ids=frozenset(wanted))
        found = {
            g.ranking_id: g for g in exports.ranked_groups(ctx.transaction, settings=ctx.settings, options=options)
        }
        if set(found) != wanted:
            raise ValueError(f"{len(wanted - set(found))} rankings this job trained on were deleted; it cannot resume")
        train, validation = (tasks_from_manifest(manifest[part], found) for part in ("train", "validation"))
        return DpoData(train, validation, int(manifest["n_rankings"]), manifest["note"])
    data = load_dpo_data(ctx, params)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps({"train": manifest_tasks(data.train), "validation": manifest_tasks(data.validation),
                                "n_rankings": data.n_rankings, "note": data.note}))  # fmt: skip
    os.replace(part, path)
    return data


def kl_prompts(ctx: JobContext, limit: int) -> list[list[dict[str, str]]]:
    """Validation prompts (else train ones) the trained policy samples on for the KL estimate."""
    with ctx.transaction() as session:
        for split in (Split.validation, Split.train):
            rows = session.scalars(
                select(Prompt.messages).where(Prompt.split == split).order_by(Prompt.id).limit(limit)
            )
            found = [list(m) for m in rows]
            if found:
                return found
    return []


def kl_to_reference(
    ctx: JobContext, params: TrainDpoParams, policy: Any, reference: Any, tokenizer: Any
) -> float | None:
    """Mean log pi(y|x) - log pi_ref(y|x) over one sample of the policy per validation prompt (nats)."""
    from trainer.common.generation import eos_token_ids, sample_responses
    from trainer.common.logprobs import kl_on_samples

    prompts = kl_prompts(ctx, params.kl_prompts) if params.kl_prompts else []
    if not prompts:
        return None
    samples = sample_responses(
        policy, tokenizer, prompts, n=1, max_new_tokens=params.kl_response_length, temperature=1.0,
        eos_ids=sorted(eos_token_ids(policy, tokenizer)), seed=params.seed,
    )  # fmt: skip
    return float(kl_on_samples(policy, reference, samples.episodes).mean())


def dpo_models(
    ctx: JobContext, params: TrainDpoParams, policy: Any, start: Version, reference_version: Version, processes: int
) -> tuple[Any, Any, Any]:
    """(policy, reference, peft's wrapper or None): with LoRA the policy trains adapters and, when the reference is
    the starting version, the reference is the policy itself (its adapters switched off where it is read)."""
    import torch

    from trainer.common.models import load_policy

    adapted = None
    if params.lora is not None:
        from trainer.common.lora import adapt_policy, describe

        policy, adapted = adapt_policy(policy, params.lora, processes)
        if reference_version.id == start.id:
            ctx.log(describe(policy) + "; reference: the policy with its adapters off")
            return policy, policy, adapted
        ctx.log(describe(policy) + f"; reference: v{reference_version.id}, loaded apart")
    frozen = torch.bfloat16 if ctx.device == "cuda" else torch.float32
    reference, _ = load_policy(reference_version.path, device=ctx.device, dtype=frozen)
    return policy, reference, adapted


def plan_memory(ctx: JobContext, params: TrainDpoParams, cfg: Any, policy: Any, reference: Any, k: int) -> Any:
    """The config with the largest micro-batch whose memory estimate fits `max_memory_gb` (default: what is free),
    checkpointing when needed (`trainer.common.memory.fit_config`); DoesNotFit, with the numbers, otherwise."""
    from trainer.common.memory import FLOAT32, available_memory, fit_config, frozen, shape_of

    budget, source = available_memory(ctx.device, params.max_memory_gb)
    logits = 2 * int(policy.config.vocab_size) * FLOAT32  # per token: the logits and their gradient
    models = [shape_of(policy)] + ([] if reference is policy else [frozen(shape_of(reference))])
    return fit_config(cfg, models, tokens_per_example=k * cfg.max_length, budget=budget, budget_source=source,
                      log=ctx.log, unit="tasks", extra_per_token=logits)  # fmt: skip


def train_dpo_job(ctx: JobContext, params: TrainDpoParams) -> NewModelVersion:
    """Everything the `train_dpo` job does; returns the policy for the worker to register."""
    import torch

    from trainer.common.lora import adapters_disabled, save_merged
    from trainer.common.models import load_policy, save_model_folder
    from trainer.dpo.data import encode_dpo_tasks, reference_logprobs
    from trainer.dpo.train import DpoConfig, evaluate_dpo, train_dpo

    start, reference_version = resolve_versions(ctx, params)
    checkpoint_dir = ctx.data_dir / "checkpoints" / f"job-{ctx.job_id}-dpo"
    data = fixed_dpo_data(ctx, params, checkpoint_dir.with_name(checkpoint_dir.name + "-data.json"))
    processes = params.processes or (torch.cuda.device_count() if ctx.device == "cuda" else 1)
    policy, tokenizer = load_policy(start.path, device=ctx.device, dtype=torch.float32)
    policy, reference, adapted = dpo_models(ctx, params, policy, start, reference_version, processes)
    pad = int(tokenizer.pad_token_id)
    train, validation = (encode_dpo_tasks(t, tokenizer, params.max_length) for t in (data.train, data.validation))
    fits = max(1, len(train) // params.grad_accum_steps)
    cfg = DpoConfig.from_params(params, batch_size=min(params.batch_size, fits))
    if processes == 1:
        cfg = plan_memory(ctx, params, cfg, policy, reference, max(len(t.completions) for t in data.train))
    ctx.log(
        f"{data.n_rankings} rankings: {len(train)} training tasks, {len(validation)} validation tasks ({data.note}); "
        f"{cfg.loss_type} loss, beta {cfg.beta}; start v{start.id}, reference v{reference_version.id}"
    )
    with adapters_disabled(reference):  # with LoRA the reference may be the policy itself, adapters off
        reference_logprobs(reference, train + validation, packing=cfg.packing, pad_id=pad)  # once per completion
    before = evaluate_dpo(policy, validation, cfg, pad_token_id=pad)
    reporter, started = Reporter(ctx), time.monotonic()
    if processes > 1:
        from trainer.dpo.ddp import train_distributed

        policy = train_distributed(ctx, params, cfg, train, start, checkpoint_dir, processes, reporter)
        last: dict[str, float] = {}
    else:
        total = max(1, (-(-len(train) // cfg.batch_size) // cfg.grad_accum_steps) * cfg.epochs)
        result = train_dpo(
            cfg, policy, train, pad_token_id=pad, on_metrics=reporter.on_metrics(total), checkpoint_dir=checkpoint_dir,
            checkpoint_every=params.checkpoint_every, should_stop=reporter.should_stop,
        )  # fmt: skip
        if result.stopped:
            raise WorkerStopping(f"worker stopping: DPO paused at step {result.steps} (checkpointed)")
        last = result.metrics
    seconds = time.monotonic() - started
    after = evaluate_dpo(policy, validation, cfg, pad_token_id=pad)
    kl = kl_to_reference(ctx, params, policy, reference, tokenizer)
    metrics = dpo_metrics(params, data, train, validation, before, after, kl, last, seconds, reference_version.id)
    metrics["processes"] = processes
    ctx.metrics(step=reporter.last_step, **{k: v for k, v in metrics.items() if k.startswith("val_") or k == "kl"})
    said_kl = "not measured" if kl is None else f"{kl:.4f} nats"
    ctx.log(f"validation implicit-reward accuracy {before.get('val/accuracy', 0):.3f} -> "
            f"{after.get('val/accuracy', 0):.3f}; KL to the reference {said_kl}")  # fmt: skip
    if adapted is not None:
        folder = save_merged(adapted.cpu(), tokenizer, ctx.model_dir("policy"))
    else:
        folder = save_model_folder(policy.cpu(), tokenizer, ctx.model_dir("policy"))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    ctx.progress(1.0)
    return NewModelVersion(ModelKind.policy, f"dpo-job{ctx.job_id}", folder, parent_id=start.id, metrics=metrics)


def dpo_metrics(
    params: TrainDpoParams, data: DpoData, train: list[Any], validation: list[Any], before: dict[str, float],
    after: dict[str, float], kl: float | None, last: dict[str, float], seconds: float, reference_id: int,
) -> dict[str, Any]:  # fmt: skip
    """What the registry stores for a DPO policy (the models page reads `method`, `kl`, `val_*`)."""
    return {
        "method": "dpo",
        "loss_type": params.loss_type,
        "beta": params.beta,
        "reference_version": reference_id,
        **{k.replace("/", "_"): round(v, 6) for k, v in after.items()},
        **{f"start_{k.replace('/', '_')}": round(v, 6) for k, v in before.items()},
        "kl": None if kl is None else round(kl, 6),
        "train_loss": round(last["loss/dpo"], 6) if "loss/dpo" in last else None,
        "comparisons_per_s": round(last.get("perf/comparisons_per_s", 0.0), 2) if last else None,
        "train_seconds": round(seconds, 1),
        "train_tasks": len(train),
        "val_tasks": len(validation),
        "rankings": data.n_rankings,
        "params": params.model_dump(mode="json"),
    }
