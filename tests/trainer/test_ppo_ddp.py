"""Two CPU processes on gloo split each PPO batch and stay in sync; their first rollout is one process's rollout."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tests.trainer.device_policy import ranklab_device_policy as device_policy
from tests.trainer.gloo import run_forked
from tests.trainer.ppo_helpers import CFG, PROMPTS, TOKENIZER, marker_reward, tiny_policy, tiny_value_model
from tests.trainer.reward_helpers import one_thread
from trainer.ppo.state import STATE_FILE
from trainer.ppo.train import train_policy

pytestmark = pytest.mark.usefixtures(one_thread.__name__)
DDP_CFG = replace(CFG, steps=3, batch_size=16, minibatches=2, generation_batch_size=4)
ROLLOUT_KEYS = ("objective/scores", "objective/kl", "episode/length", "objective/entropy")


def _worker(rank: int, world_size: int, folder: str) -> None:
    torch.set_num_threads(1)
    device_policy.install("cuda")  # collectives refuse CPU tensors, as NCCL does in a GPU run
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size)
    try:
        policy, value_model = tiny_policy(), tiny_value_model()
        history: list[dict[str, float]] = []
        train_policy(
            DDP_CFG, policy, tiny_policy(), value_model, marker_reward, PROMPTS, TOKENIZER,
            on_metrics=lambda s, m: history.append(m), checkpoint_dir=Path(folder) / "ckpt", checkpoint_every=2,
        )  # fmt: skip
        state = {f"policy.{k}": v for k, v in policy.state_dict().items()}
        state |= {f"value.{k}": v for k, v in value_model.state_dict().items()}
        devices = sorted(set(device_policy.checked))
        torch.save({"state": state, "history": history, "devices": devices}, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_split_rollouts_and_stay_in_sync(tmp_path: Path) -> None:
    run_forked(_worker, (2, str(tmp_path)))
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert len(rank0["history"]) == 3 and rank1["history"] == []  # only rank 0 reports
    assert rank0["devices"] == rank1["devices"] == ["cuda"]  # every collective ran on the (fake) GPU
    assert torch.load(tmp_path / "ckpt" / STATE_FILE, weights_only=True)["step"] == 3
    initial = {f"policy.{k}": v for k, v in tiny_policy().state_dict().items()}
    for name, p in rank0["state"].items():
        torch.testing.assert_close(rank1["state"][name], p, rtol=0, atol=0, msg=name)
        if name in initial and "norm" not in name:
            assert not torch.equal(initial[name], p), name

    # Step 1's rollout statistics cover both halves: they equal one process's over the whole batch.
    history: list[dict[str, float]] = []
    train_policy(
        replace(DDP_CFG, steps=1), tiny_policy(), tiny_policy(), tiny_value_model(), marker_reward, PROMPTS,
        TOKENIZER, on_metrics=lambda s, m: history.append(m),
    )  # fmt: skip
    for key in ROLLOUT_KEYS:
        assert rank0["history"][0][key] == pytest.approx(history[0][key], rel=1e-5, abs=1e-6), key
