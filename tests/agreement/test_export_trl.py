"""The `pairs` export is what TRL's RewardTrainer and DPOTrainer take, as is: two training steps of each on it, with
single-turn prompts and a three-turn conversation (TRL's conversational format, rendered by the chat template)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datasets import load_dataset

from app.models import TaskKind
from app.services import exports
from tests.agreement.helpers import add_ranking, make_task, singletons


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.common.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("trl") / "tiny", seed=0)


CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "7."},
    {"role": "user", "content": "And an even one?"},
]


@pytest.fixture
def pairs_file(db, factory, settings, tmp_path) -> Path:
    researcher, labeler = factory.researcher(), factory.labeler()
    for messages in (None, CONVERSATION):
        task = make_task(db, kind=TaskKind.gold, k=4, messages=messages)
        add_ranking(db, task=task, user=researcher, order=singletons([0, 1, 2, 3]))
        add_ranking(db, task=task, user=labeler, order=[[0, 1], [2, 3]])
    path = tmp_path / "pairs.jsonl"
    options = exports.ExportOptions(format="pairs")
    lines = exports.export_lines(exports.single_session(db), settings=settings, options=options)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _args(config_cls, out: Path):
    return config_cls(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )


def test_reward_and_dpo_trainers_train_on_the_export(pairs_file, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    dataset = load_dataset("json", data_files=str(pairs_file), split="train")
    assert dataset.num_rows == 2 * (6 + 4)  # per task: 6 strict pairs (researcher) + 2 x 2 (labeler's two buckets)
    multi_turn = [row for row in dataset if len(row["prompt"]) == 4]
    assert len(multi_turn) == 10 and all(row["prompt"] == CONVERSATION for row in multi_turn)
    assert all(row["chosen"][0]["role"] == "assistant" for row in dataset)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    reward_model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    reward_model.config.pad_token_id = tokenizer.pad_token_id
    rm = RewardTrainer(
        model=reward_model, args=_args(RewardConfig, tmp_path / "rm"), train_dataset=dataset, processing_class=tokenizer
    )
    assert len(rm.train_dataset) == dataset.num_rows  # nothing dropped or rejected
    assert math.isfinite(rm.train().training_loss)

    policy = AutoModelForCausalLM.from_pretrained(tiny_model)
    dpo = DPOTrainer(
        model=policy, args=_args(DPOConfig, tmp_path / "dpo"), train_dataset=dataset, processing_class=tokenizer
    )
    assert len(dpo.train_dataset) == dataset.num_rows
    assert math.isfinite(dpo.train().training_loss)
