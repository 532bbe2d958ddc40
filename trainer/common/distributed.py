"""Collectives over the training processes, for every trainer: who am I, stop together, sum / mean / max, whiten.

Device rule. A collective takes tensors on its process group's device (`group_device`): NCCL refuses anything but
CUDA tensors ("No backend type associated with device type cpu"), and gloo is used here with CPU tensors. Callers
hand tensors from wherever they live (the PPO rollout is kept on the CPU, losses on the GPU); every function here
copies them to the group's device, runs the collective there, and returns the result on the caller's device. No
trainer calls `torch.distributed` collectives itself: `tests/trainer/device_policy.py` checks that in the gloo
tests by refusing, as NCCL would, any tensor not on the group's device.

Without an initialised process group every function is the one-process identity.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor

BACKEND_DEVICE_TYPES: dict[str, str] = {"nccl": "cuda", "gloo": "cpu"}
"""The device type each backend's collectives are run on (NCCL: only CUDA tensors; gloo: the CPU here)."""


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def group_device() -> torch.device:
    """The device the process group's collectives take tensors on (this rank's GPU under NCCL)."""
    kind = BACKEND_DEVICE_TYPES.get(str(dist.get_backend()), "cpu")
    return torch.device("cuda", torch.cuda.current_device()) if kind == "cuda" else torch.device(kind)


def _all_reduce(values: Tensor, op: dist.ReduceOp.RedOpType) -> Tensor:
    if not is_distributed():
        return values
    on_group = values.detach().to(group_device(), copy=True)
    dist.all_reduce(on_group, op=op)
    return on_group.to(values.device)


def sum_over_processes(values: Tensor) -> Tensor:
    """Elementwise sum over every process (a new tensor on `values`' device; `values` itself when alone)."""
    return _all_reduce(values, dist.ReduceOp.SUM)


def mean_over_processes(values: Tensor) -> Tensor:
    """Elementwise mean over every process."""
    return sum_over_processes(values) / world()[1]


def max_over_processes(values: Tensor) -> Tensor:
    """Elementwise maximum over every process."""
    return _all_reduce(values, dist.ReduceOp.MAX)


def agreed_stop(should_stop: Callable[[], bool] | None) -> bool:
    """True on every process when any one of them is asked to stop (a DDP step needs all of them)."""
    asked = float(bool(should_stop and should_stop()))
    return bool(max_over_processes(torch.tensor([asked])).item())


def whiten_over_processes(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``(values - mean) / sqrt(var + eps) * mask`` with the mean and the Bessel-corrected variance of the masked
    values of every process together (`masked_whiten` over the union of the processes' values)."""
    mask = mask.to(values.dtype)
    moments = torch.stack([mask.sum(), (values * mask).sum(), (values**2 * mask).sum()]).double()
    count, total, total_sq = sum_over_processes(moments).tolist()
    if count < 2:
        raise ValueError(f"cannot whiten {int(count)} values")
    mean = total / count
    var = max(total_sq / count - mean**2, 0.0) * count / (count - 1)
    return (values - mean) / math.sqrt(var + eps) * mask


def barrier() -> None:
    """Wait for every process (nothing to wait for when alone)."""
    if is_distributed():
        dist.barrier()


def init_rank(device: str) -> tuple[int, torch.device]:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU); returns (rank, this rank's device)."""
    cuda = device == "cuda"
    here = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(here)  # before the group exists, so NCCL binds this rank's GPU
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), here


def _release() -> None:
    """Free what still holds the group's pending work (a DDP wrapper sits in reference cycles) while the
    interpreter is whole, then leave the group. Gloo work objects destroyed during interpreter shutdown abort the
    process (SIGABRT), hiding whatever ended it."""
    gc.collect()
    dist.destroy_process_group()


def finish_rank() -> None:
    """Wait for every rank, then leave the process group."""
    dist.barrier()
    _release()


@contextmanager
def rank_session(device: str) -> Iterator[tuple[int, torch.device]]:
    """A torchrun rank's life in the process group: `init_rank`, then `finish_rank` when the body ends normally. When
    it raises, the group is left at once (no barrier: the other ranks may never arrive) and the error goes on, so
    the rank exits with its own traceback (which the launching job reports) instead of an abort at exit."""
    rank, here = init_rank(device)
    try:
        yield rank, here
    except BaseException:
        _release()
        raise
    finish_rank()
