"""The sampling job with the tiny random model: tasks with K completions and the sampling params recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Completion, Job, JobKind, JobStatus, ModelKind, Prompt, RankingTask, Split
from app.services import jobs as job_service
from app.services import model_registry
from app.services.prompts import get_or_create_prompt
from tests.worker.conftest import run_job_once
from trainer.sampling.job import SamplePlan
from trainer.worker import WorkerConfig, work

PROMPTS = ["What is the capital of France?", "Write a short poem about the sea.", "Explain a list and a tuple."]


@pytest.fixture
def seeded(sessions: sessionmaker[Session], tiny_model_dir) -> dict[str, object]:
    with sessions.begin() as session:
        ids = [get_or_create_prompt(session, text=t, split=Split.train)[0].id for t in PROMPTS]
        other = get_or_create_prompt(session, text="An eval prompt.", split=Split.eval)[0].id
        model = model_registry.register_model(session, kind=ModelKind.sft, name="tiny", path=tiny_model_dir)
        return {"prompt_ids": ids, "eval_id": other, "model_id": model.id}


def _run(sessions, settings, **params) -> Job:
    return run_job_once(sessions, settings, JobKind.sample, params)


def test_sample_job_creates_one_task_per_prompt_with_k_recorded_completions(sessions, worker_settings, seeded):
    params = {"split": "train", "k": 5, "temperature": 0.8, "top_p": 0.9, "max_new_tokens": 8, "seed": 7}
    job = _run(sessions, worker_settings, **params, overlap=3, batch_size=10)
    assert job.status == JobStatus.succeeded, job.log_tail
    assert job.progress == 1.0 and job.device == "cpu"
    with sessions() as session:
        tasks = session.scalars(select(RankingTask).where(RankingTask.job_id == job.id)).all()
        assert sorted(t.prompt_id for t in tasks) == sorted(seeded["prompt_ids"])
        for task in tasks:
            assert task.k == 5 and len(task.items) == 5 and task.overlap == 3
            assert task.model_version_id == seeded["model_id"]
            for item in task.items:
                c = item.completion
                assert c.prompt_id == task.prompt_id and c.model_name == "tiny" and c.token_count >= 1
                assert c.finish_reason in ("eos", "length") and c.token_count <= 8
                recorded = c.sampling_params
                assert (recorded["temperature"], recorded["top_p"], recorded["max_new_tokens"]) == (0.8, 0.9, 8)
                assert recorded["seed"] == 7 and recorded["k"] == 5 and recorded["job_id"] == job.id
    assert job.metrics and all(p["tokens_per_s"] > 0 for p in job.metrics)
    assert job.metrics[-1]["step"] == len(PROMPTS)
    assert SamplePlan.loads(job.checkpoint).done == len(PROMPTS)


def test_n_unlabeled_skips_prompts_that_have_tasks_and_defaults_to_newest_policy(sessions, worker_settings, seeded):
    first = _run(sessions, worker_settings, prompt_ids=seeded["prompt_ids"][:2], max_new_tokens=4)
    assert first.status == JobStatus.succeeded, first.log_tail
    second = _run(sessions, worker_settings, n_unlabeled=10, max_new_tokens=4)
    assert second.status == JobStatus.succeeded, second.log_tail
    with sessions() as session:
        prompts = set(session.scalars(select(RankingTask.prompt_id).where(RankingTask.job_id == second.id)))
        assert prompts == {seeded["prompt_ids"][2], seeded["eval_id"]}
        count = session.scalar(select(func.count()).select_from(Completion))
        assert count == 4 * 4


def test_resume_skips_prompts_already_done(sessions, worker_settings, seeded):
    """A requeued attempt continues after the checkpoint: no prompt gets a second task."""
    with sessions.begin() as session:
        job = job_service.enqueue_job(session, kind=JobKind.sample, params={"split": "train", "max_new_tokens": 4})
        job.checkpoint = SamplePlan(prompt_ids=seeded["prompt_ids"], done=2).dumps()
        job_id = job.id
    work(WorkerConfig.from_settings(worker_settings, once=True), sessions, worker_settings)
    with sessions() as session:
        assert session.get(Job, job_id).status == JobStatus.succeeded
        prompts = list(session.scalars(select(RankingTask.prompt_id).where(RankingTask.job_id == job_id)))
    assert prompts == [seeded["prompt_ids"][2]]


def test_no_matching_prompts_fails_with_a_clear_error(sessions, worker_settings, seeded):
    job = _run(sessions, worker_settings, split="validation")
    assert job.status == JobStatus.failed and "no prompts matched" in job.error


def test_sampling_uses_the_newest_policy_unless_a_version_is_chosen(sessions, worker_settings, seeded, tiny_model_dir):
    with sessions.begin() as session:
        policy = model_registry.register_model(
            session, kind=ModelKind.policy, name="ppo-1", path=tiny_model_dir, parent_id=seeded["model_id"]
        ).id
    by_default = _run(sessions, worker_settings, prompt_ids=seeded["prompt_ids"][:1], max_new_tokens=4)
    sft = seeded["model_id"]
    chosen = _run(sessions, worker_settings, prompt_ids=seeded["prompt_ids"][1:2], max_new_tokens=4, policy_version=sft)
    with sessions() as session:
        for job, model_id, name in ((by_default, policy, "ppo-1"), (chosen, seeded["model_id"], "tiny")):
            assert job.status == JobStatus.succeeded, job.log_tail
            task = session.scalars(select(RankingTask).where(RankingTask.job_id == job.id)).one()
            assert task.model_version_id == model_id
            assert {item.completion.model_name for item in task.items} == {name}


def test_blank_completions_are_left_out_instead_of_failing_the_job(sessions, worker_settings, seeded, monkeypatch):
    """A model may answer with a lone EOS (or whitespace): tasks refuse blank outputs, so the job leaves them out,
    keeps a task that still has K >= 4 outputs and gives a prompt with fewer none, instead of failing the job."""
    import trainer.sampling.job as sample_job

    real = sample_job.sample_chunk

    def with_blanks(*args, **kwargs):
        rows, stats = real(*args, **kwargs)
        rows[0][0].text = ""  # prompt 1: 5 -> 4 outputs, still a task
        if len(rows) > 1:
            rows[1][0].text, rows[1][1].text = "  \n", ""  # prompt 2: 5 -> 3, no task
        return rows, stats

    monkeypatch.setattr(sample_job, "sample_chunk", with_blanks)
    job = _run(sessions, worker_settings, prompt_ids=seeded["prompt_ids"][:2], k=5, max_new_tokens=4, batch_size=10)
    assert job.status == JobStatus.succeeded, job.log_tail
    with sessions() as session:
        tasks = session.scalars(select(RankingTask).where(RankingTask.job_id == job.id)).all()
        assert [(t.prompt_id, t.k, len(t.items)) for t in tasks] == [(seeded["prompt_ids"][0], 4, 4)]
        assert all(item.completion.text.strip() for item in tasks[0].items)
    assert (job.metrics[-1]["blank_completions"], job.metrics[-1]["prompts_without_task"]) == (3, 1)
    assert "3 blank completion(s) left out" in job.log_tail


def test_followups_make_the_next_turn_a_conversation_sampled_in_the_same_job(sessions, worker_settings, tiny_model_dir):
    """MT-Bench style: a prompt with a second question in its metadata; the job answers the first turn and samples
    the two-turn conversation (first answer = its first sample) too, in the same split."""
    with sessions.begin() as session:
        model_registry.register_model(session, kind=ModelKind.sft, name="tiny", path=tiny_model_dir)
        first = get_or_create_prompt(session, text="Name a colour.", split=Split.validation,
                                     metadata={"followups": ["Now a darker one.", "And a third?"]})[0].id  # fmt: skip
    job = _run(sessions, worker_settings, prompt_ids=[first], k=4, max_new_tokens=6, followups=True)
    assert job.status == JobStatus.succeeded, job.error or job.log_tail
    with sessions() as session:
        tasks = session.scalars(select(RankingTask).where(RankingTask.job_id == job.id).order_by(RankingTask.id)).all()
        prompts = [session.get(Prompt, t.prompt_id) for t in tasks]
        assert len(tasks) == 3  # turn 1, then 1+2, then 1+2+3: each answered by the job's own first sample
        answer = tasks[0].items[0].completion.text
        assert prompts[1].messages == [{"role": "user", "content": "Name a colour."},
                                       {"role": "assistant", "content": answer},
                                       {"role": "user", "content": "Now a darker one."}]  # fmt: skip
        assert len(prompts[2].messages) == 5 and prompts[2].messages[-1]["content"] == "And a third?"
        assert {p.split for p in prompts} == {Split.validation} and prompts[2].meta["continues_prompt"] == prompts[1].id
    assert SamplePlan.loads(job.checkpoint).done == 3
