"""PPO math against hand-worked values."""

import math

import pytest
import torch
from torch.testing import assert_close

from trainer.common.masked import masked_mean, masked_var, masked_whiten
from trainer.ppo.losses import (
    entropy_from_logits,
    explained_variance,
    gae,
    kl_penalty,
    kl_shaped_rewards,
    policy_loss,
    value_loss,
)

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_masked_mean_var_whiten() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    assert masked_mean(values, MASK).item() == pytest.approx(3.0)
    assert masked_var(values, MASK).item() == pytest.approx(2.5)  # (4+1+0+1+4)/4
    assert masked_var(values, MASK, unbiased=False).item() == pytest.approx(2.0)
    whitened = masked_whiten(values, MASK)
    expected = (torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 3.0]]) - 3.0) / math.sqrt(2.5) * MASK
    assert_close(whitened, expected, rtol=1e-5, atol=1e-6)
    assert_close(masked_whiten(values, MASK, shift_mean=False), (expected + 3.0) * MASK)


@pytest.mark.parametrize("mask", [torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [0, 0, 0]])])
def test_empty_masks_raise(mask: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="mask selects"):
        masked_var(torch.ones(2, 3), mask)
    if mask.sum() == 0:
        with pytest.raises(ValueError, match="mask selects"):
            masked_mean(torch.ones(2, 3), mask)


def test_kl_shaped_rewards_put_the_score_on_the_last_token() -> None:
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -7.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-2.0, -1.0, -3.0]])
    rewards, kl = kl_shaped_rewards(logprobs, ref, torch.tensor([10.0, 20.0]), MASK, kl_coef=0.1)
    assert_close(kl, torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.0, 0.0]]))
    assert_close(rewards, torch.tensor([[-0.05, 0.1, 10.0], [-0.1, 20.0, 0.0]]))
    k3 = kl_penalty(torch.tensor([0.0]), torch.tensor([math.log(2.0)]), "k3")
    assert k3.item() == pytest.approx((2 - 1) - math.log(2))  # r = pi_ref / pi = 2


def test_gae_matches_hand_computation() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 9.0]])
    values = torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.5, 9.0]])
    advantages, returns = gae(rewards, values, MASK, gamma=1.0, lam=0.5)
    # row 0: d2 = 1 - .3 = .7; d1 = 0 + .3 - .2 = .1; d0 = 0 + .2 - .1 = .1
    #        A2 = .7; A1 = .1 + .5*.7 = .45; A0 = .1 + .5*.45 = .325
    # row 1 (2 tokens): d1 = 2 - 1.5 = .5; d0 = .5 + 1.5 - 1 = 1; A1 = .5; A0 = 1 + .25 = 1.25
    assert_close(advantages, torch.tensor([[0.325, 0.45, 0.7], [1.25, 0.5, 0.0]]))
    assert_close(returns, torch.tensor([[0.425, 0.65, 1.0], [2.25, 2.0, 0.0]]))
    discounted, _ = gae(rewards, values, MASK, gamma=0.9, lam=1.0)
    # row 1: A1 = 2 - 1.5 = .5; A0 = .5 + .9 * 1.5 - 1 + .9 * .5 = 1.3
    assert_close(discounted[1], torch.tensor([1.3, 0.5, 0.0]))


def test_policy_loss_clips_and_reports() -> None:
    old = torch.zeros(2, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.0], [1.1, 0.7, 3.0]]))
    advantages = torch.tensor([[1.0, 1.0, 2.0], [-1.0, -1.0, 5.0]])
    loss, stats = policy_loss(new, old, advantages, MASK, clip=0.2)
    # per token max(-A r, -A clip(r)): [-1.2, -0.5, -2.0], [1.1, 0.8, masked]
    assert loss.item() == pytest.approx((-1.2 - 0.5 - 2.0 + 1.1 + 0.8) / 5)
    assert stats["policy/clipfrac"].item() == pytest.approx(2 / 5)  # tokens 0 and 4 use the clipped term
    ratios = torch.tensor([1.5, 0.5, 1.0, 1.1, 0.7])
    assert stats["policy/approx_kl"].item() == pytest.approx(float(((ratios - 1) - ratios.log()).mean()), rel=1e-5)
    assert stats["policy/ratio_max"].item() == pytest.approx(1.5)


def test_policy_loss_ratio_one_is_minus_mean_advantage() -> None:
    advantages = torch.randn(2, 3)
    logprobs = torch.randn(2, 3, requires_grad=True)
    loss, stats = policy_loss(logprobs, logprobs.detach(), advantages, MASK, clip=0.2)
    assert loss.item() == pytest.approx(-float((advantages * MASK).sum() / 5), rel=1e-5)
    assert stats["policy/ratio"].item() == 1.0 and stats["policy/clipfrac"].item() == 0.0
    loss.backward()
    assert_close(logprobs.grad, -advantages * MASK / 5)


def test_value_loss_clips_around_old_values() -> None:
    old = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    new = torch.tensor([[0.5, -0.1, 0.0], [1.0, 2.0, 5.0]])
    returns = torch.tensor([[1.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    loss, stats = value_loss(new, old, returns, MASK, clip=0.2)
    # clipped values: [.2, -.1, 0], [1, 1.2, masked]
    # unclipped sq: [.25, 1.21, 0], [1, 1]; clipped sq: [.64, 1.21, 0], [1, 3.24]; max: .64, 1.21, 0, 1, 3.24
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.21 + 0 + 1 + 3.24) / 5)
    assert stats["value/clipfrac"].item() == pytest.approx(2 / 5)


def test_explained_variance_and_entropy() -> None:
    returns = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    assert explained_variance(returns, returns, MASK).item() == pytest.approx(1.0)
    assert explained_variance(torch.zeros(2, 3) + 3.0, returns, MASK).item() == pytest.approx(0.0, abs=1e-6)
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, -1e9, -1e9, -1e9]]])
    assert_close(entropy_from_logits(logits, chunk_size=1), torch.tensor([[math.log(4), 0.0]]))
