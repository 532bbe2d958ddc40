"""Rounds: sample -> rank -> reward model -> PPO -> evaluation, each step queued when the one before it is done,
with the versions the earlier steps made; a failed step fails the round with its reason; the API starts them."""

from __future__ import annotations

import pytest

from app.models import Job, JobKind, JobStatus, ModelKind, ModelVersion, RoundStatus, RoundStep, Split
from app.schemas.rounds import RoundParams
from app.services import jobs as job_service
from app.services import rounds as round_service
from app.services.prompts import get_or_create_prompt
from tests.agreement.helpers import add_ranking, make_task
from tests.factories import token_headers


def _version(db, kind: ModelKind, parent: int | None = None) -> ModelVersion:
    model = ModelVersion(kind=kind, name=f"{kind.value}-model", path=f"/m/{kind.value}", parent_id=parent)
    db.add(model)
    db.flush()
    return model


def _finish(db, job_id: int, status: JobStatus = JobStatus.succeeded, output: int | None = None, error=None) -> None:
    job = db.get(Job, job_id)
    claimed = job_service.claim_job(db, worker_id="w", device="cpu", kinds=[job.kind])
    assert claimed is not None and claimed.id == job_id
    job_service.finish_job(db, job_id=job_id, worker_id="w", attempt=claimed.attempts, status=status,
                           error=error, output_model_id=output)  # fmt: skip


def test_a_round_runs_its_steps_in_order_with_the_versions_they_made(db, factory):
    sft = _version(db, ModelKind.sft)
    for n in range(3):
        get_or_create_prompt(db, text=f"round prompt {n}", split=Split.train)
    params = RoundParams(sample={"n_unlabeled": 3, "k": 4}, min_new_rankings=2, reward={"epochs": 2},
                         policy={"steps": 5}, evaluate={"max_prompts": 8})  # fmt: skip
    round_ = round_service.create_round(db, params=params)
    sample = db.get(Job, round_.sample_job_id)
    assert sample.kind == JobKind.sample and sample.params["policy_version"] == sft.id and sample.params["k"] == 4
    assert round_service.advance_rounds(db) == [] and round_.step == RoundStep.sample

    _finish(db, sample.id)
    tasks = [make_task(db, k=4) for _ in range(2)]
    for task in tasks:
        task.job_id = sample.id
    assert round_service.advance_rounds(db) == [round_] and round_.step == RoundStep.rank
    add_ranking(db, task=tasks[0], user=factory.labeler(), order=[[0], [1], [2], [3]])
    round_service.advance_rounds(db)
    assert round_.step == RoundStep.rank  # 1 of 2 rankings
    add_ranking(db, task=tasks[1], user=factory.labeler(), order=[[3], [2], [1], [0]])
    round_service.advance_rounds(db)
    reward_job = db.get(Job, round_.reward_job_id)
    assert round_.step == RoundStep.reward and reward_job.kind == JobKind.train_reward
    assert reward_job.params["epochs"] == 2

    rm = _version(db, ModelKind.reward, parent=sft.id)
    _finish(db, reward_job.id, output=rm.id)
    round_service.advance_rounds(db)
    policy_job = db.get(Job, round_.policy_job_id)
    assert round_.step == RoundStep.policy and round_.reward_model_id == rm.id
    assert (policy_job.params["policy_version"], policy_job.params["reward_version"], policy_job.params["steps"]) == (
        sft.id, rm.id, 5)  # fmt: skip

    policy = _version(db, ModelKind.policy, parent=sft.id)
    _finish(db, policy_job.id, output=policy.id)
    round_service.advance_rounds(db)
    evaluate_job = db.get(Job, round_.evaluate_job_id)
    assert round_.step == RoundStep.evaluate and evaluate_job.params["policy_version"] == policy.id
    assert evaluate_job.params["reward_version"] == rm.id and evaluate_job.params["max_prompts"] == 8

    _finish(db, evaluate_job.id)
    round_service.advance_rounds(db)
    assert (round_.status, round_.step, round_.error) == (RoundStatus.succeeded, RoundStep.done, None)
    # the next round samples from the new policy
    assert round_service.start_policy(db) == policy.id


def test_a_failed_step_fails_the_round_with_its_reason(db):
    _version(db, ModelKind.sft)
    get_or_create_prompt(db, text="a prompt", split=Split.train)
    round_ = round_service.create_round(db, params=RoundParams(sample={"n_unlabeled": 1}))
    _finish(db, round_.sample_job_id, JobStatus.failed, error="RuntimeError: out of memory")
    round_service.advance_rounds(db)
    assert round_.status == RoundStatus.failed and "out of memory" in round_.error
    assert round_service.advance_rounds(db) == []


def test_round_params_are_checked(db):
    with pytest.raises(ValueError, match="set by the round"):
        RoundParams(policy={"policy_version": 3})
    with pytest.raises(ValueError, match="epochs"):
        RoundParams(reward={"epochs": 0})
    with pytest.raises(ValueError, match="exactly one of"):
        RoundParams(sample={"k": 4})


def test_rounds_over_http(client, db, factory):
    headers = token_headers(client, factory.researcher())
    refused = client.post("/api/v1/rounds", json={}, headers=headers)
    assert refused.status_code == 422 and "no SFT or policy model" in refused.json()["detail"]
    _version(db, ModelKind.sft)
    db.commit()
    bad = client.post("/api/v1/rounds", json={"policy": {"reward_version": 1}}, headers=headers)
    assert bad.status_code == 422 and "set by the round" in bad.json()["detail"]
    made = client.post("/api/v1/rounds", json={"min_new_rankings": 5}, headers=headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["step"] == "sample" and body["status"] == "running" and body["params"]["min_new_rankings"] == 5
    assert [r["id"] for r in client.get("/api/v1/rounds", headers=headers).json()] == [body["id"]]
    cancelled = client.post(f"/api/v1/rounds/{body['id']}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    assert client.get(f"/api/v1/jobs/{body['sample_job_id']}", headers=headers).json()["status"] == "cancelled"
    labeler = factory.labeler()
    assert client.get("/api/v1/rounds", headers=token_headers(client, labeler)).status_code == 403


def _accepted_demonstration(db, factory) -> int:
    from app.models import Demonstration, DemonstrationOrigin, DemonstrationStatus, RankingTask, TaskType

    prompt, _ = get_or_create_prompt(db, text=f"demo prompt {factory.labeler().id}")
    task = RankingTask(prompt_id=prompt.id, task_type=TaskType.demonstration, k=0)
    db.add(task)
    db.flush()
    demo = Demonstration(task_id=task.id, prompt_id=prompt.id, labeler_id=factory.labeler().id, content="answer",
                         origin=DemonstrationOrigin.written, status=DemonstrationStatus.accepted,
                         idempotency_key=f"k{task.id}")  # fmt: skip
    db.add(demo)
    db.flush()
    return demo.id


def test_a_round_begins_with_sft_only_when_demonstrations_are_new(db, factory):
    base = _version(db, ModelKind.base)
    for n in range(2):
        get_or_create_prompt(db, text=f"sft round prompt {n}", split=Split.train)
    params = RoundParams(sft={"epochs": 1}, sample={"n_unlabeled": 2, "k": 4})
    demo_id = _accepted_demonstration(db, factory)
    round_ = round_service.create_round(db, params=params)
    sft_job = db.get(Job, round_.sft_job_id)
    assert round_.step == RoundStep.sft and sft_job.kind == JobKind.train_sft and round_.sample_job_id is None
    sft = ModelVersion(kind=ModelKind.sft, name="sft", path="/m/sft2", parent_id=base.id,
                       metrics={"data": {"max_demonstration_id": demo_id}})  # fmt: skip
    db.add(sft)
    db.flush()
    _finish(db, sft_job.id, output=sft.id)
    round_service.advance_rounds(db)
    sample = db.get(Job, round_.sample_job_id)
    assert round_.step == RoundStep.sample and sample.params["policy_version"] == sft.id == round_.start_policy_id
    # every accepted demonstration is in an SFT model now: the next round goes straight to sampling
    assert round_service.untrained_demonstrations(db) == 0
    again = round_service.create_round(db, params=params)
    assert again.step == RoundStep.sample and again.sft_job_id is None


def test_a_dpo_round_skips_the_reward_model_and_evaluates_with_the_newest_one(db, factory):
    sft = _version(db, ModelKind.sft)
    old_rm = _version(db, ModelKind.reward, parent=sft.id)
    get_or_create_prompt(db, text="dpo round prompt", split=Split.train)
    params = RoundParams(sample={"n_unlabeled": 1, "k": 4}, min_new_rankings=1, policy={"method": "dpo", "beta": 0.2})
    round_ = round_service.create_round(db, params=params)
    _finish(db, round_.sample_job_id)
    task = make_task(db, k=4)
    task.job_id = round_.sample_job_id
    add_ranking(db, task=task, user=factory.labeler(), order=[[0], [1], [2], [3]])
    round_service.advance_rounds(db)
    dpo_job = db.get(Job, round_.policy_job_id)
    assert round_.step == RoundStep.policy and round_.reward_job_id is None
    assert dpo_job.kind == JobKind.train_dpo and dpo_job.params["beta"] == 0.2
    assert dpo_job.params["policy_version"] == sft.id and "method" not in dpo_job.params
    policy = _version(db, ModelKind.policy, parent=sft.id)
    _finish(db, dpo_job.id, output=policy.id)
    round_service.advance_rounds(db)
    assert db.get(Job, round_.evaluate_job_id).params["reward_version"] == old_rm.id


def test_round_params_refuse_what_cannot_run():
    with pytest.raises(ValueError, match="policy.method must be ppo or dpo"):
        RoundParams(policy={"method": "grpo"})
    with pytest.raises(ValueError, match="train_reward cannot be false with method ppo"):
        RoundParams(train_reward=False)
    with pytest.raises(ValueError, match="beta"):
        RoundParams(policy={"method": "dpo", "beta": -1})
    assert RoundParams(policy={"method": "dpo"}, train_reward=True).trains_reward
