"""Reward evaluation metrics on hand-worked examples."""

import math

import numpy as np
import pytest

from trainer.reward.metrics import (
    ScoredRanking,
    accuracy_by_k,
    calibration,
    calibration_error,
    evaluate_rankings,
    log_loss,
    pair_margins,
    pairwise_accuracy,
)

# Ranking A (K=4): buckets [0, 1, 1, -1], rewards [2, 1, 3, 9]: pairs (0>1): +1, (0>2): -1 -> 1 of 2 right.
A = ScoredRanking([2.0, 1.0, 3.0, 9.0], [0, 1, 1, -1], labeler="ann")
# Ranking B (K=4): buckets [0, 1, 2, 3], rewards [4, 3, 3, 0]: margins 1, 1, 4, 0, 3, 3 -> 5.5 of 6 right.
B = ScoredRanking([4.0, 3.0, 3.0, 0.0], [0, 1, 2, 3], labeler="bob")


def test_pair_margins() -> None:
    assert sorted(pair_margins(A).tolist()) == [-1.0, 1.0]
    assert sorted(pair_margins(B).tolist()) == [0.0, 1.0, 1.0, 3.0, 3.0, 4.0]
    with pytest.raises(ValueError):
        pair_margins(ScoredRanking([1.0], [0, 1]))


def test_accuracy_and_log_loss() -> None:
    margins = np.array([1.0, -1.0, 0.0])
    assert pairwise_accuracy(margins) == pytest.approx(0.5)
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1)) + math.log(2)) / 3
    assert log_loss(margins) == pytest.approx(expected)
    assert math.isnan(pairwise_accuracy(np.zeros(0))) and math.isnan(log_loss(np.zeros(0)))


def test_accuracy_by_k_counts_only_placed_completions() -> None:
    assert accuracy_by_k([A, B]) == {3: 0.5, 4: pytest.approx(5.5 / 6)}


def test_calibration_bins() -> None:
    margins = np.array([0.1, -0.1, 3.0, 4.0, -5.0])
    bins = calibration(margins, n_bins=2)  # edges 0.5, 0.75, 1.0
    assert [(b.lower, b.upper, b.count) for b in bins] == [(0.5, 0.75, 2), (0.75, 1.0, 3)]
    assert bins[0].predicted == pytest.approx(1 / (1 + math.exp(-0.1)))
    assert bins[0].observed == 0.5 and bins[1].observed == pytest.approx(2 / 3)
    ece = (2 * abs(bins[0].predicted - 0.5) + 3 * abs(bins[1].predicted - 2 / 3)) / 5
    assert calibration_error(bins) == pytest.approx(ece)


def test_evaluate_rankings_with_held_out_labelers() -> None:
    result = evaluate_rankings([A, B], held_out_labelers={"bob"})
    assert result.pairs == 8 and result.accuracy == pytest.approx(6.5 / 8)
    assert result.held_out_accuracy == pytest.approx(5.5 / 6)
    metrics = result.metrics()
    assert metrics["val/accuracy"] == pytest.approx(6.5 / 8) and metrics["val/accuracy_k3"] == 0.5
    assert metrics["val/held_out_labeler_accuracy"] == pytest.approx(5.5 / 6)
    assert evaluate_rankings([A]).held_out_accuracy is None
