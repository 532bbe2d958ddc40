"""The memory plan: the estimate on hand-worked numbers, and the micro-batch chooser's choices and refusal."""

from __future__ import annotations

import pytest

from trainer.common.memory import (
    ACTIVATION_VALUES_PER_HIDDEN,
    GB,
    DoesNotFit,
    ModelShape,
    available_memory,
    choose_micro_batch,
    divisors,
    estimate,
    frozen,
)

# 1,000 parameters of which 100 train; hidden 10, 2 layers.
MODEL = ModelShape(parameters=1000, trainable=100, hidden_size=10, layers=2)
PER_LAYER = ACTIVATION_VALUES_PER_HIDDEN * 10 * 4  # bytes per token per layer


def test_estimate_by_hand() -> None:
    e = estimate([MODEL], tokens=3)
    assert (e.weights, e.gradients, e.optimizer) == (4000, 400, 800)  # 4 B/weight, 4 B/grad, 8 B of AdamW moments
    assert e.activations == 3 * 2 * PER_LAYER
    assert e.total == 4000 + 400 + 800 + 3 * 2 * PER_LAYER


def test_checkpointing_keeps_layer_inputs_and_one_layer() -> None:
    e = estimate([MODEL], tokens=3, checkpointing=True)
    assert e.activations == 3 * (2 * 10 * 4 + PER_LAYER)


def test_frozen_bf16_models_cost_weights_only() -> None:
    reference = frozen(ModelShape(parameters=1000, trainable=1000, hidden_size=10, layers=2, weight_bytes=2))
    e = estimate([reference], tokens=100)
    assert (e.weights, e.gradients, e.optimizer, e.activations) == (2000, 0, 0, 0)


def test_lora_shrinks_gradients_and_optimizer_not_activations() -> None:
    full = estimate([ModelShape(1000, 1000, 10, 2)], tokens=4)
    lora = estimate([ModelShape(1040, 40, 10, 2)], tokens=4)
    assert lora.gradients + lora.optimizer == 40 * 12 < full.gradients + full.optimizer == 1000 * 12
    assert lora.activations == full.activations


def test_extra_per_token_and_fixed_extra_are_added() -> None:
    assert estimate([MODEL], tokens=5, extra_per_token=7, extra=11).activations == 5 * (2 * PER_LAYER + 7) + 11


def test_divisors_keep_the_effective_batch() -> None:
    assert divisors(12) == [1, 2, 3, 4, 6, 12] and divisors(1) == [1]


def test_chooser_takes_the_largest_that_fits_without_checkpointing() -> None:
    fixed = 5200
    budget = fixed + 4 * 2 * PER_LAYER  # exactly 4 tokens without checkpointing
    plan = choose_micro_batch([MODEL], candidates=[1, 2, 4, 8], tokens_per_example=1, budget=budget)
    assert (plan.micro_batch, plan.checkpointing, plan.estimate.total) == (4, False, budget)
    assert "micro-batch 4 without activation checkpointing" in plan.describe()


def test_chooser_turns_checkpointing_on_when_nothing_fits_without() -> None:
    deep = ModelShape(parameters=1000, trainable=100, hidden_size=10, layers=4)
    fixed, ckpt_per_token = 5200, 4 * 10 * 4 + PER_LAYER
    budget = fixed + 2 * ckpt_per_token  # micro-batch 1 without (4 * PER_LAYER) does not fit, 2 with does
    assert 2 * ckpt_per_token < 4 * PER_LAYER
    plan = choose_micro_batch([deep], candidates=[1, 2, 4], tokens_per_example=1, budget=budget)
    assert (plan.micro_batch, plan.checkpointing) == (2, True)


def test_asked_checkpointing_stays_on() -> None:
    plan = choose_micro_batch([MODEL], candidates=[2], tokens_per_example=1, budget=10**9, checkpointing=True)
    assert plan.checkpointing


def test_refusal_names_the_numbers() -> None:
    with pytest.raises(DoesNotFit) as caught:
        choose_micro_batch([MODEL], candidates=[4, 1], tokens_per_example=10, budget=1000, budget_source="test")
    message = str(caught.value)
    assert "micro-batch 1 (10 tokens) with activation checkpointing" in message
    assert f"{estimate([MODEL], tokens=10, checkpointing=True).total / GB:.3f} GB" in message
    assert "0.000 GB is available (test)" in message


def test_budget_from_the_param_or_the_machine() -> None:
    assert available_memory("cpu", 1.5) == (1_500_000_000, "max_memory_gb")
    free, source = available_memory("cpu", None)
    assert free > 0 and source == "available RAM"
