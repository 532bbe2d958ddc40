import pytest
from sqlalchemy import select

from app.errors import InvalidInput
from app.models import Completion, Prompt, PromptSource, Split, TaskCompletion, TaskKind, TaskStatus
from app.services.prompts import content_hash, get_or_create_prompt, normalise_text, split_for_hash
from app.services.tasks import NewCompletion, create_task


def test_normalised_text_ignores_case_whitespace_and_unicode_form():
    assert normalise_text("  Hello\n\tWORLD  ") == "hello world"
    # "é" precomposed vs. e + combining acute accent
    assert content_hash("caf\u00e9") == content_hash("CAFE\u0301")
    assert content_hash("a b") != content_hash("ab")


def test_get_or_create_prompt_dedupes(db, factory):
    researcher = factory.researcher()
    first, created = get_or_create_prompt(db, text="Write a poem about tea.", created_by=researcher, metadata={"a": 1})
    again, created_again = get_or_create_prompt(db, text="  write a POEM about   tea. ", split=Split.eval)
    assert created and not created_again
    assert again.id == first.id and again.split == first.split  # the existing prompt is unchanged
    assert first.created_by_id == researcher.id and first.meta == {"a": 1} and first.source == PromptSource.import_


def test_get_or_create_prompt_uses_given_split_and_rejects_empty(db):
    prompt, _ = get_or_create_prompt(db, text="Explain gravity", split=Split.validation)
    assert prompt.split == Split.validation
    with pytest.raises(InvalidInput, match="empty"):
        get_or_create_prompt(db, text="   ")


def test_split_for_hash_follows_ratios():
    digests = [content_hash(f"prompt {i}") for i in range(2000)]
    splits = [split_for_hash(d) for d in digests]
    share_train = splits.count(Split.train) / len(splits)
    assert 0.75 < share_train < 0.85
    assert {split_for_hash(d, {Split.train: 0, Split.validation: 0, Split.eval: 1}) for d in digests} == {Split.eval}
    assert split_for_hash(digests[0]) == split_for_hash(digests[0])  # deterministic


def test_create_task_stores_completions_in_order(db, factory):
    prompt, _ = get_or_create_prompt(db, text="Name a colour")
    texts = ["red", "green", "blue", "cyan", "magenta"]
    task = create_task(
        db,
        prompt=prompt,
        completions=[NewCompletion(text=t, sampling_params={"temperature": 0.7}, token_count=1) for t in texts],
        kind=TaskKind.gold,
        overlap=3,
        model_name="sft-v1",
        priority=5,
    )
    assert task.k == 5 and task.overlap == 3 and task.kind == TaskKind.gold and task.status == TaskStatus.open
    assert task.slots_taken == 0 and task.priority == 5
    links = db.scalars(select(TaskCompletion).where(TaskCompletion.task_id == task.id).order_by("position")).all()
    stored = [db.get(Completion, link.completion_id) for link in links]
    assert [c.text for c in stored] == texts
    assert all(c.model_name == "sft-v1" and c.sampling_params == {"temperature": 0.7} for c in stored)
    assert all(c.prompt_id == prompt.id for c in stored)


@pytest.mark.parametrize("k", [0, 3, 10])
def test_create_task_rejects_k_outside_range(db, k):
    prompt, _ = get_or_create_prompt(db, text=f"K test {k}")
    before = db.scalar(select(Completion.id).order_by(Completion.id.desc()).limit(1))
    with pytest.raises(InvalidInput, match="4 to 9"):
        create_task(db, prompt=prompt, completions=[NewCompletion(text=str(i)) for i in range(k)])
    assert db.scalar(select(Completion.id).order_by(Completion.id.desc()).limit(1)) == before
    assert db.get(Prompt, prompt.id) is not None
