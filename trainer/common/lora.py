"""LoRA adapters (peft) on the trainers' models: wrap, count, switch off, and save merged.

`add_adapters` injects the adapters into the Hugging Face model in place and returns peft's wrapper; trainers keep
working on `wrapper.get_base_model()`, the same Hugging Face class as before (``model.base_model`` is still the
transformer body, ``model.score`` still the reward head), whose targeted projections now carry frozen weights and
trainable ``lora_A`` / ``lora_B``. The wrapper is kept only to save: `save_merged` writes the adapter to
``adapter/`` and then the merged weights as a plain Hugging Face folder, so every loader (``AutoModelForCausalLM``,
the reward-model loader) reads a LoRA-trained version like any other.

`adapters_disabled(model)` runs a block with every adapter off, i.e. as the base model exactly (peft's
``disable_adapter()`` on the layers themselves): PPO's reference log-probs come from the policy this way, with no
second copy of the weights. On a model without adapters it does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.schemas.params import LoraParams
from app.storage import atomic_dir

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ADAPTER_DIR = "adapter"
"""Subfolder of a registered version that holds its LoRA adapter (peft's `save_pretrained` format)."""
HEADS = ("lm_head", "score")
"""Output layers that never get an adapter by default (a reward head is trained fully instead)."""


def default_target_modules(model: nn.Module) -> list[str]:
    """Leaf names of the linear layers of the transformer body: every attention and MLP projection."""
    from torch import nn

    body: nn.Module = getattr(model, "base_model", model)
    names = {name.rsplit(".", 1)[-1] for name, module in body.named_modules() if isinstance(module, nn.Linear)}
    names -= set(HEADS)
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear projections to put LoRA adapters on")
    return sorted(names)


def add_adapters(model: PreTrainedModel, lora: LoraParams, *, head: str | None = None) -> Any:
    """Freeze `model` and give its projections trainable LoRA adapters; `head` (e.g. "score") stays fully trainable.

    Returns peft's wrapper; train `wrapper.get_base_model()` (the same object as `model`, adapters injected)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules or default_target_modules(model),
        modules_to_save=[head] if head else None,
        task_type=TaskType.SEQ_CLS if head else TaskType.CAUSAL_LM,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # peft names the modules it could not find
        raise ValueError(f"lora.target_modules: {error}") from error


ONE_PROCESS = "lora is not supported with processes > 1 yet: set processes to 1"


def check_processes(lora: LoraParams | None, processes: int) -> None:
    """LoRA jobs run in one process for now: refused with a clear message rather than a DDP run over peft's model."""
    if lora is not None and processes > 1:
        raise ValueError(ONE_PROCESS)


def adapt_policy(policy: PreTrainedModel, lora: LoraParams, processes: int) -> tuple[PreTrainedModel, Any]:
    """(the policy to train, peft's wrapper to save from): `policy` frozen with trainable adapters (one process)."""
    check_processes(lora, processes)
    adapted = add_adapters(policy, lora)
    return adapted.get_base_model(), adapted


def trainable_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters) of `model`."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def describe(model: nn.Module) -> str:
    """One log line: how many parameters train."""
    trainable, total = trainable_counts(model)
    return f"LoRA: {trainable:,} of {total:,} parameters train ({100 * trainable / max(total, 1):.2f}%)"


def _switchable(model: nn.Module) -> list[Any]:
    """The adapter layers (and trained head copies) of `model`: peft's tuner layers and modules-to-save wrappers."""
    if "peft" not in sys.modules:  # nothing imported peft, so no model has adapters
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils import ModulesToSaveWrapper

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer | ModulesToSaveWrapper)]


def has_adapters(model: nn.Module) -> bool:
    """True when `model` carries LoRA adapters."""
    return bool(_switchable(model))


@contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """Run the block with every adapter of `model` off (the base model exactly); a no-op without adapters."""
    layers = _switchable(model)
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def save_merged(adapted: Any, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    """Write the adapter to ``path/adapter`` and the merged model as a plain Hugging Face folder, atomically.

    Merging changes the wrapped model in place (its adapters are folded into the weights), so call it last."""
    with atomic_dir(Path(path), replace=True) as tmp:
        adapted.save_pretrained(tmp / ADAPTER_DIR)
        merged = adapted.merge_and_unload()
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(path)
