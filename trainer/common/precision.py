"""Where matmuls run in bf16: on CUDA when a job asks for it (its `bf16`), and on CPU only when the worker's
settings say so (`RANKLAB_CPU_BF16`).

Autocast keeps the weights and the optimizer in float32 and runs the matrix products in bf16. CPUs with AMX or
AVX512-BF16 units run them about twice as fast in training and three times in forward passes
(`bench/cpu_bf16.py`); CPUs without them are slower in bf16, hence off by default. The numerics are then those of a
CUDA run.
"""

from __future__ import annotations

import torch


def cpu_bf16() -> bool:
    """The setting `cpu_bf16` of this process (read from the environment like every other setting)."""
    from app.config import get_settings

    return get_settings().cpu_bf16


def bf16_device(device: torch.device) -> bool:
    """Whether bf16 autocast is used on this device when a job asks for it."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16())


def bf16_autocast(enabled: bool, device: torch.device | str) -> torch.autocast:
    """bf16 autocast on `device` when `enabled` and the device uses it (`bf16_device`); a no-op context otherwise."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and bf16_device(device))


def cpu_bf16_autocast(device: torch.device | str) -> torch.autocast:
    """bf16 autocast on a CPU whose settings ask for it; a no-op elsewhere (CUDA models already load in bf16)."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cpu" and cpu_bf16())
