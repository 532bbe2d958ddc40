"""A policy against the gold: its gold score and KL from its SFT model on held-out prompts, and best-of-n from SFT
(KL log n - (n-1)/n), read through the public API and measured by the trainer side."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.models import ModelKind, Split
from app.services import model_registry
from app.services.prompts import get_or_create_prompt
from app.simulate.client import Api
from app.simulate.gold import resolve_gold
from app.simulate.report import format_report, policy_section, sft_ancestor
from trainer.gold.policy import best_of_n, best_of_n_kl, curve_at_kl, gain_and_se, policy_against_gold


def test_best_of_n_figures():
    assert best_of_n_kl(1) == 0.0 and best_of_n_kl(4) == pytest.approx(math.log(4) - 0.75)
    gold = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.8]])
    picker = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.5]])  # picks by its own scores, not the gold
    assert best_of_n(gold, picker, 1) == pytest.approx(gold.mean())  # best-of-1 is the base model's mean
    # every pair of three: row 0 picks 0.1, 0.5, 0.5; row 1 picks 0.2, 0.8, 0.2
    assert best_of_n(gold, picker, 2) == pytest.approx(((0.1 + 0.5 + 0.5) / 3 + (0.2 + 0.8 + 0.2) / 3) / 2)
    assert best_of_n(gold, picker, 3) == pytest.approx((0.5 + 0.2) / 2)
    with pytest.raises(ValueError):
        best_of_n(gold, picker, 4)


def test_best_of_n_averages_every_subset():
    """Against brute force over all size-n subsets (random scores, so the picker never ties)."""
    from itertools import combinations

    rng = np.random.default_rng(0)
    gold, picker = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    for n in range(1, 8):
        brute = np.mean([np.mean([g[list(c)][np.argmax(p[list(c)])] for c in combinations(range(7), n)])
                         for g, p in zip(gold, picker, strict=True)])  # fmt: skip
        assert best_of_n(gold, picker, n) == pytest.approx(brute)


def test_gain_se_is_clustered_by_prompt():
    """The gain's SE comes from per-prompt gains: identical samples within a prompt add no evidence."""
    policy = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    sft = np.array([[0.5, 0.5], [1.0, 1.0], [0.0, 0.0]])
    gain, se = gain_and_se(policy, sft)
    per_prompt = np.array([0.5, 1.0, 0.0])
    assert gain == pytest.approx(per_prompt.mean())
    assert se == pytest.approx(per_prompt.std(ddof=1) / math.sqrt(3))
    tripled = np.repeat(policy, 3, axis=1)  # three times the samples of the same prompts: the same SE
    assert gain_and_se(tripled, sft)[1] == pytest.approx(se)
    assert math.isnan(gain_and_se(policy[:1], sft[:1])[1])


def test_best_of_n_curve_read_at_a_policy_kl():
    curve = [{"n": n, "kl": best_of_n_kl(n), "gold": g} for n, g in ((1, 0.5), (2, 0.7), (4, 0.9))]
    assert curve_at_kl(curve, 0.0) == 0.5 and curve_at_kl(curve, -0.1) == 0.5  # noise below 0 reads n = 1
    assert curve_at_kl(curve, best_of_n_kl(2)) == pytest.approx(0.7)
    mid = (best_of_n_kl(2) + best_of_n_kl(4)) / 2
    assert curve_at_kl(curve, mid) == pytest.approx(0.8)
    assert curve_at_kl(curve, best_of_n_kl(4) + 0.01) is None and curve_at_kl([], 0.3) is None


def test_sft_ancestor_follows_parents():
    models = [{"id": 1, "kind": "sft", "parent_id": None}, {"id": 2, "kind": "policy", "parent_id": 1},
              {"id": 3, "kind": "policy", "parent_id": 2}, {"id": 4, "kind": "reward", "parent_id": 1}]  # fmt: skip
    assert sft_ancestor(models, 3)["id"] == 1 and sft_ancestor(models, 1)["id"] == 1
    # an SFT version fine-tuned on demonstrations is measured against the model it started from
    tuned = [*models, {"id": 5, "kind": "sft", "parent_id": 1}, {"id": 6, "kind": "base", "parent_id": None},
             {"id": 7, "kind": "sft", "parent_id": 6}, {"id": 8, "kind": "policy", "parent_id": 5}]  # fmt: skip
    assert sft_ancestor(tuned, 5)["id"] == 1 and sft_ancestor(tuned, 7)["id"] == 6
    assert sft_ancestor(tuned, 8)["id"] == 5  # a policy on top of it: its own SFT parent
    with pytest.raises(ValueError, match="no policy"):
        sft_ancestor(models, 4)


def test_policy_section_through_the_api(sim_server, tiny_model_dir):
    with sim_server.server.session() as s:
        sft = model_registry.register_model(s, kind=ModelKind.sft, name="tiny", path=tiny_model_dir)
        same = model_registry.register_model(s, kind=ModelKind.policy, name="same", path=tiny_model_dir,
                                             parent_id=sft.id)  # fmt: skip
        for n in range(3):
            get_or_create_prompt(s, text=f"held-out prompt {n}", split=Split.eval)
        version = same.id
    gold = resolve_gold("length:4")
    api = Api(sim_server.base_url).login(sim_server.admin, sim_server.password)
    try:
        figures = policy_section(api, gold, policy_against_gold, policy_version=version, prompts=2,
                                 samples=2, best_of=(1, 2, 4), max_new_tokens=6)  # fmt: skip
    finally:
        api.close()
    assert figures["sft_version"] == sft.id and figures["prompts"] == 2
    assert figures["policy_kl"] == 0.0  # the "policy" is the SFT model itself
    golds = [b["gold"] for b in figures["best_of_n"]]
    assert golds == sorted(golds) and figures["picker"] == "gold (upper bound)"  # the gold's own pick only improves
    assert [b["kl"] for b in figures["best_of_n"]] == [best_of_n_kl(n) for n in (1, 2, 4)]
    assert "best-of-n from SFT" in format_report({"policy": figures})
    assert figures["best_of_n_by_gold"] == figures["best_of_n"]  # without a reward model the gold picks both
    assert figures["gain"] == pytest.approx(figures["policy_gold"] - figures["sft_gold"], abs=1e-9)
