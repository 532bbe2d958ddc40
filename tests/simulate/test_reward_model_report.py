"""The report's reward-model check: agreement with the gold order on the tasks of held-out prompts."""

from __future__ import annotations

import numpy as np
import pytest

from app.simulate.client import Api
from app.simulate.gold import resolve_gold
from app.simulate.profiles import parse_mix
from app.simulate.report import reward_model_section
from app.simulate.synthetic import synthetic_tasks


@pytest.fixture
def api(sim_server):
    api = Api(sim_server.base_url).login(sim_server.admin, sim_server.password)
    tasks = synthetic_tasks(6, k=4, seed=5)
    # the first four prompts are held out, the rest train: only held-out prompts' tasks count
    splits = ["validation", "eval", "validation", "eval", "train", "train"]
    api.post(
        "/api/v1/prompts", {"prompts": [{"text": t["prompt"], "split": s} for t, s in zip(tasks, splits, strict=True)]}
    )
    for body in tasks:
        api.create_task(body)
    yield api
    api.close()


def test_a_model_that_scores_like_the_gold_agrees_fully_and_its_negation_not_at_all(api):
    gold = resolve_gold("sentiment")
    mix = parse_mix("careful:1,noisy:1,first-shown:1")
    same = reward_model_section(api, gold, gold.score_batch, mix=mix)
    assert same["tasks"] == 4 and same["pairs"] > 0
    assert same["agreement_with_gold"] == 1.0
    flipped = reward_model_section(api, gold, lambda p, t: -gold.score_batch(p, t), mix=mix)
    assert flipped["agreement_with_gold"] == 0.0 and flipped["pairs"] == same["pairs"]
    expected = same["expected_labeler_agreement_same_tasks"]
    assert set(expected) == {"careful", "noisy"}  # biased profiles have no temperature-only expectation
    assert 1.0 > expected["careful"] > expected["noisy"] > 0.5


def test_a_random_reward_model_folder_is_scored_through_trainer(api, tmp_path):
    from tests.simulate.test_gold_model import build_tiny_reward_model
    from trainer.gold.model import RewardModelScorer

    scorer = RewardModelScorer(build_tiny_reward_model(tmp_path / "rm"), device="cpu")
    section = reward_model_section(api, resolve_gold("sentiment"), scorer, mix=parse_mix("careful:1"))
    assert section["tasks"] == 4
    assert 0.0 <= section["agreement_with_gold"] <= 1.0
    assert np.isfinite(section["expected_labeler_agreement_same_tasks"]["careful"])
