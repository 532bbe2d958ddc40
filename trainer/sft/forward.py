"""The SFT loss as a module (so DDP can wrap it): minus the summed log-probability of the answer tokens."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer.common.packing import CompletionBatch, completion_logprobs


class AnswerLoss(nn.Module):
    """Summed cross-entropy of the answer tokens of a batch (the LM head runs on those positions only)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: CompletionBatch) -> torch.Tensor:
        return -completion_logprobs(self.model, batch).sum()
