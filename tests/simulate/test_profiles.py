"""Labeler profiles: Plackett-Luce sampling matches its pairwise law, biases do what they say."""

import math

import numpy as np
import pytest

from app import metrics
from app.simulate import profiles as pr
from app.simulate.gold import resolve_gold

GOLD = resolve_gold("sentiment")


def test_plackett_luce_pair_marginals_are_sigmoid_of_the_standardised_gap():
    scores = np.array([0.9, 0.3, -0.2, -0.8])
    z = pr.standardize(scores)
    rng = np.random.default_rng(0)
    noise = pr.gumbel_noise(rng, (20_000, 4))
    ranks = pr.ranks_from_utilities(pr.perceive(pr.PROFILES["noisy"], scores, np.ones(4), noise, 0))
    for i, j in [(0, 1), (0, 3), (2, 3)]:
        observed = (ranks[:, i] < ranks[:, j]).mean()
        assert observed == pytest.approx(1 / (1 + math.exp(-(z[i] - z[j]) / 1.0)), abs=0.01)


def test_expected_agreement_exact_matches_monte_carlo_and_random_is_one_half():
    rng = np.random.default_rng(1)
    tasks = [pr.TaskScores(rng.normal(size=5), rng.integers(10, 99, size=5), 0) for _ in range(30)]
    for name in ("careful", "noisy", "random"):
        profile = pr.PROFILES[name]
        exact = pr.pl_expected_agreement(tasks, profile.temperature)
        mc = pr.simulate_expectation(profile, GOLD, tasks, rng=rng, draws=2000)
        assert mc.agreement == pytest.approx(exact, abs=0.005), name
    assert pr.pl_expected_agreement(tasks, math.inf) == 0.5
    careful, noisy = (pr.pl_expected_agreement(tasks, pr.PROFILES[n].temperature) for n in ("careful", "noisy"))
    assert careful > 0.85 > noisy > 0.6


def test_gold_pairs_that_tie_are_not_counted():
    tasks = [pr.TaskScores(np.array([1.0, 1.0, 0.0]), np.ones(3), 0)]
    # two strict pairs, each with gap (1 - 0) / std
    gap = 1 / np.std([1.0, 1.0, 0.0])
    assert pr.pl_expected_agreement(tasks, 0.5) == pytest.approx(1 / (1 + math.exp(-gap / 0.5)))


def test_first_shown_is_always_best_and_tie_happy_ties():
    rng = np.random.default_rng(2)
    scores, lengths = np.array([-0.5, 0.1, 0.4, 0.8]), np.array([10, 20, 30, 40])
    for first in range(4):
        j = pr.judge(pr.PROFILES["first-shown"], GOLD, scores=scores, lengths=lengths, first_shown=first, rng=rng)
        assert j.ranks[first] == 0 and (np.delete(j.ranks, first) > 0).all()
    ties = [
        pr.judge(pr.PROFILES["tie-happy"], GOLD, scores=scores, lengths=lengths, first_shown=0, rng=rng)
        for _ in range(50)
    ]
    assert np.mean([len(set(j.ranks.tolist())) < 4 for j in ties]) > 0.5


def test_longest_ranks_by_length_and_ratings_follow_the_perceived_gold():
    rng = np.random.default_rng(3)
    scores, lengths = np.array([0.9, 0.5, 0.0, -0.9]), np.array([10, 200, 400, 800])
    j = pr.judge(pr.PROFILES["longest"], GOLD, scores=scores, lengths=lengths, first_shown=0, rng=rng)
    assert j.ranks.tolist() == [3, 2, 1, 0]
    research = pr.researcher_judgement(GOLD, scores)
    assert research.ranks.tolist() == [0, 1, 2, 3]
    assert research.ratings == [7, 6, 4, 1] and research.flags == [[], [], [], ["fails_instruction"]]


def test_ranks_and_buckets_round_trip_with_ties():
    ranks = pr.ranks_from_utilities(np.array([[0.0, 2.0, 1.9, -3.0]]), tie_margin=0.5)[0]
    assert ranks.tolist() == [1, 0, 0, 2]
    assert pr.buckets(ranks.tolist(), [11, 12, 13, 14]) == [[12, 13], [11], [14]]
    assert metrics.buckets_to_ranks(pr.buckets(ranks.tolist(), [11, 12, 13, 14]), [11, 12, 13, 14]).tolist() == [
        1,
        0,
        0,
        2,
    ]
    assert pr.gold_ranks(np.array([0.2, 0.5, 0.2])).tolist() == [1, 0, 1]


def test_parse_mix_reads_counts_and_refuses_unknown_profiles():
    mix = pr.parse_mix("careful:6, noisy:3,random")
    assert [(p.name, n) for p, n in mix] == [("careful", 6), ("noisy", 3), ("random", 1)]
    with pytest.raises(ValueError, match="unknown labeler profile 'sloppy'"):
        pr.parse_mix("sloppy:2")
    with pytest.raises(ValueError, match="whole number"):
        pr.parse_mix("careful:x")


def test_ties_count_half_in_the_design_definition():
    from app.simulate.driver import RankingRecord
    from app.simulate.report import pooled_agreement, tied_share

    scores = np.array([3.0, 2.0, 1.0])  # gold: 0 > 1 > 2
    tied_top = RankingRecord("u", "p", 1, [1, 2, 3], scores, np.ones(3), 0, np.array([0, 0, 1]), [[], [], []])
    # pairs (0,1) tied -> 0.5, (0,2) right -> 1, (1,2) right -> 1
    assert pooled_agreement([tied_top]) == (pytest.approx(2.5 / 3), 3)
    assert tied_share([tied_top]) == pytest.approx(1 / 3)


def test_tying_costs_the_tie_happy_profile_against_the_same_temperature_without_ties():
    rng = np.random.default_rng(7)
    tasks = [pr.TaskScores(rng.normal(size=6), np.ones(6), 0) for _ in range(40)]
    tie_happy = pr.PROFILES["tie-happy"]
    plain = pr.Profile("plain", tie_happy.temperature, "none")
    with_ties = pr.simulate_expectation(tie_happy, GOLD, tasks, rng=rng).agreement
    without = pr.pl_expected_agreement(tasks, plain.temperature)
    assert with_ties is not None and without is not None and with_ties < without
