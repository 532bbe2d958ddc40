"""The models page's chart data (app/services/model_charts.py): pure functions over model rows, by hand."""

from __future__ import annotations

import math

import pytest

from app.models import ModelKind, ModelVersion, Round
from app.services import model_charts
from app.services.evaluation import HumanEvaluation, PairPreference, Share, VersionCriteria


def _m(id_: int, kind: ModelKind, parent: int | None = None, **metrics: object) -> ModelVersion:
    return ModelVersion(id=id_, kind=kind, name=f"m{id_}", path=f"/m/{id_}", parent_id=parent, metrics=metrics)


def test_training_method_defaults_to_ppo():
    assert model_charts.training_method(_m(2, ModelKind.policy, 1)) == "ppo"
    assert model_charts.training_method(_m(2, ModelKind.policy, 1, method="DPO")) == "dpo"
    assert model_charts.training_method(_m(2, ModelKind.policy, 1, params={"method": "dpo"})) == "dpo"


def test_sft_ancestor_follows_parents_and_survives_a_loop():
    models = {1: _m(1, ModelKind.sft), 2: _m(2, ModelKind.policy, 1), 3: _m(3, ModelKind.policy, 2)}
    assert model_charts.sft_ancestor(models[3], models) == 1
    loop = {4: _m(4, ModelKind.policy, 5), 5: _m(5, ModelKind.policy, 4)}
    assert model_charts.sft_ancestor(loop[4], loop) is None


def test_reward_vs_kl_reads_the_evaluation_against_the_sft_ancestor():
    sft = _m(1, ModelKind.sft)
    bon = [{"n": 4, "kl": 0.636, "reward": 0.7}, {"n": 1, "kl": 0.0, "reward": 0.1}]
    ev = {"kl": 0.8, "policy_reward": 0.9, "baseline_reward": 0.1, "reward_version": 9, "best_of_n": bon}
    p1 = _m(2, ModelKind.policy, 1, kl=1.1, mean_score=0.7, eval={"1": ev})
    p2 = _m(3, ModelKind.policy, 2, method="dpo", eval={"2": {"kl": 0.5, "policy_reward": 2.0}})  # vs its parent
    p3 = _m(4, ModelKind.policy, 1, kl=0.3, mean_score=0.4)  # no evaluation: PPO's own last steps
    got = model_charts.reward_vs_kl([sft, p1, p2, p3])
    assert got["score"] == "reward-model score"
    assert [(p["version"], p["kl"], p["score"], p["method"]) for p in got["points"]] == [
        (2, 0.8, 0.9, "ppo"), (4, 0.3, 0.4, "ppo")]  # fmt: skip
    assert got["missing"] == [3]  # only measured against its parent, whose KL is not from the SFT model
    assert got["baselines"] == [{"version": 1, "name": "m1", "kl": 0.0, "score": 0.1, "reward_version": 9}]
    assert [(p["n"], p["kl"]) for p in got["best_of_n"][0]["points"]] == [(1.0, 0.0), (4.0, 0.636)]  # by KL


def test_reward_vs_kl_prefers_the_gold_score_of_a_simulated_campaign():
    sft = _m(1, ModelKind.sft)
    gold = {"policy_gold": 0.3, "sft_gold": -0.1, "policy_kl": 2.0, "best_of_n": [{"n": 2, "kl": 0.19, "gold": 0.05}]}
    p1 = _m(2, ModelKind.policy, 1, gold=gold, eval={"1": {"kl": 1.9, "policy_reward": 3.0}})
    p2 = _m(3, ModelKind.policy, 1, kl=0.5, mean_score=1.0)
    got = model_charts.reward_vs_kl([sft, p1, p2])
    assert got["score"] == "gold score" and got["missing"] == [3]
    # the evaluation's KL (against the SFT model) is the x; the gold report gives the score and the curve
    assert [(p["kl"], p["score"]) for p in got["points"]] == [(1.9, 0.3)]
    assert got["baselines"][0]["score"] == -0.1 and got["best_of_n"][0]["points"][0]["score"] == 0.05


def test_rm_accuracy_intervals_stored_wilson_or_none():
    rounds = [Round(id=7, reward_model_id=3)]
    stored = _m(3, ModelKind.reward, 1, val_accuracy=0.7, val_pairs=100, val_accuracy_low=0.6, val_accuracy_high=0.8)
    wilson = _m(4, ModelKind.reward, 1, val_accuracy=0.7, val_pairs=100, val_held_out_labeler_accuracy=0.65)
    rows = model_charts.rm_accuracy([wilson, stored], rounds)["rows"]
    assert [r["label"] for r in rows] == ["v3 (round 7)", "v4"]
    assert (rows[0]["validation"]["low"], rows[0]["validation"]["high"]) == (0.6, 0.8)
    low, high = rows[1]["validation"]["low"], rows[1]["validation"]["high"]
    # Wilson 95% for 70 of 100: (0.604, 0.781), by hand
    assert low == pytest.approx(0.6041, abs=2e-3) and high == pytest.approx(0.7810, abs=2e-3)
    assert rows[1]["held_out"] == {"value": 0.65, "low": None, "high": None, "n": None,
                                   "interval": "no pair count: no interval"}  # fmt: skip


def test_human_eval_win_rate_against_the_parent_from_either_side():
    models = [_m(1, ModelKind.sft), _m(2, ModelKind.policy, 1), _m(3, ModelKind.policy, 2, method="dpo")]
    human = HumanEvaluation(
        pairs=[PairPreference(1, 2, 0.25, 0.1, 0.4, 12, 3), PairPreference(2, 3, 0.6, 0.5, 0.7, 8, 4)], ratings={}
    )
    share = Share(0.5, 0.2, 0.8)
    criteria = [VersionCriteria(version=2, outputs=6, rankings=3, mean_rating=5.5, rated=6,
                                flags={f: (share if f == "hallucination" else Share(0.0, math.nan, math.nan))
                                       for f in model_charts.FLAG_TITLES})]  # fmt: skip
    got = model_charts.human_eval(models, human, criteria)
    wins = {w["version"]: w for w in got["wins"]}
    assert wins[2]["win_rate"] == 0.75 and (wins[2]["low"], wins[2]["high"]) == pytest.approx((0.6, 0.9))
    assert wins[3]["win_rate"] == pytest.approx(0.4) and wins[3]["method"] == "dpo"
    assert got["flags"] == ["hallucination"]  # only flags someone used are charted
    assert got["criteria"][0]["flags"]["fails_instruction"]["low"] is None  # nan (under 3 rankings) becomes None
    tables = model_charts.chart_tables({"reward_kl": model_charts.reward_vs_kl(models),
                                        "rm_accuracy": {"rows": []}, "human": got})  # fmt: skip
    assert tables["criteria"] == [["v2 m2", "6", "5.50", "50.0%"]]
