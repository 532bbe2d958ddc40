"""The ranking loss against a brute-force pair loop, and the reward gather."""

import math
import random

import pytest
import torch

from trainer.reward.losses import gather_group_rewards, ranking_loss


def brute_force(rewards: list[list[float]], ranks: list[list[int]], weights: list[float]) -> tuple[float, float, int]:
    """Loop over every pair of every group: (weighted mean of per-group mean pair loss, accuracy, pairs)."""
    total, weight_sum, correct, pairs = 0.0, 0.0, 0.0, 0
    for r, b, w in zip(rewards, ranks, weights, strict=True):
        losses = []
        for i in range(len(r)):
            for j in range(len(r)):
                if b[i] >= 0 and b[j] >= 0 and b[i] < b[j]:
                    losses.append(-math.log(1 / (1 + math.exp(-(r[i] - r[j])))))
                    correct += 1.0 if r[i] > r[j] else 0.5 if r[i] == r[j] else 0.0
        pairs += len(losses)
        if losses:
            total += w * sum(losses) / len(losses)
            weight_sum += w
    return total / weight_sum, correct / pairs, pairs


def random_batch(rng: random.Random, groups: int) -> tuple[list[list[float]], list[list[int]], list[float]]:
    width = 9
    rewards, ranks, weights = [], [], []
    for _ in range(groups):
        k = rng.randint(4, 9)
        buckets = [rng.randint(0, rng.randint(1, k - 1)) for _ in range(k)]  # ties are common
        if rng.random() < 0.3:
            buckets[rng.randrange(k)] = -1  # a completion left out of this ranking
        values = [round(rng.gauss(0, 2), 1) for _ in range(k)]  # rounding makes equal rewards happen
        rewards.append(values + [0.0] * (width - k))
        ranks.append(buckets + [-1] * (width - k))
        weights.append(rng.uniform(0.2, 2.0))
    return rewards, ranks, weights


@pytest.mark.parametrize("seed", range(20))
def test_ranking_loss_equals_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    rewards, ranks, weights = random_batch(rng, groups=rng.randint(1, 6))
    use_weights = seed % 2 == 0
    expected_loss, expected_acc, expected_pairs = brute_force(
        rewards, ranks, weights if use_weights else [1.0] * len(weights)
    )
    r = torch.tensor(rewards, dtype=torch.float64)
    w = torch.tensor(weights, dtype=torch.float64) if use_weights else None
    loss, stats = ranking_loss(r, torch.tensor(ranks), w)
    torch.testing.assert_close(loss, torch.tensor(expected_loss, dtype=torch.float64))
    assert float(stats["rm/accuracy"]) == pytest.approx(expected_acc)
    assert int(stats["rm/pairs"]) == expected_pairs


def test_group_without_strict_pairs_is_ignored() -> None:
    rewards = torch.tensor([[1.0, 0.0, 5.0, 0.0], [3.0, 3.0, 3.0, 3.0]])
    ranks = torch.tensor([[0, 1, -1, -1], [0, 0, 0, -1]])  # second group: all tied
    loss, stats = ranking_loss(rewards, ranks, torch.tensor([1.0, 100.0]))
    torch.testing.assert_close(loss, -torch.nn.functional.logsigmoid(torch.tensor(1.0)))
    assert float(stats["rm/pairs"]) == 1 and float(stats["rm/accuracy"]) == 1.0


def test_no_strict_pairs_gives_zero_loss_with_graph() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    loss, stats = ranking_loss(rewards, torch.tensor([[0, 0, -1, -1]]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(stats["rm/pairs"]) == 0
    assert rewards.grad is not None and torch.all(rewards.grad == 0)


def test_gradient_pushes_better_up() -> None:
    rewards = torch.zeros(1, 4, requires_grad=True)
    loss, _ = ranking_loss(rewards, torch.tensor([[0, 1, 2, 3]]))
    loss.backward()
    assert rewards.grad is not None
    assert torch.all(rewards.grad[0, :-1] < rewards.grad[0, 1:])  # best gets the most negative gradient
    torch.testing.assert_close(rewards.grad.sum(), torch.tensor(0.0))


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        ranking_loss(torch.zeros(2, 4), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError):
        ranking_loss(torch.zeros(2, 4), torch.zeros(2, 4, dtype=torch.long), torch.ones(3))
    with pytest.raises(ValueError):
        gather_group_rewards(torch.zeros(3), torch.tensor([[0, 3]]))


def test_gather_group_rewards() -> None:
    rewards = torch.tensor([10.0, 11.0, 12.0, 13.0, 14.0])
    index = torch.tensor([[0, 1, 2, -1], [2, 1, 0, 4], [3, -1, -1, -1]])
    expected = torch.tensor([[10.0, 11.0, 12.0, 0.0], [12.0, 11.0, 10.0, 14.0], [13.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(gather_group_rewards(rewards, index), expected)


def test_shared_rows_receive_gradient_from_every_ranking() -> None:
    rewards = torch.zeros(4, requires_grad=True)
    index = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])  # two labelers ranked the same four completions
    ranks = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])  # in opposite orders
    loss, _ = ranking_loss(gather_group_rewards(rewards, index), ranks)
    loss.backward()
    assert rewards.grad is not None
    torch.testing.assert_close(rewards.grad, torch.zeros(4))
