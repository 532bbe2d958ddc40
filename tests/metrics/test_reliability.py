import math

import numpy as np
import pytest

from app.metrics import (
    cohen_kappa,
    krippendorff_alpha,
    krippendorff_alpha_ordinal,
    percent_agreement,
    ranking_alpha,
)

nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12 units,
# missing values as nan. Unit 12 has a single value and is not pairable.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
)


# --- Krippendorff's alpha ---


def test_alpha_published_example() -> None:
    # The paper's coincidence matrix has marginals n_c = (9, 13, 10, 5, 3), n = 40, and 8 off-diagonal
    # coincidences, so nominal alpha = 1 - (n - 1) * 8 / (n^2 - sum n_c^2) = 1 - 39 * 8 / 1216 = 113/152.
    nominal = krippendorff_alpha(KRIPPENDORFF_2011, level="nominal")
    ordinal = krippendorff_alpha(KRIPPENDORFF_2011, level="ordinal")
    interval = krippendorff_alpha(KRIPPENDORFF_2011, level="interval")
    assert nominal == pytest.approx(113 / 152)
    assert round(nominal, 3) == 0.743  # published
    assert round(ordinal, 3) == 0.815  # published
    assert round(interval, 3) == 0.849  # published
    assert krippendorff_alpha_ordinal(KRIPPENDORFF_2011) == ordinal


def test_alpha_two_coders_hand_case() -> None:
    # Coders [1, 1, 2] and [1, 2, 2]. Coincidences: unit 1 gives o_11 = 2, unit 2 gives o_12 = o_21 = 1,
    # unit 3 gives o_22 = 2. n_c = (3, 3), n = 6. With two values every metric is a constant d2 on the
    # off-diagonal, so alpha = 1 - (6 - 1) * 2 / (2 * 3 * 3) = 4/9 at every level.
    matrix = np.array([[1, 1, 2], [1, 2, 2]])
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(matrix, level=level) == pytest.approx(4 / 9)


def test_alpha_perfect_and_degenerate() -> None:
    assert krippendorff_alpha(np.array([[1, 2, 3], [1, 2, 3]])) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha(np.array([[2, 2, 2], [2, 2, 2]])))  # one value: D_e = 0
    assert math.isnan(krippendorff_alpha(np.array([[1, nan], [nan, 2]])))  # no pairable unit
    assert math.isnan(krippendorff_alpha(np.full((3, 4), nan)))


def test_alpha_ignores_unpairable_units() -> None:
    base = np.array([[1, 2, 3, 1], [1, 3, 3, 2]], dtype=float)
    extra = np.column_stack([base, [4, nan]])  # a unit with one value adds no pair
    assert krippendorff_alpha(extra) == krippendorff_alpha(base)


def test_alpha_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="n_coders, n_units"):
        krippendorff_alpha(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="unknown level"):
        krippendorff_alpha(KRIPPENDORFF_2011, level="ratio")  # type: ignore[arg-type]


def test_ranking_alpha_hand_case() -> None:
    # Labelers [0, 1, 2] and [0, 2, 1]; units are the items: (0, 0), (1, 2), (2, 1).
    # o_00 = 2, o_12 = o_21 = 2; n_c = (2, 2, 2), n = 6; ordinal mid-ranks (1, 3, 5) so
    # d2_01 = 4, d2_02 = 16, d2_12 = 4. Observed sum o d2 = 2 * 2 * 4 = 16,
    # expected sum n_c n_k d2 = 2 * (4 * 4 + 4 * 16 + 4 * 4) = 192. alpha = 1 - 5 * 16 / 192 = 7/12.
    assert ranking_alpha(np.array([[0, 1, 2], [0, 2, 1]])) == pytest.approx(7 / 12)


def test_ranking_alpha_many_labelers() -> None:
    identical = np.tile([0, 1, 1, 2], (5, 1))
    assert ranking_alpha(identical) == pytest.approx(1.0)
    reversed_pair = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    assert ranking_alpha(reversed_pair) < 0
    with pytest.raises(ValueError, match="n_labelers, K"):
        ranking_alpha(np.array([0, 1, 2]))


# --- Cohen's kappa and percent agreement ---


def kappa_sklearn_formula(x: np.ndarray, y: np.ndarray) -> float:
    """sklearn's cohen_kappa_score (unweighted), written out: 1 - sum(w * C) / sum(w * E)."""
    labels = np.unique(np.concatenate([x, y]))
    confusion = np.array([[np.sum((x == a) & (y == b)) for b in labels] for a in labels], dtype=float)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    w = 1.0 - np.eye(len(labels))
    return float(1.0 - (w * confusion).sum() / (w * expected).sum())


def test_cohen_kappa_hand_case() -> None:
    # 10 items: both yes 4, x yes / y no 1, x no / y yes 2, both no 3.
    # p_o = 7/10; p_x(yes) = 5/10, p_y(yes) = 6/10; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5.
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    x = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    y = np.array([1, 1, 1, 1, 0, 1, 1, 0, 0, 0])
    assert cohen_kappa(x, y) == pytest.approx(0.4)
    assert percent_agreement(x, y) == pytest.approx(0.7)
    # Full disagreement on a balanced pair: p_o = 0, p_e = 0.5 -> kappa = -1.
    assert cohen_kappa([0, 1], [1, 0]) == pytest.approx(-1.0)


def test_cohen_kappa_matches_sklearn_formula() -> None:
    rng = np.random.default_rng(5)
    for n_labels in (2, 3, 5):
        for n in (5, 40, 300):
            x = rng.integers(0, n_labels, size=n)
            y = np.where(rng.random(n) < 0.6, x, rng.integers(0, n_labels, size=n))
            if len(np.unique(np.concatenate([x, y]))) < 2:
                continue
            assert cohen_kappa(x, y) == pytest.approx(kappa_sklearn_formula(x, y))


def test_cohen_kappa_categorical_and_bool_labels() -> None:
    x = np.array(["safe", "sensitive", "safe", "safe"])
    y = np.array(["safe", "sensitive", "sensitive", "safe"])
    # p_o = 3/4; p_x = (3/4, 1/4), p_y = (1/2, 1/2); p_e = 3/8 + 1/8 = 1/2; kappa = (3/4 - 1/2) / (1/2).
    assert cohen_kappa(x, y) == pytest.approx(0.5)
    assert cohen_kappa(x == "sensitive", y == "sensitive") == pytest.approx(0.5)


def test_cohen_kappa_degenerate_cases() -> None:
    # Both raters always said "not sensitive": p_e = 1, kappa is 0/0; documented as 1.0.
    assert cohen_kappa([False] * 6, [False] * 6) == 1.0
    assert math.isnan(cohen_kappa([], []))
    # Nearly degenerate is not degenerate: one flag in a million, p_o = p_e = 1 - 1e-6 -> kappa 0.
    x = np.zeros(1_000_000, dtype=bool)
    x[0] = True
    assert cohen_kappa(x, np.zeros(1_000_000, dtype=bool)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="same length"):
        cohen_kappa([1, 0], [1])


def test_percent_agreement() -> None:
    assert percent_agreement([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert percent_agreement(["a"], ["a"]) == 1.0
    assert math.isnan(percent_agreement([], []))


def test_ranking_alpha_grouped_equals_ranking_alpha_task_by_task() -> None:
    from app.metrics import ranking_alpha_grouped

    rng = np.random.default_rng(7)
    rows, groups, expected = [], [], []
    for g in range(200):
        k = int(rng.integers(4, 10))
        n_labelers = int(rng.integers(1, 6))
        base = rng.permutation(k)
        task = []
        for _ in range(n_labelers):
            noisy = base + rng.normal(0, rng.choice([0.1, 1.0, 5.0]), size=k)
            ranks = np.argsort(np.argsort(noisy))
            if rng.random() < 0.3:  # ties: merge neighbouring ranks into buckets
                ranks = ranks // 2
            task.append(ranks)
        matrix = np.array(task, dtype=np.float64)
        if n_labelers > 2 and rng.random() < 0.3:
            matrix[0, int(rng.integers(k))] = np.nan  # an item one labeler did not rank
        expected.append(ranking_alpha(matrix))
        padded = np.full((n_labelers, 9), -1, dtype=np.int64)
        padded[:, :k] = np.where(np.isnan(matrix), -1, matrix)
        rows.append(padded)
        groups += [g] * n_labelers
    got = ranking_alpha_grouped(np.vstack(rows), np.array(groups), 200)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isnan(got).any() and np.isfinite(got).sum() > 150  # both kinds of case were covered


def test_ranking_alpha_grouped_hand_case_and_empty_groups() -> None:
    from app.metrics import ranking_alpha_grouped

    ranks = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 3, 2], [3, 2, 1, 0]])
    got = ranking_alpha_grouped(ranks, np.array([0, 0, 2, 2]), 3)
    assert got[0] == pytest.approx(1.0)  # perfect agreement
    assert np.isnan(got[1])  # no rankings at all
    assert got[2] == pytest.approx(ranking_alpha(ranks[2:]))
    with pytest.raises(ValueError):
        ranking_alpha_grouped(ranks, np.array([0, 1]), 2)
