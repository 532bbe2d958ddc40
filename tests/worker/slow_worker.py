"""A worker process with a slow, checkpointing test handler, for the SIGKILL test."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.db import make_engine
from app.models import JobKind, ModelKind
from app.schemas.jobs import ExportParams
from app.services import jobs as job_service
from app.storage import atomic_dir
from trainer.common.context import JobContext, NewModelVersion
from trainer.worker import WorkerConfig, work

STEPS = 30


def slow_steps(ctx: JobContext, params: ExportParams) -> None:
    """Steps 0..STEPS-1; each step's metric point and the checkpoint commit together."""
    step = int(ctx.checkpoint or 0)
    while step < STEPS:
        ctx.check_cancelled()
        time.sleep(0.1)
        with ctx.transaction() as session:
            job_service.append_metrics(ctx.owned(session), point={"step": step, "attempt": ctx.attempt})
            ctx.save_checkpoint(session, str(step + 1), progress=(step + 1) / STEPS)
        step += 1


def slow_model(ctx: JobContext, params: ExportParams) -> NewModelVersion:
    """Writes one weight shard per step into its model folder (through atomic_dir), then the config and tokenizer
    files; a resumed attempt first writes the shards its checkpoint already holds, as a trainer would."""
    with atomic_dir(ctx.model_dir("slow")) as folder:
        done = int(ctx.checkpoint or 0)
        for step in range(done):
            _shard(folder, step)
        for step in range(done, STEPS):
            time.sleep(0.1)
            _shard(folder, step)
            with ctx.transaction() as session:
                job_service.append_metrics(ctx.owned(session), point={"step": step, "attempt": ctx.attempt})
                ctx.save_checkpoint(session, str(step + 1), progress=(step + 1) / STEPS)
        (folder / "config.json").write_text('{"model_type": "slow"}')
        (folder / "tokenizer_config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"".join((folder / f"shard-{n}").read_bytes() for n in range(STEPS)))
    return NewModelVersion(kind=ModelKind.sft, name="slow", path=ctx.model_dir("slow"))


def _shard(folder: Path, step: int) -> None:
    (folder / f"shard-{step}").write_bytes(step.to_bytes(2, "big"))


HANDLERS = {JobKind.export: slow_steps}
MODEL_HANDLERS = {JobKind.export: slow_model}


def main() -> None:
    settings = Settings()
    sessions = sessionmaker(bind=make_engine(settings.sqlalchemy_url), expire_on_commit=False)
    handlers = MODEL_HANDLERS if os.environ.get("SLOW_WORKER_WRITES_MODEL") else HANDLERS
    work(WorkerConfig.from_settings(settings, once=True, run_scheduler=False), sessions, settings, handlers=handlers)


if __name__ == "__main__":
    main()
