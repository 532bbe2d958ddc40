"""Statistics over the masked elements of a tensor (padding excluded): mean, variance, whitening. One process; the
same over every training process is `trainer.common.distributed.whiten_over_processes`."""

from __future__ import annotations

import torch
from torch import Tensor


def _check_mask(values: Tensor, mask: Tensor, minimum: int = 1) -> Tensor:
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ in shape")
    mask = mask.to(values.dtype)
    if float(mask.sum()) < minimum:
        raise ValueError(f"mask selects {int(mask.sum())} elements, needs at least {minimum} (empty batch?)")
    return mask


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` where `mask` is 1; ValueError on an empty mask."""
    mask = _check_mask(values, mask)
    return (values * mask).sum() / mask.sum()


def masked_var(values: Tensor, mask: Tensor, *, unbiased: bool = True) -> Tensor:
    """Variance of `values` where `mask` is 1 (Bessel-corrected unless `unbiased=False`)."""
    mask = _check_mask(values, mask, minimum=2 if unbiased else 1)
    count = mask.sum()
    mean = (values * mask).sum() / count
    var = (((values - mean) ** 2) * mask).sum() / count
    return var * count / (count - 1) if unbiased else var


def masked_whiten(values: Tensor, mask: Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """``(values - mean) / std`` over the masked elements (mean kept when `shift_mean` is False); 0 off the mask."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)
