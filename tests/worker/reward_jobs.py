"""Shared set-up of the reward-model job tests: a tiny SFT model and rankings in a committed database."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from safetensors.torch import load_file

from app.models import Job, JobStatus, ModelKind, ModelVersion, Prompt, Split
from app.services import model_registry
from tests.agreement.helpers import add_ranking, make_task
from tests.factories import Factory
from trainer.worker import WorkerConfig, work


def seed_rankings(sessions, tiny_model_dir: Path) -> None:
    """Tiny SFT v1; 20 tasks of 4 outputs (every 5th prompt in validation), each ranked by two labelers."""
    rng = random.Random(0)
    with sessions.begin() as s:
        model_registry.register_model(s, kind=ModelKind.sft, name="tiny", path=tiny_model_dir)
        labelers = [Factory(s).labeler() for _ in range(2)]
        for n in range(20):
            task = make_task(s, k=4)
            s.get(Prompt, task.prompt_id).split = Split.validation if n % 5 == 0 else Split.train
            for user in labelers:
                order = list(range(4))
                rng.shuffle(order)
                add_ranking(s, task=task, user=user, order=[[i] for i in order])


def run_worker(sessions, settings, **overrides) -> None:  # type: ignore[no-untyped-def]
    """`ranklab worker --once` in this process, on the CPU."""
    work(WorkerConfig.from_settings(settings, once=True, device="cpu", **overrides), sessions, settings)


def trained_weights(sessions, job_id: int) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """The weights of the model a succeeded job registered."""
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == JobStatus.succeeded, job.error or job.log_tail
        path = Path(s.get(ModelVersion, job.output_model_id).path)
    return load_file(path / "model.safetensors")


def ranks_saw_only_gpu_tensors(log: Path, ranks: int) -> None:
    """Every rank's collectives were handed (fake) GPU tensors only."""
    reports = [json.loads(line) for line in log.read_text().splitlines()]
    assert len({r["pid"] for r in reports}) >= ranks, reports
    assert all(r["devices"] == ["cuda"] for r in reports), reports
