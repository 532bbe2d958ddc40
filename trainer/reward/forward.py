"""The reward model's training forward: `rewards()` (or shared-prompt rewards) as one module for DDP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from trainer.common.reward_model import rewards
from trainer.reward.shared import shared_prompt_rewards

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class RewardForward(nn.Module):
    """`rewards()` as a module's forward, so DistributedDataParallel sees the pass that it must synchronise.

    With ``prompt_ids`` (shared-prompt mode) the rows continue those prompts (`trainer.reward.shared`).
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        prompt_ids: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        prompt_of_row: Tensor | None = None,
    ) -> Tensor:
        if prompt_ids is None or prompt_mask is None or prompt_of_row is None:
            return rewards(self.model, input_ids, attention_mask)
        return shared_prompt_rewards(self.model, prompt_ids, prompt_mask, input_ids, attention_mask, prompt_of_row)
