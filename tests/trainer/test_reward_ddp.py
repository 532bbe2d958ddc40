"""Two CPU processes on gloo (DDP, accumulation 1) train like one process with accumulation 2."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tests.trainer.device_policy import ranklab_device_policy as device_policy
from tests.trainer.gloo import run_forked
from tests.trainer.reward_helpers import marker_tasks, one_thread, tiny_reward_model, tiny_tokenizer
from trainer.reward.config import RewardConfig
from trainer.reward.train import train_reward_model

pytestmark = pytest.mark.usefixtures(one_thread.__name__)
CFG = RewardConfig(learning_rate=3e-3, batch_size=4, warmup_ratio=0.2, max_length=64)
TASKS = 24  # 6 batches: 3 steps of 2 batches


def _worker(rank: int, world_size: int, folder: str) -> None:
    torch.set_num_threads(1)
    device_policy.install("cuda")  # collectives refuse CPU tensors, as NCCL does in a GPU run
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size)
    try:
        model = tiny_reward_model()
        losses: list[float] = []
        result = train_reward_model(
            CFG, model, tiny_tokenizer(), marker_tasks(TASKS, seed=4),
            on_metrics=lambda s, m: losses.append(m["loss/ranking"]),
            checkpoint_dir=Path(folder) / "ckpt", checkpoint_every=2,
        )  # fmt: skip
        out = {"state": model.state_dict(), "losses": losses, "metrics": result.metrics}
        torch.save({**out, "devices": sorted(set(device_policy.checked))}, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    # each forked child trains on one thread
    run_forked(_worker, (2, str(tmp_path)))
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert len(rank0["losses"]) == 3 and rank1["losses"] == []  # only rank 0 reports
    assert rank0["devices"] == rank1["devices"] == ["cuda"]  # every collective ran on the (fake) GPU
    assert (tmp_path / "ckpt" / "trainer_state.pt").is_file()

    model = tiny_reward_model()
    losses: list[float] = []
    result = train_reward_model(
        replace(CFG, grad_accum_steps=2), model, tiny_tokenizer(), marker_tasks(TASKS, seed=4),
        on_metrics=lambda s, m: losses.append(m["loss/ranking"]),
    )  # fmt: skip
    assert losses == pytest.approx(rank0["losses"], rel=1e-4, abs=1e-5)
    assert result.metrics["rm/accuracy"] == pytest.approx(rank0["metrics"]["rm/accuracy"])
    for name, p in model.state_dict().items():
        torch.testing.assert_close(rank0["state"][name], p, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(rank1["state"][name], rank0["state"][name], rtol=0, atol=0, msg=name)
