"""Per-token log-probabilities of a causal LM, computed without materialising (B, T, V) logits, and what is built on
them: the language-model loss, a response's summed log-probability, and the KL between two models on samples.

Layout. An episode is ``query | response`` (`trainer.common.generation.Episodes`): queries left-padded, responses
right-padded after EOS, so all responses start at one column ``response_start``. Position ids come from the
attention mask, so the padding side does not change what a row computes. The hidden state at column ``t - 1``
predicts token ``t``.

Memory. The LM head runs ``chunk_tokens`` hidden states at a time, in float32, and under autograd each chunk is
recomputed in the backward pass (activation checkpointing), so a 50k vocabulary costs ``chunk_tokens * V`` floats
at any moment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from trainer.common.generation import Episodes, pack_episodes

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_CHUNK_TOKENS = 1024


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """(B, T) mask -> (B, T) positions counting real tokens only (0 on left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _chunk_logprobs(hidden: Tensor, tokens: Tensor, head: nn.Module, temperature: float) -> Tensor:
    logits = head(hidden).float() / temperature  # (n, V)
    picked = logits.gather(-1, tokens[:, None]).squeeze(-1)  # (n,)
    return picked - torch.logsumexp(logits, dim=-1)


@torch.no_grad()
def _chunk_logprobs_and_entropy(
    hidden: Tensor, tokens: Tensor, head: nn.Module, temperature: float
) -> tuple[Tensor, Tensor]:
    """Both from one LM-head pass (no gradient): the log-probs of `tokens` (computed exactly as `_chunk_logprobs`
    computes them, so a later pass with gradients reproduces them bit for bit) and the entropy of the softmax."""
    logits = head(hidden).float() / temperature  # (n, V)
    normaliser = torch.logsumexp(logits, dim=-1)  # (n,)
    log_probs = logits - normaliser[:, None]
    picked = logits.gather(-1, tokens[:, None]).squeeze(-1) - normaliser
    return picked, -(log_probs.exp() * log_probs).sum(-1)


def logprobs_from_hidden(
    hidden: Tensor,
    tokens: Tensor,
    head: nn.Module,
    *,
    temperature: float = 1.0,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """(B, T, H) states and (B, T) next tokens -> (B, T) float32 log-probs of `tokens` under softmax(head / temp).

    With `with_entropy` also the (B, T) entropy of that softmax (no gradient).
    """
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])  # (N, H)
    flat_tokens = tokens.reshape(-1)  # (N,)
    logprobs, entropies = [], []
    for start in range(0, flat_tokens.shape[0], chunk_tokens):
        h, tok = flat_hidden[start : start + chunk_tokens], flat_tokens[start : start + chunk_tokens]
        needs_grad = torch.is_grad_enabled() and h.requires_grad
        if with_entropy and not needs_grad:  # the scoring pass: one LM-head pass gives both
            picked, entropy = _chunk_logprobs_and_entropy(h, tok, head, temperature)
            logprobs.append(picked)
            entropies.append(entropy)
            continue
        # Recomputing a chunk in the backward pass only pays when there are several (a 50k vocabulary).
        if needs_grad and flat_tokens.shape[0] > chunk_tokens:
            logprobs.append(checkpoint(_chunk_logprobs, h, tok, head, temperature, use_reentrant=False))
        else:
            logprobs.append(_chunk_logprobs(h, tok, head, temperature))
        if with_entropy:
            entropies.append(_chunk_logprobs_and_entropy(h.detach(), tok, head, temperature)[1])
    out = torch.cat(logprobs).reshape(tokens.shape)
    return out, torch.cat(entropies).reshape(tokens.shape) if with_entropy else None


def backbone_states(model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T) -> (B, T, H) last hidden states of the model's transformer body, positions from the mask."""
    body: nn.Module = model.base_model
    return body(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    ).last_hidden_state


def forward_logprobs(
    model: PreTrainedModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_start: int,
    *,
    temperature: float = 1.0,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """(B, T) episodes -> (B, T - response_start) log-probs of the response tokens (and entropies, when asked).

    Inputs are moved to the model's device (a reference model may live elsewhere); outputs are float32 there.
    """
    device = model.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    hidden = backbone_states(model, input_ids, attention_mask)[:, response_start - 1 : -1]  # (B, Tr, H)
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (LM head)")
    return logprobs_from_hidden(
        hidden,
        input_ids[:, response_start:],
        head,
        temperature=temperature,
        chunk_tokens=chunk_tokens,
        with_entropy=with_entropy,
    )


def lm_loss(model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, chunk_tokens: int) -> Tensor:
    """Mean next-token negative log-likelihood over the real tokens (the PPO-ptx pretraining term)."""
    device = model.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    logprobs, _ = forward_logprobs(model, input_ids, attention_mask, 1, chunk_tokens=chunk_tokens)  # (B, T-1)
    mask = attention_mask[:, 1:].to(logprobs.dtype)
    return -(logprobs * mask).sum() / mask.sum().clamp(min=1)


SCORING_BATCH = 16
"""Episodes per forward pass in `sequence_logprob`."""


@torch.no_grad()
def sequence_logprob(model: torch.nn.Module, episodes: Episodes, batch_size: int = SCORING_BATCH) -> Tensor:
    """(B,) summed log-probability of each response (up to and including EOS) at temperature 1, on the CPU."""
    out = []
    for start in range(0, episodes.query_ids.shape[0], batch_size):
        part = episodes.select(torch.arange(start, min(start + batch_size, episodes.query_ids.shape[0])))
        input_ids, attention_mask, response_start = pack_episodes(part)
        logprobs, _ = forward_logprobs(model, input_ids, attention_mask, response_start)  # type: ignore[arg-type]
        mask = part.response_mask[:, : logprobs.shape[1]].to(logprobs.device)
        out.append((logprobs * mask).sum(-1).cpu())
    return torch.cat(out)


def kl_on_samples(policy: torch.nn.Module, baseline: torch.nn.Module, samples: Episodes) -> np.ndarray:
    """Per-episode KL estimate of policy from baseline: log pi(y|x) - log pi_base(y|x) on the policy's samples.

    The baseline is read with any LoRA adapters off: with LoRA the baseline may be the policy object itself."""
    from trainer.common.lora import adapters_disabled

    ours = sequence_logprob(policy, samples)
    with adapters_disabled(baseline):
        theirs = sequence_logprob(baseline, samples)
    return (ours - theirs).numpy()
