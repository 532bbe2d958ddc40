"""A memory plan for a training job: estimate what training needs, pick the largest micro-batch that fits a budget.

The estimate (pure arithmetic, no torch; an estimate, not a measurement) per model that a job holds:

* weights: parameters x bytes per weight (4 for float32, 2 for a bf16 frozen copy);
* gradients: trainable parameters x 4 (float32);
* AdamW: trainable parameters x 8 (two float32 moments);
* activations kept for the backward pass, models that train only: per token and per layer about
  ``ACTIVATION_VALUES_PER_HIDDEN x hidden`` float32 values (attention inputs, q/k/v, MLP in/out; after Korthikanti et
  al. 2022, with fused attention). Activation checkpointing keeps only each layer's input (``hidden`` values per
  layer) plus one layer's activations while it is recomputed. LoRA does not shrink them: the backward pass still
  goes through every frozen layer to reach the adapters;
* `extra_per_token` (e.g. LM-head logits or a KV cache) as the caller counts it.

`choose_micro_batch` tries the candidates from the largest, without checkpointing first, then with it, and raises
`DoesNotFit` naming the numbers when even the smallest one with checkpointing does not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

GB = 10**9
FLOAT32 = 4
GRAD_BYTES = 4
ADAMW_BYTES = 8
ACTIVATION_VALUES_PER_HIDDEN = 18
"""Float32 values kept per hidden unit per layer per token for the backward pass (an estimate)."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know of one model a job holds."""

    parameters: int
    trainable: int
    hidden_size: int
    layers: int
    weight_bytes: int = FLOAT32
    """Bytes per weight: 4 in float32, 2 in bf16."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes by kind; `total` is what must fit."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def describe(self) -> str:
        parts = ("weights", "gradients", "optimizer", "activations")
        return f"{self.total / GB:.3f} GB (" + ", ".join(f"{p} {getattr(self, p) / GB:.3f}" for p in parts) + ")"


def activation_bytes_per_token(shape: ModelShape, *, checkpointing: bool) -> int:
    """Bytes kept per token for the backward pass of a model that trains (0 for a frozen one)."""
    if shape.trainable == 0:
        return 0
    per_layer = ACTIVATION_VALUES_PER_HIDDEN * shape.hidden_size * FLOAT32
    if checkpointing:  # each layer's input, and one layer's activations while it is recomputed
        return shape.layers * shape.hidden_size * FLOAT32 + per_layer
    return shape.layers * per_layer


def estimate(
    models: Sequence[ModelShape],
    *,
    tokens: int,
    checkpointing: bool = False,
    extra_per_token: int = 0,
    extra: int = 0,
) -> MemoryEstimate:
    """The memory of training `models` on micro-batches of `tokens` tokens (`extra`: fixed working memory, such as
    one chunk of LM-head logits, counted with the activations)."""
    per_token = sum(activation_bytes_per_token(m, checkpointing=checkpointing) for m in models) + extra_per_token
    return MemoryEstimate(
        weights=sum(m.parameters * m.weight_bytes for m in models),
        gradients=sum(m.trainable * GRAD_BYTES for m in models),
        optimizer=sum(m.trainable * ADAMW_BYTES for m in models),
        activations=tokens * per_token + extra,
    )


class DoesNotFit(ValueError):
    """Even the smallest micro-batch with activation checkpointing needs more memory than the budget."""


@dataclass(frozen=True)
class MemoryPlan:
    """The micro-batch chosen, whether activations are checkpointed, and the numbers behind the choice."""

    micro_batch: int
    checkpointing: bool
    estimate: MemoryEstimate
    budget: int
    budget_source: str

    def describe(self) -> str:
        how = "with activation checkpointing" if self.checkpointing else "without activation checkpointing"
        return (
            f"memory plan: micro-batch {self.micro_batch} {how}, estimated {self.estimate.describe()} of "
            f"{self.budget / GB:.3f} GB ({self.budget_source})"
        )


def choose_micro_batch(
    models: Sequence[ModelShape],
    *,
    candidates: Sequence[int],
    tokens_per_example: int,
    budget: int,
    budget_source: str = "max_memory_gb",
    checkpointing: bool = False,
    extra_per_token: int = 0,
    extra: int = 0,
) -> MemoryPlan:
    """The largest candidate micro-batch whose estimate fits `budget` bytes: without activation checkpointing when
    one fits (unless `checkpointing` is asked for anyway), else with it; DoesNotFit naming the numbers otherwise."""
    sizes = sorted({c for c in candidates if c >= 1}, reverse=True)
    if not sizes:
        raise ValueError("no micro-batch size to choose from")
    for ckpt in (True,) if checkpointing else (False, True):
        for size in sizes:
            need = estimate(models, tokens=size * tokens_per_example, checkpointing=ckpt,
                            extra_per_token=extra_per_token, extra=extra)  # fmt: skip
            if need.total <= budget:
                return MemoryPlan(size, ckpt, need, budget, budget_source)
    smallest = estimate(models, tokens=sizes[-1] * tokens_per_example, checkpointing=True,
                        extra_per_token=extra_per_token, extra=extra)  # fmt: skip
    raise DoesNotFit(
        f"not enough memory: micro-batch {sizes[-1]} ({sizes[-1] * tokens_per_example} tokens) with activation "
        f"checkpointing needs an estimated {smallest.describe()}, but {budget / GB:.3f} GB is available "
        f"({budget_source}); raise max_memory_gb, use lora, shorten max_length or use a smaller model"
    )


def fit_config(
    cfg: Any,
    models: Sequence[ModelShape],
    *,
    tokens_per_example: int,
    budget: int,
    budget_source: str,
    log: Any,
    unit: str = "examples",
    extra_per_token: int = 0,
) -> Any:
    """A supervised trainer's config (`batch_size`, `grad_accum_steps`, `gradient_checkpointing`) with the largest
    micro-batch that divides its batch and fits `budget` (the rest by accumulation, so the effective batch stays),
    checkpointing when needed; the plan goes to `log`. DoesNotFit, naming the numbers, when nothing fits."""
    plan = choose_micro_batch(
        models, candidates=divisors(cfg.batch_size), tokens_per_example=tokens_per_example, budget=budget,
        budget_source=budget_source, checkpointing=cfg.gradient_checkpointing, extra_per_token=extra_per_token,
    )  # fmt: skip
    log(plan.describe() + f" (one of the {unit}: {tokens_per_example} tokens at most)")
    if plan.micro_batch == cfg.batch_size and plan.checkpointing == cfg.gradient_checkpointing:
        return cfg
    accum = cfg.grad_accum_steps * (cfg.batch_size // plan.micro_batch)
    log(f"memory plan: {plan.micro_batch} {unit} per micro-batch x {accum} accumulation steps "
        f"(asked: {cfg.batch_size} x {cfg.grad_accum_steps})")  # fmt: skip
    return replace(cfg, batch_size=plan.micro_batch, grad_accum_steps=accum, gradient_checkpointing=plan.checkpointing)


def shape_of(model: Any, *, weight_bytes: int | None = None) -> ModelShape:
    """The `ModelShape` of a live torch model (parameter counts, hidden size and layers from its config)."""
    params = list(model.parameters())
    config = model.config
    return ModelShape(
        parameters=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        hidden_size=int(config.hidden_size),
        layers=int(config.num_hidden_layers),
        weight_bytes=weight_bytes or (params[0].element_size() if params else FLOAT32),
    )


def divisors(n: int) -> list[int]:
    """Every micro-batch size that splits `n` examples evenly (so the effective batch stays `n`)."""
    return [d for d in range(1, n + 1) if n % d == 0]


def frozen(shape: ModelShape) -> ModelShape:
    """The same model with nothing training (a reference or a scorer)."""
    return replace(shape, trainable=0)


def available_memory(device: str, max_memory_gb: float | None) -> tuple[int, str]:
    """(budget in bytes, where it came from): `max_memory_gb` when given, else free CUDA memory on a CUDA device,
    else the RAM psutil says is available."""
    if max_memory_gb is not None:
        return int(max_memory_gb * GB), "max_memory_gb"
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), "free CUDA memory"
    import psutil

    return int(psutil.virtual_memory().available), "available RAM"
