"""SFT data: accepted demonstrations (conversation + answer) as token sequences, and the epoch's batch order.

The loss is on the answer's tokens only: every earlier turn, including earlier assistant turns that may have been
sampled rather than written, is context. Packing and padding: `trainer.common.packing`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.common.packing import (
    CompletionBatch,
    TokenSequence,
    chat_pair_encoder,
    collate_packed,
    collate_padded,
    encode_sequence,
)

SftExample = TokenSequence
SftBatch = CompletionBatch
encode_example = encode_sequence
__all__ = ["SftBatch", "SftExample", "collate_packed", "collate_padded", "encode_example", "encode_records"]


def encode_records(tokenizer: Any, records: Sequence[Mapping[str, Any]], max_length: int) -> list[SftExample]:
    """Records -> SftExamples through the one chat renderer (answer = the last assistant message)."""
    encode_pair = chat_pair_encoder(tokenizer)
    examples = [encode_sequence(encode_pair, r["messages"][:-1], r["messages"][-1]["content"], max_length=max_length)
                for r in records]  # fmt: skip
    return [e for e in examples if e is not None]


def epoch_batches(n_examples: int, *, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's micro-batches as example indexes: a seeded shuffle cut into `batch_size` pieces (the last one
    may be short)."""
    order = list(range(n_examples))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]
