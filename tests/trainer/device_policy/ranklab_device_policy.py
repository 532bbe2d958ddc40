"""A device policy for the gloo tests: collectives refuse tensors that are not on the backend's device, as NCCL
refuses CPU tensors ("No backend type associated with device type cpu"), so a CPU tensor in a GPU run is caught on
a machine without a GPU.

`install("cuda")` makes this process behave, for collectives, like a rank of a GPU run on gloo:

* every `torch.distributed` collective (all_reduce, broadcast, all_gather, ...) checks the device type of each
  tensor it is handed against the declared backend device, and raises NCCL's error when it differs;
* the declared device is what `trainer.common.distributed` moves tensors to before a collective
  (`BACKEND_DEVICE_TYPES["gloo"] = "cuda"`); on a machine without CUDA, ``tensor.to(<a cuda device>)`` then returns
  a CPU copy marked as being on that device (the marker is all the check reads; the data stays on the CPU, so gloo
  computes as usual).

A tensor built on the CPU and handed to `torch.distributed` directly carries no mark, so it is refused exactly where
NCCL would refuse it. Collectives that DDP runs inside C++ (its gradient buckets, the initial broadcast) are not
seen; they use the model's own tensors, which are on the right device in a real run.

Forked test workers call `install()`; torchrun ranks get it from `sitecustomize.py` in this folder when
`RANKLAB_TEST_BACKEND_DEVICE` is set and this folder is on PYTHONPATH (`tests/worker/conftest.py: gpu_like_ranks`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

ENV = "RANKLAB_TEST_BACKEND_DEVICE"
LOG_ENV = "RANKLAB_TEST_DEVICE_POLICY_LOG"
"""A file each process with the policy appends to at exit: its pid and the device types its collectives saw."""
COLLECTIVES = (
    "all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
    "reduce_scatter_tensor", "all_to_all", "all_to_all_single", "gather", "scatter", "send", "recv", "isend", "irecv",
)  # fmt: skip
MARK = "_ranklab_fake_device"
ORIGINAL = "_ranklab_policy_original"
"""The attribute of a wrapper that holds what it wraps (so installing twice never wraps a wrapper)."""
checked: list[str] = []
"""The device types of the tensors the collectives of this process were handed (for tests to assert on)."""


def device_type(tensor: Any) -> str:
    """The tensor's device type as the policy sees it (the fake device's mark, else its real device)."""
    return getattr(tensor, MARK, None) or tensor.device.type


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def _checked(collective: Any, backend_device: str) -> Any:
    def check(*args: Any, **kwargs: Any) -> Any:
        for tensor in _tensors(list(args) + list(kwargs.values())):
            kind = device_type(tensor)
            checked.append(kind)
            if kind != backend_device:
                raise RuntimeError(
                    f"No backend type associated with device type {kind} (device policy: this process group takes "
                    f"{backend_device} tensors, like NCCL; {collective.__name__} was handed a {kind} tensor)"
                )
        return collective(*args, **kwargs)

    setattr(check, ORIGINAL, collective)
    return check


def _fake_device_to(original: Any, fake: str) -> Any:
    import torch

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, str | torch.device) and torch.device(target).type == fake:
            moved = original(self, "cpu", *args[1:], **{k: v for k, v in kwargs.items() if k != "device"})
            moved = moved.clone() if moved is self else moved
            setattr(moved, MARK, fake)
            return moved
        return original(self, *args, **kwargs)

    setattr(to, ORIGINAL, original)
    return to


def install(backend_device: str = "cuda") -> Callable[[], None]:
    """Give this process's collectives the device policy of a `backend_device` backend; returns what undoes it."""
    import torch
    import torch.distributed as dist

    undo: list[Callable[[], None]] = []

    def replace(owner: Any, name: str, value: Any) -> None:
        original = getattr(owner, name)
        setattr(owner, name, value)
        undo.append(lambda: setattr(owner, name, original))

    for name in COLLECTIVES:
        collective = getattr(dist, name, None)
        if collective is not None:
            replace(dist, name, _checked(getattr(collective, ORIGINAL, collective), backend_device))
    if backend_device != "cpu":
        replace(
            torch.Tensor, "to", _fake_device_to(getattr(torch.Tensor.to, ORIGINAL, torch.Tensor.to), backend_device)
        )
        if backend_device == "cuda" and not torch.cuda.is_available():
            replace(torch.cuda, "current_device", lambda: 0)  # the one fake GPU of each rank
        try:
            from trainer.common import distributed
        except ImportError:  # a trainer without the helpers module: no collective of it moves to the fake device
            pass
        else:
            replace(distributed, "BACKEND_DEVICE_TYPES", {**distributed.BACKEND_DEVICE_TYPES, "gloo": backend_device})

    def restore() -> None:
        while undo:
            undo.pop()()
        checked.clear()

    return restore


def install_from_env() -> None:
    """`install` with the device named by RANKLAB_TEST_BACKEND_DEVICE, when it is set (for the whole process); with
    RANKLAB_TEST_DEVICE_POLICY_LOG, report at exit what the collectives of this process were handed."""
    if not os.environ.get(ENV):
        return
    install(os.environ[ENV])
    log = os.environ.get(LOG_ENV)
    if log:
        import atexit
        import json

        def report() -> None:
            if checked:
                with open(log, "a", encoding="utf-8") as out:
                    out.write(json.dumps({"pid": os.getpid(), "devices": sorted(set(checked))}) + "\n")

        atexit.register(report)
