"""PPO's models: per-token values, and the policy and value model behind one forward for DDP (the policy's
log-probs are `trainer.common.logprobs`).

Layout. An episode is ``query | response``: queries are left-padded, responses right-padded after EOS, so all
responses start at one column ``response_start``. Position ids come from the attention mask, so the padding side
does not change what a row computes. The hidden state at column ``t - 1`` predicts token ``t``; it is also the
state whose value ``V`` estimates the return from token ``t`` on.

"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from trainer.common.logprobs import backbone_states, forward_logprobs, lm_loss

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def forward_values(
    value_model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, response_start: int
) -> Tensor:
    """(B, T) episodes -> (B, T - response_start) float32 values: the RM-style ``score`` head at every state."""
    device = value_model.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    hidden = backbone_states(value_model, input_ids, attention_mask)[:, response_start - 1 : -1]  # (B, Tr, H)
    head: nn.Module = value_model.score  # type: ignore[assignment]
    return head(hidden).squeeze(-1).float()


class PolicyAndValue(nn.Module):
    """Policy and value model behind one ``forward``, so DistributedDataParallel synchronises both in one pass.

    forward -> (policy log-probs, values), each (B, Tr); with ``ptx_ids`` also the policy's LM loss on them
    (otherwise a 0 tensor).
    """

    def __init__(self, policy: PreTrainedModel, value_model: PreTrainedModel, chunk_tokens: int) -> None:
        super().__init__()
        self.policy = policy
        self.value_model = value_model
        self.chunk_tokens = chunk_tokens

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        response_start: int,
        temperature: float,
        ptx_ids: Tensor | None = None,
        ptx_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        logprobs, _ = forward_logprobs(
            self.policy,
            input_ids,
            attention_mask,
            response_start,
            temperature=temperature,
            chunk_tokens=self.chunk_tokens,
        )
        values = forward_values(self.value_model, input_ids, attention_mask, response_start)
        if ptx_ids is None or ptx_mask is None:
            return logprobs, values, logprobs.new_zeros(())
        return logprobs, values, lm_loss(self.policy, ptx_ids, ptx_mask, self.chunk_tokens)
