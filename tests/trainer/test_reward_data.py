"""Rankings -> tokenised tasks -> length-grouped batches -> collated tensors."""

import pytest
import torch

from trainer.common.chat import as_messages
from trainer.common.reward_model import encode_completion
from trainer.common.tiny import build_tiny_tokenizer
from trainer.reward.data import (
    EncodedTask,
    RankingRecord,
    TaskGroup,
    collate_rankings,
    encode_tasks,
    has_strict_pair,
    length_grouped_batches,
    split_labelers,
    split_tasks,
)

PAD = 2


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def test_task_rejects_ranks_of_wrong_length() -> None:
    with pytest.raises(ValueError):
        TaskGroup(1, "p", ["a", "b", "c", "d"], [RankingRecord([0, 1, 2])])
    with pytest.raises(ValueError):
        TaskGroup(1, "p", ["a", "b", "c", "d"], [RankingRecord([0, 1, 2, -2])])


def test_has_strict_pair() -> None:
    assert has_strict_pair([0, 1, -1, -1])
    assert not has_strict_pair([0, 0, 0, 0])
    assert not has_strict_pair([-1, -1, 3, -1])


def test_encode_uses_chat_template_and_never_ends_in_pad(tokenizer) -> None:
    ids = encode_completion(tokenizer, as_messages("Hi"), "Yo", max_length=64)
    assert tokenizer.decode(ids) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"
    tokenizer_plain = build_tiny_tokenizer()
    tokenizer_plain.chat_template = None  # the plain format ends the answer with EOS (= pad), which is dropped
    ids = encode_completion(tokenizer_plain, as_messages("Hi"), "Yo", max_length=64)
    assert tokenizer_plain.decode(ids) == "User:\nHi\n\nAssistant:\nYo" and ids[-1] != PAD


def test_encode_truncates_from_the_left(tokenizer) -> None:
    full = encode_completion(tokenizer, as_messages("a long prompt " * 20), "the answer", max_length=10_000)
    short = encode_completion(tokenizer, as_messages("a long prompt " * 20), "the answer", max_length=12)
    assert short == full[-12:]


def test_encode_tasks_drops_rankings_without_strict_pairs(tokenizer) -> None:
    tasks = [
        TaskGroup(1, "p", ["a", "b", "c", "d"], [RankingRecord([0, 0, 0, 0]), RankingRecord([0, 1, 1, 2])]),
        TaskGroup(2, "q", ["a", "b", "c", "d"], [RankingRecord([1, 1, -1, -1])]),
    ]
    encoded = encode_tasks(tasks, tokenizer, max_length=32)
    assert [t.task_id for t in encoded] == [1] and len(encoded[0].rankings) == 1


def test_length_grouped_batches_are_deterministic_and_cover_everything() -> None:
    lengths = [(i * 37) % 101 for i in range(50)]
    a = length_grouped_batches(lengths, 4, seed=3, epoch=0, mega_batch_size=4)
    assert a == length_grouped_batches(lengths, 4, seed=3, epoch=0, mega_batch_size=4)
    assert a != length_grouped_batches(lengths, 4, seed=3, epoch=1, mega_batch_size=4)
    assert sorted(i for b in a for i in b) == list(range(50))
    assert all(len(b) == 4 for b in a if len(b) != 2) and sum(len(b) != 4 for b in a) == 1
    for batch in a:  # sorted by length within a mega-batch, so each batch is length-homogeneous
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_collate_shares_rows_between_rankings_of_one_task() -> None:
    tasks = [
        EncodedTask(7, [[5, 6, 7], [8], [9, 10], [11, 12, 13, 14]], [RankingRecord([0, 1, 1, -1], weight=0.5)]),
        EncodedTask(
            8,
            [[20], [21, 22], [23], [24], [25]],
            [RankingRecord([0, 1, 2, 3, 4]), RankingRecord([4, 3, 2, 1, 0], weight=2.0)],
        ),
    ]
    batch = collate_rankings(tasks, pad_token_id=PAD)
    expected_ids = [
        [5, 6, 7],
        [8, PAD, PAD],
        [9, 10, PAD],
        [20, PAD, PAD],
        [21, 22, PAD],
        [23, PAD, PAD],
        [24, PAD, PAD],
        [25, PAD, PAD],
    ]  # completion 3 of task 7 is in no ranking: no row
    torch.testing.assert_close(batch.input_ids, torch.tensor(expected_ids))
    torch.testing.assert_close(batch.attention_mask, (torch.tensor(expected_ids) != PAD).long())
    torch.testing.assert_close(batch.group_index, torch.tensor([[0, 1, 2, -1, -1], [3, 4, 5, 6, 7], [3, 4, 5, 6, 7]]))
    torch.testing.assert_close(batch.ranks, torch.tensor([[0, 1, 1, -1, -1], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]))
    torch.testing.assert_close(batch.weights, torch.tensor([0.5, 1.0, 2.0]))
    assert batch.n_tokens == 12 and batch.task_ids == [7, 8]
    unweighted = collate_rankings(tasks, pad_token_id=PAD, use_weights=False, pad_to_multiple_of=8)
    torch.testing.assert_close(unweighted.weights, torch.ones(3))
    assert unweighted.input_ids.shape == (8, 8)


def test_splits() -> None:
    tasks = [
        TaskGroup(i, f"p{i}", ["a", "b"], [RankingRecord([0, 1], labeler="ann"), RankingRecord([1, 0], labeler="bob")])
        for i in range(10)
    ]
    train, val = split_tasks(tasks, 0.3, seed=1)
    assert len(val) == 3 and {t.task_id for t in train} | {t.task_id for t in val} == set(range(10))
    assert split_tasks(tasks, 0.3, seed=1) == (train, val)
    kept, held = split_labelers(tasks, {"bob"})
    assert all(r.labeler == "ann" for t in kept for r in t.rankings)
    assert all(r.labeler == "bob" for t in held for r in t.rankings) and len(held) == 10
