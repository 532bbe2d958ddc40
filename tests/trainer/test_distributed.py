"""The collectives every trainer uses (`trainer.common.distributed`): brute-force checks on one process and on two gloo
processes with uneven masks, all under the NCCL-like device policy of a GPU run (tests/trainer/device_policy)."""

from __future__ import annotations

import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.testing import assert_close

from tests.trainer.device_policy import ranklab_device_policy as device_policy
from tests.trainer.gloo import run_forked
from trainer.common.distributed import (
    agreed_stop,
    max_over_processes,
    mean_over_processes,
    sum_over_processes,
    whiten_over_processes,
    world,
)
from trainer.common.masked import masked_whiten

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def brute_whiten(values: np.ndarray, mask: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Whitening by its definition: the masked values' mean and Bessel-corrected variance, in float64."""
    kept = values[mask.astype(bool)].astype(np.float64)
    return (values - kept.mean()) / math.sqrt(kept.var(ddof=1) + eps) * mask


def test_one_process_whitens_like_masked_whiten_and_by_hand() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    expected = (torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 3.0]]) - 3.0) / math.sqrt(2.5) * MASK
    assert_close(whiten_over_processes(values, MASK), expected, rtol=1e-5, atol=1e-6)
    generator = torch.Generator().manual_seed(0)
    for rows, cols in [(1, 2), (3, 7), (8, 64)]:
        values = torch.randn(rows, cols, generator=generator) * 5 + 3
        mask = (torch.rand(rows, cols, generator=generator) < 0.6).float()
        mask[0, :2] = 1.0  # at least two values
        ours = whiten_over_processes(values, mask)
        assert_close(ours, masked_whiten(values, mask), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.numpy(), brute_whiten(values.numpy(), mask.numpy()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask", [torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [0, 0, 0]])])
def test_fewer_than_two_values_cannot_be_whitened(mask: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="cannot whiten"):
        whiten_over_processes(torch.ones(2, 3), mask)


def test_alone_every_collective_is_the_identity() -> None:
    values = torch.tensor([1.0, -2.0, 3.0])
    assert world() == (0, 1)
    for reduce in (sum_over_processes, mean_over_processes, max_over_processes):
        assert_close(reduce(values), values)
    assert agreed_stop(lambda: True) and not agreed_stop(lambda: False) and not agreed_stop(None)


def test_the_device_policy_refuses_what_nccl_refuses(tmp_path: Path) -> None:
    """In a group whose backend takes CUDA tensors, a CPU tensor handed to torch.distributed fails like NCCL; the
    helpers hand over a tensor on the group's device and give the result back on the caller's device."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    restore = device_policy.install("cuda")
    try:
        with pytest.raises(RuntimeError, match="No backend type associated with device type cpu"):
            dist.all_reduce(torch.tensor([1.0]))
        assert device_policy.checked == ["cpu"]
        total = sum_over_processes(torch.tensor([1.0, 2.0]))
        assert total.tolist() == [1.0, 2.0] and total.device.type == "cpu" and device_policy.checked[1:] == ["cuda"]
        assert agreed_stop(lambda: True) and device_policy.checked[2:] == ["cuda"]
    finally:
        restore()
        dist.destroy_process_group()
    assert not hasattr(dist.all_reduce, device_policy.ORIGINAL) and not hasattr(torch.Tensor.to, device_policy.ORIGINAL)


# Two processes: rank r holds VALUES[r] with MASKS[r] (uneven: 5 and 2 values), and only rank 1 is asked to stop.
VALUES = [torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), torch.tensor([[10.0, -3.0, 0.5, 7.0]])]
MASKS = [torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 1.0, 0.0]])]


def _worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    device_policy.install("cuda")  # collectives behave as in a GPU run: CPU tensors are refused
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    try:
        vector = torch.tensor([float(rank + 1), 10.0 * rank - 5.0])
        out = {
            "sum": sum_over_processes(vector),
            "mean": mean_over_processes(vector),
            "max": max_over_processes(vector),
            "stop": agreed_stop(lambda: rank == 1),
            "go_on": agreed_stop(lambda: False),
            "whitened": whiten_over_processes(VALUES[rank], MASKS[rank]),
            "checked": sorted(set(device_policy.checked)),
        }
        torch.save(out, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_with_uneven_masks_reduce_and_whiten_over_the_union(tmp_path: Path) -> None:
    run_forked(_worker, (str(tmp_path),))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    union = np.concatenate([v[m.bool()].numpy() for v, m in zip(VALUES, MASKS, strict=True)])  # 7 values
    mean, std = union.astype(np.float64).mean(), math.sqrt(union.astype(np.float64).var(ddof=1) + 1e-8)
    for rank, out in enumerate(ranks):
        assert out["sum"].tolist() == [3.0, -5.0 + 5.0]
        assert out["mean"].tolist() == [1.5, 0.0] and out["max"].tolist() == [2.0, 5.0]
        assert out["stop"] is True and out["go_on"] is False  # rank 1 alone was asked: both stop
        expected = (VALUES[rank].numpy() - mean) / std * MASKS[rank].numpy()
        np.testing.assert_allclose(out["whitened"].numpy(), expected, rtol=1e-5, atol=1e-6)
        assert out["checked"] == ["cuda"]  # every collective got a tensor on the (fake) GPU
    whitened = np.concatenate([r["whitened"][m.bool()].numpy() for r, m in zip(ranks, MASKS, strict=True)])
    assert whitened.mean() == pytest.approx(0.0, abs=1e-6) and whitened.std(ddof=1) == pytest.approx(1.0, rel=1e-5)
