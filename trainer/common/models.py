"""Loading and saving model folders: a causal LM for generation, devices and dtypes, dropout off, activation
checkpointing, and the atomic Hugging Face folder every job writes. Importing this module does not import torch.

Pad-token trap: SmolLM2's pad token is its EOS token (``<|im_end|>``), and so is the tiny test model's.
A pad id therefore cannot tell padding from a real end of answer: every batch MUST carry an explicit
``attention_mask`` (and losses an explicit mask), never a mask derived from ``input_ids != pad_token_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.storage import atomic_dir
from trainer.common.tokenizer import load_tokenizer

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


def is_complete_model_dir(path: Path) -> bool:
    """True when `path` holds a finished HF-format model folder (config, safetensors weights, tokenizer)."""
    return (
        (path / "config.json").is_file()
        and any(path.glob("*.safetensors"))
        and (path / "tokenizer_config.json").is_file()
    )


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA, float32 elsewhere (CPU bf16 matmuls are slow and less precise)."""
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


def require_model_dir(path: Path | str) -> Path:
    """The model's folder, or FileNotFoundError saying so (from_pretrained would take a missing folder for a Hub
    repo id and fail with a message about repo ids)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder} (was it moved or deleted?)")
    return folder


def load_policy(
    path: Path | str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer for generation: eval mode, left padding, pad token set."""
    import torch
    from transformers import AutoModelForCausalLM

    path = require_model_dir(path)
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device)
    model.eval()
    tokenizer = load_tokenizer(path, padding_side="left")
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_model_folder(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    """Write a Hugging Face folder (weights, config, tokenizer) that appears whole or not at all."""
    with atomic_dir(Path(path), replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(path)


def _is_dropout_key(key: str) -> bool:
    return "dropout" in key or key.endswith("pdrop")


def zero_config_dropout(config: PretrainedConfig) -> None:
    """Set every dropout probability of a model config to 0 (before the model is built from it)."""
    for key, value in config.to_dict().items():
        if isinstance(value, float) and _is_dropout_key(key):
            setattr(config, key, 0.0)


def disable_dropout(model: nn.Module) -> None:
    """Zero every dropout probability: config fields, `nn.Dropout` modules, and float attributes such as
    `LlamaAttention.attention_dropout` (copied from the config at construction), so train mode is deterministic.
    """
    from torch import nn

    config = getattr(model, "config", None)
    if config is not None:
        zero_config_dropout(config)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for key, value in vars(module).items():
            if isinstance(value, float) and _is_dropout_key(key):
                setattr(module, key, 0.0)


def enable_activation_checkpointing(model: PreTrainedModel) -> None:
    """Recompute each layer's activations in the backward pass (non-reentrant, so DDP and frozen inputs work)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name warns
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
