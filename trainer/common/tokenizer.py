"""Tokenizer loading: the one place where a tokenizer without a pad token gets one.

Pad = EOS. SmolLM2 (and the tiny test model) ship with pad = EOS; GPT-2-style tokenizers ship without a pad token,
and get EOS here. A pad id therefore cannot tell padding from a real end of answer: every batch carries an explicit
attention mask, and losses an explicit mask. Importing this module does not import torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, *, max_length: int | None = None) -> PreTrainedTokenizerBase:
    """Make sure a pad token exists (reusing EOS: mask padding explicitly!) and cap the max length; returns it."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{type(tokenizer).__name__} has neither a pad token nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
        logger.warning("Tokenizer had no pad token; using EOS %r (padding must be masked)", tokenizer.eos_token)
    if max_length is not None:
        tokenizer.model_max_length = max_length
    return tokenizer


def load_tokenizer(
    path: Path | str, *, padding_side: Literal["left", "right"] | None = None
) -> PreTrainedTokenizerBase:
    """The tokenizer of a model folder, with a pad token (see `prepare_tokenizer`) and, if given, a padding side."""
    from transformers import AutoTokenizer

    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return tokenizer
