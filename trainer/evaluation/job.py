"""The `evaluate` job: a policy version against a baseline (its SFT ancestor by default) on eval-split prompts.

Both versions sample responses; the reward model scores them (mean reward, win rate); the policy's KL from the
baseline is measured on its own samples; perplexity on held-out SFT-style text (the labelers' top-ranked outputs
of validation and eval prompts) shows the alignment tax. With `human_eval`, both versions' responses to a prompt
go into one eval ranking task (shuffled per labeler like every task), for a human win rate on the models page.
The figures are stored on the policy version (`eval` in its metrics) and on the job's chart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from app.models import Completion, ModelKind, ModelVersion, Prompt, Ranking, RankingTask, Split, TaskKind
from app.schemas.training import EvaluateParams
from app.services import model_registry as registry
from app.services.prompts import get_prompt
from app.services.tasks import NewCompletion, create_task
from trainer.common.chat import to_messages
from trainer.common.context import JobContext
from trainer.common.versions import Version, model_folder, sft_ancestor


@dataclass(frozen=True)
class EvalPlan:
    policy: Version
    baseline: Version
    reward: Version | None
    """None when no reward model exists (a DPO loop without one): KL, perplexity and human evaluation only."""


def resolve_eval_plan(ctx: JobContext, params: EvaluateParams) -> EvalPlan:
    """The policy (newest by default), its baseline (its SFT ancestor by default) and the reward model."""
    with ctx.transaction() as session:
        policy = (
            registry.get_model(session, model_id=params.policy_version)
            if params.policy_version is not None
            else registry.newest_model(session, kind=ModelKind.policy)
        )
        if policy is None:
            raise ValueError("no policy version to evaluate yet: run a train_policy job (or name policy_version)")
        baseline = (
            registry.get_model(session, model_id=params.baseline_version)
            if params.baseline_version is not None
            else sft_ancestor(session, policy)
        )
        if baseline.id == policy.id:
            raise ValueError(f"version {policy.id} is an SFT model: name a different baseline_version to compare")
        reward = (
            registry.get_model(session, model_id=params.reward_version)
            if params.reward_version is not None
            else registry.newest_model(session, kind=ModelKind.reward)
        )
        return EvalPlan(model_folder(policy), model_folder(baseline), model_folder(reward) if reward else None)


def eval_prompts(ctx: JobContext, limit: int) -> tuple[list[int], list[str], str]:
    """(ids, texts, split used): eval-split prompts, or validation ones when the eval split is empty."""
    with ctx.transaction() as session:
        for split in (Split.eval, Split.validation):
            rows = session.execute(
                select(Prompt.id, Prompt.messages).where(Prompt.split == split).order_by(Prompt.id).limit(limit)
            ).all()
            if rows:
                return [r[0] for r in rows], [r[1] for r in rows], split.value
    raise ValueError("no eval or validation prompts to evaluate on: import prompts with those splits")


def sft_style_texts(ctx: JobContext, limit: int) -> list[tuple[str, str]]:
    """(prompt, top-ranked output) of validation and eval prompts: held-out text in the SFT model's style."""
    if limit == 0:
        return []
    with ctx.transaction() as session:
        rows = session.execute(
            select(Prompt.messages, Ranking.buckets)
            .join(RankingTask, RankingTask.id == Ranking.task_id)
            .join(Prompt, Prompt.id == RankingTask.prompt_id)
            .where(Prompt.split.in_([Split.validation, Split.eval]), Ranking.not_rankable.is_(False))
            .order_by(Ranking.id)
            .limit(limit)
        ).all()
        best = {b[0][0] for _, b in rows if b and b[0]}
        found = session.execute(select(Completion.id, Completion.text).where(Completion.id.in_(best)))
        texts = dict(found.all())
    return [(p, texts[b[0][0]]) for p, b in rows if b and b[0] and b[0][0] in texts]


def rewards_of(reward_model: Any, tokenizer: Any, prompts: list[str], texts: list[str], n: int) -> np.ndarray:
    """(prompts, n) RM rewards of the responses (re-encoded as the RM was trained)."""
    from trainer.common.reward_model import encode_completion, score_sequences

    repeated = [to_messages(p) for p in prompts for _ in range(n)]
    sequences = [encode_completion(tokenizer, p, t, 1024) for p, t in zip(repeated, texts, strict=True)]
    scores = score_sequences(reward_model, sequences, pad_token_id=int(tokenizer.pad_token_id)).float().numpy()
    return scores.reshape(len(prompts), n)


def create_eval_tasks(
    ctx: JobContext, params: EvaluateParams, plan: EvalPlan, prompt_ids: list[int], policy: Any, baseline: Any
) -> int:
    """One eval ranking task per prompt with both versions' responses (task order shuffled; labelers see their
    own shuffle); returns how many were created."""
    rng, n, created = random.Random(params.seed), params.samples_per_prompt, 0
    with ctx.transaction() as session:
        for i, prompt_id in enumerate(prompt_ids):
            outputs = [(plan.policy.id, t) for t in policy.texts[i * n : (i + 1) * n]]
            outputs += [(plan.baseline.id, t) for t in baseline.texts[i * n : (i + 1) * n]]
            if any(not t.strip() for _, t in outputs):
                continue  # an empty response cannot be ranked
            rng.shuffle(outputs)
            sampling = {"temperature": params.temperature}
            completions = [NewCompletion(text=t, model_version_id=v, sampling_params=sampling) for v, t in outputs]
            create_task(session, prompt=get_prompt(session, prompt_id=prompt_id), completions=completions,
                        kind=TaskKind.eval, overlap=params.human_eval_overlap, job_id=ctx.job_id)  # fmt: skip
            created += 1
    return created


def store_on_policy(ctx: JobContext, policy_id: int, figures: dict[str, Any]) -> None:
    """Keep the evaluation on the policy version (the newest evaluation against each baseline)."""
    with ctx.transaction() as session:
        ctx.owned(session)  # a job this worker lost writes nothing
        model = session.get(ModelVersion, policy_id, with_for_update=True)
        assert model is not None
        evals = dict((model.metrics or {}).get("eval", {}))
        evals[str(figures["baseline_version"])] = figures
        model.metrics = {**(model.metrics or {}), "eval": evals}


def evaluate_job(ctx: JobContext, params: EvaluateParams) -> None:
    """Everything the `evaluate` job does."""
    from trainer.common.generation import eos_token_ids, sample_responses
    from trainer.common.logprobs import kl_on_samples
    from trainer.common.models import load_policy
    from trainer.common.reward_model import load_reward_model
    from trainer.evaluation.policy import perplexity, summarize

    plan = resolve_eval_plan(ctx, params)
    prompt_ids, prompts, split = eval_prompts(ctx, params.max_prompts)
    scorer = f"reward v{plan.reward.id}" if plan.reward else "no reward model (KL, perplexity, human evaluation)"
    ctx.log(f"evaluating v{plan.policy.id} against v{plan.baseline.id} with {scorer} on "
            f"{len(prompts)} {split} prompts x {params.samples_per_prompt} samples")  # fmt: skip
    policy, tokenizer = load_policy(plan.policy.path, device=ctx.device)
    baseline, _ = load_policy(plan.baseline.path, device=ctx.device)
    eos = sorted(eos_token_ids(policy, tokenizer))

    def draw(model: Any) -> Any:
        return sample_responses(
            model, tokenizer, prompts, n=params.samples_per_prompt, max_new_tokens=params.response_length,
            temperature=params.temperature, eos_ids=eos, seed=params.seed,
        )  # fmt: skip

    ours, theirs = draw(policy), draw(baseline)
    ctx.progress(0.5)
    n = params.samples_per_prompt
    kl = kl_on_samples(policy, baseline, ours.episodes)
    figures: dict[str, Any] = {"kl": float(kl.mean())}
    if plan.reward is not None:
        reward_model, rm_tokenizer = load_reward_model(plan.reward.path, device=ctx.device)
        figures = summarize(
            rewards_of(reward_model, rm_tokenizer, prompts, ours.texts, n),
            rewards_of(reward_model, rm_tokenizer, prompts, theirs.texts, n),
            kl,
        )
    held_out = sft_style_texts(ctx, params.max_ppl_texts)
    if held_out:
        figures["policy_perplexity"] = perplexity(policy, tokenizer, held_out)
        figures["baseline_perplexity"] = perplexity(baseline, tokenizer, held_out)
        figures["alignment_tax"] = figures["policy_perplexity"] / figures["baseline_perplexity"]
    ctx.progress(0.9)
    reward_id = plan.reward.id if plan.reward else None
    figures |= {"baseline_version": plan.baseline.id, "reward_version": reward_id, "prompts": len(prompts),
                "split": split, "samples_per_prompt": n, "job_id": ctx.job_id}  # fmt: skip
    if params.human_eval:
        figures["human_eval_tasks"] = create_eval_tasks(ctx, params, plan, prompt_ids, ours, theirs)
    ctx.metrics(step=0, **{k: round(v, 6) for k, v in figures.items() if isinstance(v, float)})
    store_on_policy(ctx, plan.policy.id, figures)
    if plan.reward is not None:
        ctx.log(f"reward {figures['policy_reward']:.3f} vs {figures['baseline_reward']:.3f}, RM win rate "
                f"{figures['rm_win_rate']:.3f}, KL {figures['kl']:.3f}")  # fmt: skip
    else:
        ctx.log(f"KL {figures['kl']:.3f} (no reward model to score with)")
    ctx.progress(1.0)
