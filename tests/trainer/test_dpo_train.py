"""DPO training on K-way rankings: one pass per completion (packed like separate passes), the loss of a batch equal
to the pairwise form computed sequence by sequence, and a tiny model that learns the preference."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from trainer.common.packing import collate_packed, sequence_logprobs
from trainer.common.rankings import RankingRecord, TaskGroup
from trainer.dpo.data import collate_dpo, encode_dpo_tasks, reference_logprobs
from trainer.dpo.train import DpoConfig, PolicyLogprobs, batch_loss, evaluate_dpo, train_dpo

WORDS = ["the", "and", "of", "is", "in", "you", "are", "an"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.common.tiny import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("dpo") / "tiny", seed=0)
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def _tasks(n: int, k: int = 4, seed: int = 0) -> list[TaskGroup]:
    """Output j has K-1-j marker words ('France'): ranked by that count, best first; a tie now and then."""
    rng = random.Random(seed)
    tasks = []
    for t in range(n):
        texts = [" ".join(["France"] * (k - 1 - j) + [rng.choice(WORDS) for _ in range(3)]) for j in range(k)]
        order = list(range(k))
        rng.shuffle(order)
        shown = [texts[j] for j in order]
        ranks = [order[i] for i in range(k)]
        if t % 5 == 0:  # a labeler who ties the two worst
            ranks = [min(r, k - 2) for r in ranks]
        messages = [{"role": "user", "content": f"Say something about country {t}"}]
        tasks.append(TaskGroup(t, messages, shown, [RankingRecord(ranks, labeler="a", ranking_id=t)]))
    return tasks


def test_one_pass_per_completion_gives_the_pairwise_loss_of_separate_passes(tiny):
    tokenizer, model = tiny
    tasks = encode_dpo_tasks(_tasks(3, k=5), tokenizer, 64)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.01 * torch.randn_like(p))
    reference_logprobs(reference, tasks, packing=True, pad_id=0)
    batch = collate_dpo(tasks, packing=True, pad_id=0)
    assert batch.sequences.n_examples == 15  # K passes per task, not 2 x C(K,2) = 20 per task
    cfg = DpoConfig(beta=0.1)
    loss, stats = batch_loss(PolicyLogprobs(model), batch, cfg)
    # brute force: each sequence alone through the model, then every strict pair of every ranking
    per_task = []
    for task in tasks:
        alone = [float(sequence_logprobs(model, collate_packed([s]))[0].detach()) for s in task.sequences]
        ranks = task.rankings[0].ranks
        pairs = [
            -torch.nn.functional.logsigmoid(
                torch.tensor(0.1 * ((alone[i] - task.reference_logps[i]) - (alone[j] - task.reference_logps[j])))
            ).item()
            for i in range(len(ranks)) for j in range(len(ranks)) if ranks[i] < ranks[j]
        ]  # fmt: skip
        per_task.append(sum(pairs) / len(pairs))
    assert loss.item() == pytest.approx(sum(per_task) / len(per_task), rel=1e-4)
    assert stats["dpo/pairs"].item() == sum(
        sum(r1 < r2 for r1 in t.rankings[0].ranks for r2 in t.rankings[0].ranks) for t in tasks
    )


@pytest.mark.parametrize("loss_type", ["dpo", "ipo", "listwise"])
def test_the_tiny_model_learns_the_ranked_preference(tiny, loss_type):
    tokenizer, base = tiny
    policy = copy.deepcopy(base)
    train = encode_dpo_tasks(_tasks(24, seed=1), tokenizer, 64)
    validation = encode_dpo_tasks(_tasks(8, seed=2), tokenizer, 64)
    reference_logprobs(base, train + validation, packing=True, pad_id=0)
    cfg = DpoConfig(loss_type=loss_type, beta=0.5, learning_rate=2e-3, batch_size=4, epochs=4, warmup_ratio=0.0)
    before = evaluate_dpo(policy, validation, cfg, pad_token_id=0)
    seen: list[dict[str, float]] = []
    result = train_dpo(cfg, policy, train, pad_token_id=0, on_metrics=lambda s, m: seen.append(m))
    after = evaluate_dpo(policy, validation, cfg, pad_token_id=0)
    assert result.steps == 24 and before["val/accuracy"] == pytest.approx(0.5)  # policy = reference: all ties
    assert after["val/accuracy"] > 0.85, after
    assert after["val/rewards_chosen"] > after["val/rewards_rejected"] and after["val/margin"] > 0
    assert seen[-1]["perf/comparisons_per_s"] > 0 and seen[-1]["dpo/pairs"] > 0
