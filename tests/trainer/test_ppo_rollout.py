"""Rollouts: EOS truncation, packing, chunk seeds that let processes split a batch, scoring passes."""

import pytest
import torch
from torch.testing import assert_close

from tests.trainer.ppo_helpers import PROMPTS, TOKENIZER, tiny_policy, tiny_value_model
from tests.trainer.reward_helpers import one_thread
from trainer.common.chat import as_messages
from trainer.common.generation import encode_prompts, pack_episodes, truncate_after_eos
from trainer.ppo.config import PPOConfig
from trainer.ppo.rollout import RewardInput, Rollout, reward_model_fn, sample_rollout, score_rollout
from trainer.ppo.state import AdaptiveKLController, RunningMoments
from trainer.ppo.train import prompt_indices
from trainer.ppo.update import shape_rewards

pytestmark = pytest.mark.usefixtures(one_thread.__name__)
EOS, PAD = 2, 2


def length_reward(batch: RewardInput) -> torch.Tensor:
    return batch.response_mask.sum(-1).float()


def test_truncate_after_eos_keeps_the_eos_and_masks_the_rest() -> None:
    ids = torch.tensor([[5, 9, 6, 9, 7], [5, 6, 7, 8, 4], [9, 1, 1, 1, 1]])
    out, mask, finished = truncate_after_eos(ids, [9], pad_token_id=0)
    assert out.tolist() == [[5, 9, 0, 0, 0], [5, 6, 7, 8, 4], [9, 0, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert finished.tolist() == [True, False, True]


def test_pack_episodes_drops_columns_that_are_padding_everywhere() -> None:
    rollout = Rollout(
        query_ids=torch.tensor([[0, 0, 3, 4], [0, 0, 0, 5]]),
        query_mask=torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1]]),
        response_ids=torch.tensor([[6, 2, 0], [7, 0, 0]]),
        response_mask=torch.tensor([[1, 1, 0], [1, 0, 0]]),
        finished=torch.tensor([True, False]),
        scores=torch.zeros(2),
    )
    ids, mask, start = pack_episodes(rollout)
    assert ids.tolist() == [[3, 4, 6, 2], [0, 5, 7, 0]] and start == 2
    assert mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 0]]


def _rollout(policy, prompts, first_chunk: int = 0) -> Rollout:
    ids = encode_prompts(TOKENIZER, prompts, 64)
    rollout, _ = sample_rollout(
        policy, TOKENIZER, ids, [as_messages(p) for p in prompts], length_reward, max_new_tokens=5, temperature=1.0,
        eos_ids=[EOS], generation_batch_size=2, seed=3, step=7, first_chunk=first_chunk,
    )  # fmt: skip
    return rollout


def test_processes_splitting_a_batch_sample_what_one_process_would() -> None:
    policy = tiny_policy()
    whole = _rollout(policy, PROMPTS)
    halves = [_rollout(policy, PROMPTS[:4]), _rollout(policy, PROMPTS[4:], first_chunk=2)]
    width = whole.query_ids.shape[1]
    for half, rows in zip(halves, (slice(0, 4), slice(4, 8)), strict=True):
        assert half.response_ids.tolist() == whole.response_ids[rows].tolist()
        assert_close(half.scores, whole.scores[rows])
        assert half.query_ids.tolist() == whole.query_ids[rows, width - half.query_ids.shape[1] :].tolist()
    assert whole.scores.tolist() == whole.response_mask.sum(-1).float().tolist()


def test_scoring_and_reward_shaping() -> None:
    policy, value_model = tiny_policy(), tiny_value_model()
    rollout = _rollout(policy, PROMPTS)
    chunks = list(torch.arange(8).split(3))
    score_rollout(rollout, policy, tiny_policy(), value_model, chunks, temperature=1.0, chunk_tokens=4)
    assert rollout.logprobs is not None and rollout.ref_logprobs is not None and rollout.entropy is not None
    assert torch.equal(rollout.logprobs, rollout.ref_logprobs)
    assert (rollout.logprobs[rollout.response_mask.bool()] < 0).all()
    assert (rollout.logprobs[~rollout.response_mask.bool()] == 0).all()
    rollout.finished = torch.arange(8) > 0  # only the first response is cut before EOS
    cfg = PPOConfig(no_eos_penalty=10.0, whiten_scores=False, whiten_advantages=False, kl_coef=0.5, lam=1.0)
    batch = shape_rewards(rollout, cfg, 0.5, RunningMoments())
    assert batch.metrics["objective/kl"] == 0.0 and batch.metrics["episode/eos_rate"] == 7 / 8
    # gamma 1, lambda 1, KL 0: the return of every token is the (penalised) score
    first_return = batch.returns[:, 0]
    expected = rollout.scores - 10.0 * (~rollout.finished)
    assert_close(first_return, expected)


def test_prompt_order_covers_every_prompt_once_per_pass() -> None:
    order = [i for step in range(4) for i in prompt_indices(step, 6, 3, seed=1)]  # 12 episodes = 2 passes
    assert sorted(order[:6]) == list(range(6)) and sorted(order[6:]) == list(range(6)) and order[:6] != order[6:]


def test_running_moments_and_adaptive_kl() -> None:
    moments = RunningMoments()
    data = torch.randn(100) * 3 + 2
    for part in data.split(7):
        moments.update(part)
    assert moments.mean == pytest.approx(float(data.mean()), rel=1e-6)
    assert moments.std == pytest.approx(float(data.std()), rel=1e-5)
    restored = RunningMoments()
    restored.load_state_dict(moments.state_dict())
    assert restored.whiten(torch.tensor([moments.mean])).item() == pytest.approx(0.0, abs=1e-6)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl.update(12.0, n_steps=10)  # error clipped to 0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    ctl.update(3.0, n_steps=10)  # 3/6 - 1 = -0.5 -> -0.2
    assert ctl.value == pytest.approx(0.1 * 1.02 * 0.98)


def test_reward_model_fn_by_tokens_and_by_text() -> None:
    from trainer.common.reward_model import encode_completion, rewards, score_sequences

    policy, reward_model = tiny_policy(), tiny_value_model(seed=5)
    reward_model.eval()
    rollout = _rollout(policy, PROMPTS[:3])
    batch = RewardInput(
        [as_messages(p) for p in PROMPTS[:3]], ["a", "b c", ""], rollout.query_ids, rollout.query_mask,
        rollout.response_ids, rollout.response_mask, rollout.finished,
    )  # fmt: skip
    by_tokens = reward_model_fn(reward_model, batch_size=2)(batch)
    for row in range(3):
        ids = torch.cat(
            [
                rollout.query_ids[row][rollout.query_mask[row].bool()],
                rollout.response_ids[row][rollout.response_mask[row].bool()],
            ]
        )
        alone = rewards(reward_model, ids[None], torch.ones(1, len(ids), dtype=torch.long))
        assert by_tokens[row].item() == pytest.approx(alone.item(), abs=1e-5)
    by_text = reward_model_fn(reward_model, TOKENIZER, max_length=64)(batch)
    pairs = zip(PROMPTS[:3], ["a", "b c", ""], strict=True)
    sequences = [encode_completion(TOKENIZER, as_messages(p), r, 64) for p, r in pairs]
    assert_close(by_text, score_sequences(reward_model, sequences, pad_token_id=PAD))
