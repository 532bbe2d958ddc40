"""SFT: answer-only targets, packing that the attention honours, per-token loss whatever the micro-batching, exact
resume, and a tiny model that learns its demonstrations."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from trainer.sft.data import SftExample, collate_packed, collate_padded, encode_example
from trainer.sft.forward import AnswerLoss
from trainer.sft.train import SftConfig, train_sft, validation_loss


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.common.tiny import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("sft") / "tiny", seed=0)
    return path, AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def _encode_pair(tokenizer):
    def encode(messages, answer):
        prompt = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": answer}], tokenize=False, add_generation_prompt=False
        )
        assert full.startswith(prompt)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return p, tokenizer(full, add_special_tokens=False)["input_ids"][len(p) :]

    return encode


def _examples(tokenizer, n: int, max_length: int = 64) -> list[SftExample]:
    encode = _encode_pair(tokenizer)
    out = []
    for i in range(n):
        messages = [{"role": "user", "content": f"Say the word number {i}."}]
        if i % 3 == 0:  # some multi-turn conversations
            messages = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there."},
                {"role": "assistant", "content": "Hi."},
                *messages,
            ]
        example = encode_example(encode, messages, f"word {i % 4} rank the answers", max_length=max_length)
        assert example is not None
        out.append(example)
    return out


def test_targets_are_exactly_the_answer_tokens():
    a, b = SftExample((5, 6, 7, 8, 9), n_prompt=3), SftExample((1, 2, 3), n_prompt=1)
    packed = collate_packed([a, b])
    torch.testing.assert_close(packed.input_ids, torch.tensor([[5, 6, 7, 8, 9, 1, 2, 3]]))
    torch.testing.assert_close(packed.position_ids, torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]]))
    # position t predicts token t + 1: answer tokens 8, 9 (a) and 2, 3 (b); never b's first token from a's last
    torch.testing.assert_close(packed.targets, torch.tensor([2, 3, 5, 6]))
    torch.testing.assert_close(packed.labels, torch.tensor([8, 9, 2, 3]))
    padded = collate_padded([a, b], pad_id=0)
    torch.testing.assert_close(padded.input_ids, torch.tensor([[5, 6, 7, 8, 9], [1, 2, 3, 0, 0]]))
    torch.testing.assert_close(padded.attention_mask, torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]))
    torch.testing.assert_close(padded.targets, torch.tensor([2, 3, 5, 6]))  # row 1 starts at 5
    torch.testing.assert_close(padded.labels, torch.tensor([8, 9, 2, 3]))
    assert (packed.n_tokens, padded.n_tokens) == (8, 10)


def test_truncation_keeps_the_answer_and_the_latest_turns():
    def encode(messages, answer):
        return list(range(100, 110)), [1, 2, 3]

    cut = encode_example(encode, [], "", max_length=6)
    assert cut == SftExample((107, 108, 109, 1, 2, 3), n_prompt=3)
    long_answer = encode_example(lambda m, a: ([9, 9], list(range(10))), [], "", max_length=4)
    assert long_answer == SftExample((9, 0, 1, 2), n_prompt=1)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_rows_give_each_sequence_exactly_its_own_loss(tiny, attn):
    """The attention implementation honours restarting positions: no sequence attends to another in a packed row,
    so the packed loss equals the sum of the sequences' losses computed alone and with padding."""
    from transformers import AutoModelForCausalLM

    path, tokenizer, _ = tiny
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn).eval()
    examples = _examples(tokenizer, 5)
    loss = AnswerLoss(model)

    def run(batch):
        return loss(batch)

    alone = sum(run(collate_packed([e])) for e in examples)
    torch.testing.assert_close(run(collate_packed(examples)), alone, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        run(collate_padded(examples, pad_id=tokenizer.pad_token_id)), alone, rtol=1e-4, atol=1e-4
    )


def _train(model, examples, cfg, **kw):
    return train_sft(cfg, model, examples, pad_token_id=0, **kw)


def test_the_step_is_the_mean_over_answer_tokens_whatever_the_micro_batching(tiny):
    _, tokenizer, base = tiny
    examples = _examples(tokenizer, 8)
    one, two = copy.deepcopy(base), copy.deepcopy(base)
    _train(one, examples, SftConfig(batch_size=4, grad_accum_steps=1, epochs=1, warmup_ratio=0.0, learning_rate=1e-3))
    _train(two, examples, SftConfig(batch_size=2, grad_accum_steps=2, epochs=1, warmup_ratio=0.0, learning_rate=1e-3))
    for (name, p), q in zip(one.named_parameters(), two.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=2e-4, atol=2e-5, msg=name)


def test_a_stopped_run_resumes_to_the_same_weights(tiny, tmp_path: Path):
    _, tokenizer, base = tiny
    examples = _examples(tokenizer, 12)
    cfg = SftConfig(batch_size=2, epochs=2, learning_rate=1e-3)
    straight = copy.deepcopy(base)
    _train(straight, examples, cfg)
    resumed = copy.deepcopy(base)
    calls = iter(range(100))
    first = _train(resumed, examples, cfg, checkpoint_dir=tmp_path / "ck", should_stop=lambda: next(calls) == 4)
    assert first.stopped and first.steps == 4
    fresh = copy.deepcopy(base)  # a new process: the weights come from the checkpoint
    second = _train(fresh, examples, cfg, checkpoint_dir=tmp_path / "ck")
    assert not second.stopped and second.steps == second.total_steps == 12
    for p, q in zip(straight.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_the_tiny_model_learns_its_demonstrations(tiny):
    _, tokenizer, base = tiny
    model = copy.deepcopy(base)
    examples = _examples(tokenizer, 16)
    before = validation_loss(model, examples, pad_token_id=0)["val/loss"]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen: list[dict[str, float]] = []
    result = _train(
        model, examples, SftConfig(batch_size=4, epochs=8, learning_rate=3e-3), on_metrics=lambda s, m: seen.append(m)
    )
    after = validation_loss(model, examples, pad_token_id=0)
    assert result.steps == 32 and len(seen) == 32
    assert after["val/loss"] < 0.5 * before and after["val/perplexity"] == pytest.approx(
        torch.tensor(after["val/loss"]).exp().item()
    )
    assert seen[-1]["loss/sft"] < seen[0]["loss/sft"] and seen[0]["perf/tokens_per_s"] > 0
    assert all(not torch.equal(start[n], p) for n, p in model.named_parameters()), "every parameter trains"
