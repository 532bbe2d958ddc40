"""The reward model: a causal-LM backbone with a scalar head read at the last real token.

Where the reward is read. Hugging Face's ``*ForSequenceClassification.forward`` (transformers 5.x,
``GenericForSequenceClassification``) reads the head at the rightmost token that is not ``config.pad_token_id``.
With pad = EOS (SmolLM2, the tiny test model) a sequence that ends in EOS would be read one token early.
``rewards()`` reads by the attention mask instead (any padding side), and ranklab's tokenisation
(`encode_completion` below) never lets a sequence end in the pad id, so both agree on what
ranklab feeds them; position ids come from the mask, so left and right padding give the same rewards.

Offset. The stock head is ``Linear(hidden, 1, bias=False)``, so the reward cannot be centred by a bias that HF
would load. The centring shift is stored in ``config.json`` as ``ranklab_reward_offset``:
``reward = raw HF logit - ranklab_reward_offset``. ``rewards()`` applies it; pairwise differences (all that
preferences and PPO advantages after whitening see) are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from trainer.common.chat import Message, encode_prompt_completion
from trainer.common.models import disable_dropout, require_model_dir, save_model_folder, zero_config_dropout
from trainer.common.tokenizer import load_tokenizer

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

OFFSET_KEY = "ranklab_reward_offset"


def encode_completion(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], completion: str, max_length: int
) -> list[int]:
    """Token ids the reward model reads for `messages` answered by `completion` (`trainer.common.chat`: prompt ids
    then completion ids), truncated from the left (prompt first) to `max_length`.

    Trailing pad ids are dropped: with pad = EOS, Hugging Face's sequence-classification head reads the reward at
    the last token that is not the pad id, so a sequence ending in it would be scored elsewhere once saved.
    """
    ids = encode_prompt_completion(tokenizer, messages, completion).input_ids[-max_length:]
    while ids and ids[-1] == tokenizer.pad_token_id:
        ids.pop()
    if not ids:
        raise ValueError(f"empty sequence for the completion {completion[:40]!r}")
    return ids


def build_reward_model(
    source: Path | str | PretrainedConfig, *, pad_token_id: int, dtype: torch.dtype = torch.float32
) -> PreTrainedModel:
    """A sequence-classification model with one label from a causal-LM folder (fresh head) or a config."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(source) if isinstance(source, str | Path) else source
    config.num_labels = 1
    config.pad_token_id = pad_token_id
    config.use_cache = False
    zero_config_dropout(config)
    if isinstance(source, str | Path):
        model = AutoModelForSequenceClassification.from_pretrained(source, config=config, dtype=dtype)
    else:
        model = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
    setattr(model.config, OFFSET_KEY, float(getattr(model.config, OFFSET_KEY, 0.0)))
    disable_dropout(model)
    return model


def reward_offset(model: PreTrainedModel) -> float:
    """The shift subtracted from the raw head output (0 until `center_rewards`)."""
    return float(getattr(model.config, OFFSET_KEY, 0.0))


def last_token_index(attention_mask: Tensor) -> Tensor:
    """(B, T) mask -> (B,) index of the rightmost real token, for left or right padding."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)  # (T,)
    return (positions * attention_mask.long()).argmax(dim=-1)


def raw_rewards(model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T) -> (B,) head output at the last real token, before the offset."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # (B, T, H)
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]  # (B, H)
    head: nn.Module = model.score  # type: ignore[assignment]
    return head(last).squeeze(-1).float()  # (B,)


def rewards(model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T) -> (B,) rewards: the head at the last real token (by the attention mask), minus the offset."""
    return raw_rewards(model, input_ids, attention_mask) - reward_offset(model)


@torch.no_grad()
def score_sequences(
    model: PreTrainedModel, sequences: Sequence[list[int]], *, pad_token_id: int, batch_size: int = 32
) -> Tensor:
    """Rewards (N,) of token-id sequences, in order, batched with right padding (longest first for speed)."""
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    out = torch.zeros(len(sequences))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = len(sequences[chunk[0]])
        input_ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)  # (b, T)
        attention_mask = torch.zeros_like(input_ids)
        for row, i in enumerate(chunk):
            input_ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
            attention_mask[row, : len(sequences[i])] = 1
        out[chunk] = rewards(model, input_ids.to(device), attention_mask.to(device)).cpu()
    return out


def center_rewards(
    model: PreTrainedModel, sft_sequences: Sequence[list[int]], *, pad_token_id: int, batch_size: int = 32
) -> float:
    """Shift the offset so the mean reward of `sft_sequences` (the SFT policy's completions) is 0; return it."""
    if not sft_sequences:
        raise ValueError("center_rewards needs at least one SFT completion")
    was_training = model.training
    model.eval()
    mean = float(score_sequences(model, sft_sequences, pad_token_id=pad_token_id, batch_size=batch_size).mean())
    model.train(was_training)
    offset = reward_offset(model) + mean
    setattr(model.config, OFFSET_KEY, offset)
    return offset


def save_reward_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    """Write a Hugging Face folder (weights, config with the offset, tokenizer) atomically."""
    return save_model_folder(model, tokenizer, path)


def load_reward_model(
    path: Path | str, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a saved reward model and its tokenizer, in eval mode."""
    from transformers import AutoModelForSequenceClassification

    path = require_model_dir(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(device)
    model.eval()
    return model, load_tokenizer(path)
