"""Sampling K completions per prompt from the tiny random model."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dataclasses import replace
from pathlib import Path

import pytest

from trainer.common.chat import as_messages, encode_prompt, render_prompt
from trainer.common.generation import batch_seed, collate_queries
from trainer.common.models import load_policy
from trainer.common.tiny import build_tiny_model, build_tiny_tokenizer
from trainer.sampling.completions import (
    SamplingConfig,
    duplicate_slots,
    generate_completions,
    generate_kwargs,
    sample_batch,
    trim_at_eos,
)

PROMPTS = ["Hello", "Write a short poem about the sea and the sky, please.", "What is 2 + 2?"]
EOS = 2


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def policy(tiny_dir: Path):  # a fresh copy per test: some tests change its generation config
    return load_policy(tiny_dir)


@pytest.mark.parametrize(
    "changes",
    [
        {"k": 3},
        {"k": 10},
        {"temperature": -0.1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"max_new_tokens": 0},
        {"batch_size": 0},
        {"dedupe_retries": -1},
        {"cache_implementation": "paged"},
    ],
)
def test_config_rejects_bad_values(changes: dict) -> None:
    with pytest.raises(ValueError):
        SamplingConfig(**changes)


def test_duplicate_slots_keeps_first_occurrence() -> None:
    assert duplicate_slots(["a", "b", "a", "a ", " b", "c", ""]) == [2, 3, 4]
    assert duplicate_slots(["x", "y", "z"]) == []
    assert duplicate_slots(["", " ", "\n"]) == [1, 2]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([5, 6, EOS, EOS, EOS], ([5, 6], 3, "eos")),
        ([EOS, EOS], ([], 1, "eos")),
        ([5, 6, 7], ([5, 6, 7], 3, "length")),
        ([5, 6, 9], ([5, 6], 3, "eos")),
    ],
)
def test_trim_at_eos(ids: list[int], expected: tuple) -> None:
    assert trim_at_eos(ids, {EOS, 9}) == expected


def test_batch_seed_differs_by_round_and_batch() -> None:
    seeds = {batch_seed(0, r, b) for r in range(3) for b in range(50)}
    assert len(seeds) == 150 and batch_seed(7, 1, 2) == batch_seed(7, 1, 2)


def test_generate_kwargs_turn_off_default_top_k() -> None:
    tokenizer = build_tiny_tokenizer()
    kwargs = generate_kwargs(SamplingConfig(temperature=0.7, top_p=0.9), tokenizer)
    assert kwargs["do_sample"] and kwargs["top_k"] == 0 and kwargs["use_cache"]
    assert generate_kwargs(SamplingConfig(temperature=0), tokenizer)["do_sample"] is False


def test_prompts_are_rendered_with_the_chat_template_when_present() -> None:
    tokenizer = build_tiny_tokenizer()
    assert render_prompt(tokenizer, as_messages("Hi")) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    tokenizer.chat_template = None
    assert render_prompt(tokenizer, as_messages("Hi")) == "User:\nHi\n\nAssistant:\n"  # the one plain format


def test_k_completions_per_prompt_with_params(policy) -> None:
    model, tokenizer = policy
    cfg = SamplingConfig(k=5, temperature=0.9, top_p=0.8, max_new_tokens=6, seed=3, batch_size=4)
    fractions: list[float] = []
    result = generate_completions(model, tokenizer, PROMPTS, cfg, progress_callback=fractions.append)
    assert [len(row) for row in result.completions] == [5, 5, 5]
    for completion in (c for row in result.completions for c in row):
        assert 1 <= completion.token_count <= 6
        assert completion.sampling_params["temperature"] == 0.9
        assert completion.sampling_params["top_p"] == 0.8
        assert completion.sampling_params["max_new_tokens"] == 6 and completion.sampling_params["seed"] == 3
        assert {"batch_seed", "round"} <= completion.sampling_params.keys()
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    stats = result.stats
    assert stats.generated_tokens == sum(c.token_count for row in result.completions for c in row)
    assert stats.tokens_per_s > 0 and stats.duplicates_left == 0


def test_same_seed_same_output_other_seed_differs(policy) -> None:
    model, tokenizer = policy
    cfg = SamplingConfig(k=4, max_new_tokens=8, seed=11, batch_size=8)
    first = generate_completions(model, tokenizer, PROMPTS, cfg).completions
    again = generate_completions(model, tokenizer, PROMPTS, cfg).completions
    other = generate_completions(model, tokenizer, PROMPTS, replace(cfg, seed=12)).completions
    assert first == again
    assert [c.text for row in first for c in row] != [c.text for row in other for c in row]


def test_length_finish_when_eos_is_impossible(policy) -> None:
    model, tokenizer = policy
    model.generation_config.suppress_tokens = [EOS]
    cfg = SamplingConfig(k=4, max_new_tokens=5, batch_size=16)
    result = generate_completions(model, tokenizer, PROMPTS, cfg)
    for completion in (c for row in result.completions for c in row):
        assert (completion.finish_reason, completion.token_count) == ("length", 5)


def test_eos_finish_and_unresolvable_duplicates_are_reported(policy) -> None:
    model, tokenizer = policy
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i != EOS]
    cfg = SamplingConfig(k=4, max_new_tokens=5, batch_size=16, dedupe_retries=2)
    result = generate_completions(model, tokenizer, PROMPTS, cfg)
    for completion in (c for row in result.completions for c in row):
        assert (completion.text, completion.finish_reason, completion.token_count) == ("", "eos", 1)
    stats = result.stats
    assert stats.duplicates_left == 3 * 3  # all four answers are empty: three duplicates per prompt
    assert (stats.rounds, stats.resampled, stats.sequences) == (3, 2 * 9, 12 + 2 * 9)
    assert stats.generated_tokens == stats.sequences  # each one is a lone EOS


def test_duplicates_are_resampled(policy) -> None:
    model, tokenizer = policy
    # Twelve allowed tokens and one new token: nine draws per prompt collide at first.
    allowed = set(range(40, 52))
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i not in allowed]
    cfg = SamplingConfig(k=9, max_new_tokens=1, batch_size=32, dedupe_retries=8, seed=5)
    result = generate_completions(model, tokenizer, PROMPTS, cfg)
    rounds_seen = {c.sampling_params["round"] for row in result.completions for c in row}
    assert result.stats.resampled > 0 and max(rounds_seen) > 0
    left = sum(len(duplicate_slots([c.text for c in row])) for row in result.completions)
    assert result.stats.duplicates_left == left
    no_retry = generate_completions(model, tokenizer, PROMPTS, replace(cfg, dedupe_retries=0)).stats
    assert (no_retry.rounds, no_retry.resampled) == (1, 0)
    assert no_retry.duplicates_left > left  # re-sampling removed some


def test_left_padding_is_masked(policy) -> None:
    model, tokenizer = policy
    cfg = SamplingConfig(temperature=0, max_new_tokens=12)
    texts = ("Hi", "Explain a list and a tuple in Python, with care.")
    short, long = (encode_prompt(tokenizer, as_messages(p)) for p in texts)
    batched = sample_batch(model, tokenizer, [short, long], cfg, seed=0)
    alone = [sample_batch(model, tokenizer, [ids], cfg, seed=0)[0] for ids in (short, long)]
    assert batched == alone
    # The check has teeth: without the mask, padding (= EOS here) leaks into the short prompt's answer.
    input_ids, _ = collate_queries([short, long], int(tokenizer.pad_token_id))
    unmasked = model.generate(input_ids=input_ids, **generate_kwargs(cfg, tokenizer))
    assert unmasked[:, input_ids.shape[1] :].tolist() != alone


def test_static_cache_matches_dynamic_cache(policy) -> None:
    model, tokenizer = policy
    cfg = SamplingConfig(temperature=0, max_new_tokens=8)
    prompts = [encode_prompt(tokenizer, as_messages(p)) for p in PROMPTS]
    dynamic = sample_batch(model, tokenizer, prompts, cfg, seed=0)
    static = sample_batch(model, tokenizer, prompts, replace(cfg, cache_implementation="static"), seed=0)
    assert static == dynamic


def test_greedy_completions_follow_their_prompts(policy) -> None:
    model, tokenizer = policy
    cfg = SamplingConfig(k=4, temperature=0, max_new_tokens=6, dedupe_retries=0, batch_size=5)
    together = generate_completions(model, tokenizer, PROMPTS, cfg).completions
    for prompt, row in zip(PROMPTS, together, strict=True):
        alone = generate_completions(model, tokenizer, [prompt], cfg).completions[0]
        assert [c.text for c in row] == [c.text for c in alone]
