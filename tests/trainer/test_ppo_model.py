"""Per-token log-probs and values: padding side, chunking, temperature, gradients."""

import pytest
import torch
from torch.testing import assert_close

from tests.trainer.ppo_helpers import TOKENIZER, tiny_policy, tiny_value_model
from tests.trainer.reward_helpers import one_thread
from trainer.common.logprobs import forward_logprobs, lm_loss
from trainer.ppo.model import PolicyAndValue, forward_values

pytestmark = pytest.mark.usefixtures(one_thread.__name__)
TEXTS = ["Hello there, how are you?", "Paris", "Rank the answers from best to worst please"]


def _pad(rows: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), TOKENIZER.pad_token_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, cols], mask[i, cols] = torch.tensor(row), 1
    return ids, mask


def test_left_and_right_padding_give_the_same_logprobs() -> None:
    model = tiny_policy()
    rows = [TOKENIZER(t)["input_ids"] for t in TEXTS]
    results = {}
    for side in ("left", "right"):
        ids, mask = _pad(rows, side)
        logprobs, _ = forward_logprobs(model, ids, mask, 1)  # (B, T-1): every token after the first column
        real = mask[:, 1:].bool() & mask[:, :-1].bool()  # predicted token and its context both real
        results[side] = [logprobs[i][real[i]] for i in range(len(rows))]
    for i, row in enumerate(rows):
        alone, _ = forward_logprobs(model, torch.tensor([row]), torch.ones(1, len(row), dtype=torch.long), 1)
        assert_close(results["left"][i], alone[0], rtol=1e-5, atol=1e-5)
        assert_close(results["right"][i], alone[0], rtol=1e-5, atol=1e-5)


def test_logprobs_match_full_log_softmax_with_temperature_chunked() -> None:
    model = tiny_policy()
    ids, mask = _pad([TOKENIZER(t)["input_ids"] for t in TEXTS], "left")
    start = 4
    logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    expected = torch.log_softmax(logits[:, start - 1 : -1] / 0.7, -1).gather(-1, ids[:, start:, None]).squeeze(-1)
    for chunk in (1, 5, 10_000):
        got, entropy = forward_logprobs(model, ids, mask, start, temperature=0.7, chunk_tokens=chunk, with_entropy=True)
        assert_close(got, expected, rtol=1e-5, atol=1e-5)
        probs = torch.softmax(logits[:, start - 1 : -1] / 0.7, -1)
        assert entropy is not None
        assert_close(entropy, -(probs * probs.log()).sum(-1), rtol=1e-4, atol=1e-5)
        with torch.no_grad():  # the scoring pass: log-probs and entropy from one LM-head pass
            scored, scored_entropy = forward_logprobs(
                model, ids, mask, start, temperature=0.7, chunk_tokens=chunk, with_entropy=True
            )
        assert torch.equal(scored, got.detach())  # bit for bit: the first PPO ratio is exactly 1
        assert scored_entropy is not None and torch.equal(scored_entropy, entropy)


def test_chunked_gradients_match_unchunked() -> None:
    grads = []
    for chunk in (3, 10_000):
        model = tiny_policy()
        ids, mask = _pad([TOKENIZER(t)["input_ids"] for t in TEXTS], "left")
        logprobs, _ = forward_logprobs(model, ids, mask, 2, chunk_tokens=chunk)
        (logprobs * mask[:, 2:]).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_values_and_joint_forward() -> None:
    policy, value_model = tiny_policy(), tiny_value_model()
    ids, mask = _pad([TOKENIZER(t)["input_ids"] for t in TEXTS], "left")
    values = forward_values(value_model, ids, mask, 3)
    assert values.shape == (3, ids.shape[1] - 3) and values.dtype == torch.float32
    joint = PolicyAndValue(policy, value_model, chunk_tokens=7)
    logprobs, joint_values, ptx = joint(ids, mask, 3, 1.0)
    assert_close(joint_values, values) and ptx.item() == 0.0
    _, _, ptx = joint(ids, mask, 3, 1.0, ptx_ids=ids, ptx_mask=mask)
    assert ptx.item() == pytest.approx(lm_loss(policy, ids, mask, 7).item())
    assert ptx.item() > 0 and logprobs.shape == values.shape
