"""Prompt + completion sequences as one model pass scores them: the completion's tokens only, packed or padded.

Packed (padding-free): one row holds the batch's sequences back to back, `position_ids` restarting at 0 for each (as
`DataCollatorWithFlattening` does); transformers' masking turns restarting positions into a block-diagonal causal
mask for sdpa/eager attention (and flash-attention reads the same positions), so no sequence sees another and no
padding token is computed (tests/trainer/test_sft.py checks it per attention implementation). Padded: the same
sequences right-padded to the longest, with an attention mask.

`targets` lists the positions whose next token is a completion token, so the LM head runs on those positions alone
(`completion_logprobs`); SFT sums them into a loss, DPO into one log-probability per sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

EncodePair = Callable[[Sequence[Mapping[str, str]], str], tuple[list[int], list[int]]]
"""(messages, completion) -> (prompt ids, completion ids): `trainer.common.chat.encode_prompt_completion`."""


@dataclass(frozen=True)
class TokenSequence:
    """One sequence: prompt tokens then completion (answer) tokens."""

    input_ids: tuple[int, ...]
    n_prompt: int
    """How many leading tokens are context (no loss)."""

    @property
    def n_answer(self) -> int:
        return len(self.input_ids) - self.n_prompt


def encode_sequence(
    encode_pair: EncodePair, messages: Sequence[Mapping[str, str]], answer: str, *, max_length: int
) -> TokenSequence | None:
    """Tokenise one demonstration, cutting the prompt from the left (earliest turns first) to fit `max_length`; an
    answer that alone exceeds it is cut at the end. None when no answer token would remain after the first."""
    prompt_ids, answer_ids = encode_pair(messages, answer)
    answer_ids = answer_ids[:max_length]
    keep_prompt = max(1, max_length - len(answer_ids)) if prompt_ids else 0
    prompt_ids = prompt_ids[-keep_prompt:] if keep_prompt else []
    ids = tuple(prompt_ids + answer_ids)[:max_length]
    n_prompt = min(len(prompt_ids), len(ids))
    if len(ids) - n_prompt < 1 or len(ids) < 2:
        return None
    return TokenSequence(ids, n_prompt)


@dataclass
class CompletionBatch:
    """A micro-batch ready for the model."""

    input_ids: torch.Tensor  # (B, T); B = 1 when packed
    position_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor | None  # (B, T); None when packed (positions say where sequences start)
    targets: torch.Tensor  # (N,) flat positions (row * T + t) whose next token is an answer token
    labels: torch.Tensor  # (N,) the answer token predicted at each target position
    target_sequence: torch.Tensor  # (N,) which sequence of the batch each target belongs to
    n_tokens: int
    """Tokens computed (padding included): what the throughput counts."""
    n_examples: int

    def to(self, device: torch.device | str) -> CompletionBatch:
        mask = self.attention_mask.to(device) if self.attention_mask is not None else None
        return CompletionBatch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            mask,
            self.targets.to(device),
            self.labels.to(device),
            self.target_sequence.to(device),
            self.n_tokens,
            self.n_examples,
        )


def _targets(example: TokenSequence, offset: int) -> tuple[list[int], list[int]]:
    """Positions (offset by `offset`) predicting each answer token, and those tokens."""
    ids = example.input_ids
    start = max(example.n_prompt, 1)  # the first token is never predicted
    return [offset + t - 1 for t in range(start, len(ids))], [ids[t] for t in range(start, len(ids))]


def collate_packed(examples: Sequence[TokenSequence]) -> CompletionBatch:
    """One row, the sequences back to back, positions restarting per sequence (padding-free)."""
    ids: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    labels: list[int] = []
    owner: list[int] = []
    for i, example in enumerate(examples):
        t, y = _targets(example, len(ids))
        targets += t
        labels += y
        owner += [i] * len(t)
        ids += example.input_ids
        positions += range(len(example.input_ids))
    return CompletionBatch(
        input_ids=torch.tensor([ids]),
        position_ids=torch.tensor([positions]),
        attention_mask=None,
        targets=torch.tensor(targets, dtype=torch.long),
        labels=torch.tensor(labels, dtype=torch.long),
        target_sequence=torch.tensor(owner, dtype=torch.long),
        n_tokens=len(ids),
        n_examples=len(examples),
    )


def collate_padded(examples: Sequence[TokenSequence], *, pad_id: int) -> CompletionBatch:
    """Rows right-padded to the longest sequence, with an attention mask."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    targets: list[int] = []
    labels: list[int] = []
    owner: list[int] = []
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        mask[row, :n] = 1
        t, y = _targets(example, row * width)
        targets += t
        labels += y
        owner += [row] * len(t)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return CompletionBatch(
        input_ids=ids,
        position_ids=positions,
        attention_mask=mask,
        targets=torch.tensor(targets, dtype=torch.long),
        labels=torch.tensor(labels, dtype=torch.long),
        target_sequence=torch.tensor(owner, dtype=torch.long),
        n_tokens=ids.numel(),
        n_examples=len(examples),
    )


def chat_pair_encoder(tokenizer: Any) -> EncodePair:
    """`EncodePair` through the one chat renderer (`trainer.common.chat.encode_prompt_completion`)."""
    from trainer.common.chat import encode_prompt_completion

    def encode_pair(messages: Sequence[Mapping[str, str]], completion: str) -> tuple[list[int], list[int]]:
        encoded = encode_prompt_completion(tokenizer, messages, completion)
        return encoded.prompt_ids, encoded.completion_ids

    return encode_pair


def lm_parts(model: Any) -> tuple[nn.Module, nn.Module]:
    """(decoder that returns hidden states, LM head) of a Hugging Face causal LM."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    head = model.get_output_embeddings()
    if decoder is None or head is None:
        raise ValueError(f"{type(model).__name__} has no decoder/LM head")
    return decoder, head


def completion_logprobs(model: Any, batch: CompletionBatch) -> torch.Tensor:
    """(N,) float32 log-probability of every completion token of the batch, in `targets` order."""
    from trainer.common.logprobs import logprobs_from_hidden

    decoder, head = lm_parts(model)
    # no cache: transformers reads restarting positions as packed sequences (block-diagonal mask) only without one
    out = decoder(
        input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=batch.attention_mask, use_cache=False
    )
    hidden = out.last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1])[batch.targets]  # (N, H)
    logprobs, _ = logprobs_from_hidden(picked[None], batch.labels[None], head)
    return logprobs[0]


def sequence_logprobs(model: Any, batch: CompletionBatch) -> torch.Tensor:
    """(S,) summed completion log-probability of each of the batch's S sequences."""
    per_token = completion_logprobs(model, batch)
    sums = per_token.new_zeros(batch.n_examples)
    return sums.index_add(0, batch.target_sequence, per_token)
