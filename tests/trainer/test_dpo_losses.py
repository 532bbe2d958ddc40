"""The DPO losses over K-way rankings against brute force (loops over pairs and over buckets) on small K, ties and
padding included, and the listwise loss against the pairwise one where they must agree."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from trainer.dpo.losses import dpo_loss


def _random_rankings(rng: random.Random, groups: int, k: int) -> torch.Tensor:
    rows = []
    for _ in range(groups):
        n = rng.randint(2, k)
        buckets = sorted(rng.randint(0, n - 1) for _ in range(n))
        dense = {b: i for i, b in enumerate(sorted(set(buckets)))}
        ranks = [dense[b] for b in buckets]
        rng.shuffle(ranks)
        rows.append(ranks + [-1] * (k - n))
    return torch.tensor(rows)


def _brute_pairwise(r: list[float], ranks: list[int], kind: str, beta: float) -> float | None:
    losses = []
    for i, ri in enumerate(ranks):
        for j, rj in enumerate(ranks):
            if ri >= 0 and rj >= 0 and ri < rj:
                d = r[i] - r[j]
                losses.append(-math.log(1 / (1 + math.exp(-d))) if kind == "dpo" else (d / beta - 1 / (2 * beta)) ** 2)
    return sum(losses) / len(losses) if losses else None


def _brute_listwise(r: list[float], ranks: list[int]) -> float | None:
    ranked = [(x, b) for x, b in zip(r, ranks, strict=True) if b >= 0]
    last = max(b for _, b in ranked)
    terms = []
    for x, b in ranked:
        if b == last:
            continue
        denominator = sum(math.exp(y) for y, c in ranked if c >= b)
        terms.append(x - math.log(denominator))
    return -sum(terms) / len(terms) if terms else None


def _brute(policy, reference, ranks, kind, beta) -> float:
    per_group = []
    for p, q, rk in zip(policy.tolist(), reference.tolist(), ranks.tolist(), strict=True):
        r = [beta * (a - b) for a, b in zip(p, q, strict=True)]
        value = _brute_listwise(r, rk) if kind == "listwise" else _brute_pairwise(r, rk, kind, beta)
        if value is not None:
            per_group.append(value)
    return sum(per_group) / len(per_group)


@pytest.mark.parametrize("kind", ["dpo", "ipo", "listwise"])
@pytest.mark.parametrize("seed", range(5))
def test_every_loss_equals_brute_force(kind, seed):
    rng = random.Random(seed)
    ranks = _random_rankings(rng, groups=6, k=rng.randint(2, 6))
    torch.manual_seed(seed)
    policy, reference = torch.randn(ranks.shape, dtype=torch.float64), torch.randn(ranks.shape, dtype=torch.float64)
    beta = rng.choice([0.05, 0.1, 0.5])
    if not any(len({b for b in row if b >= 0}) > 1 for row in ranks.tolist()):
        ranks[0, :2] = torch.tensor([0, 1])
    loss, stats = dpo_loss(policy, reference, ranks, beta=beta, loss_type=kind)
    assert loss.item() == pytest.approx(_brute(policy, reference, ranks, kind, beta), rel=1e-9)
    assert 0.0 <= stats["dpo/accuracy"].item() <= 1.0


def test_listwise_is_dpo_for_two_buckets_of_one():
    ranks = torch.tensor([[1, 0], [0, 1]])
    policy, reference = torch.randn(2, 2, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    dpo, _ = dpo_loss(policy, reference, ranks, beta=0.1, loss_type="dpo")
    listwise, _ = dpo_loss(policy, reference, ranks, beta=0.1, loss_type="listwise")
    torch.testing.assert_close(dpo, listwise)


def test_ties_and_padding_give_no_pair_and_no_gradient():
    ranks = torch.tensor([[0, 0, -1], [0, 1, 1]])
    policy = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    reference = torch.randn(2, 3, dtype=torch.float64)
    for kind in ("dpo", "ipo", "listwise"):
        policy.grad = None
        loss, stats = dpo_loss(policy, reference, ranks, beta=0.1, loss_type=kind)
        loss.backward()
        assert policy.grad[0].abs().sum() == 0, f"{kind}: an all-tied ranking trains nothing"
        assert policy.grad[1].abs().sum() > 0
        assert stats["dpo/pairs"].item() == 2  # 0 > 1 twice in the second ranking


def test_dpo_pushes_chosen_up_and_rejected_down():
    ranks = torch.tensor([[0, 1, 2]])
    policy = torch.zeros(1, 3, requires_grad=True)
    loss, stats = dpo_loss(policy, torch.zeros(1, 3), ranks, beta=0.1)
    loss.backward()
    assert policy.grad[0, 0] < 0 < policy.grad[0, 2]  # descent raises the best, lowers the worst
    assert loss.item() == pytest.approx(-F.logsigmoid(torch.tensor(0.0)).item())
    assert stats["dpo/accuracy"].item() == 0.5  # equal rewards count half


def test_float_noise_is_a_tie_and_a_real_preference_counts():
    ranks = torch.tensor([[0, 1, 2]])
    reference = torch.tensor([[-300.0, -310.0, -320.0]])
    noise = reference + torch.tensor([[3e-5, 0.0, -2e-5]])  # the same model, summed in another batch shape
    _, stats = dpo_loss(noise, reference, ranks, beta=0.5)
    assert stats["dpo/accuracy"].item() == 0.5
    learned = reference + torch.tensor([[0.01, 0.0, -0.01]])
    _, stats = dpo_loss(learned, reference, ranks, beta=0.5)
    assert stats["dpo/accuracy"].item() == 1.0


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"must all be \(G, K\)"):
        dpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.long), beta=0.1)
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[0, 1]]), beta=0.0)
    with pytest.raises(ValueError, match="unknown loss_type"):
        dpo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[0, 1]]), beta=0.1, loss_type="kto")  # type: ignore[arg-type]
