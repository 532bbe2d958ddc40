"""Conversations: every import shape normalised to messages, per-line errors, dedup that keeps old prompts' hashes."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.models import Prompt
from app.services import conversations as conv
from app.services.imports import parse_prompts
from app.services.prompts import get_or_create_prompt
from tests.factories import token_headers

THREE_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another?"},
]


def test_plain_text_is_one_user_message():
    assert conv.from_record({"text": "Hi there"}) == [{"role": "user", "content": "Hi there"}]
    assert conv.from_record({"prompt": "Hi there"}) == [{"role": "user", "content": "Hi there"}]


def test_messages_sharegpt_and_hh_give_the_same_conversation():
    sharegpt = [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Name a colour."},
        {"from": "gpt", "value": "Blue."},
        {"from": "human", "value": "Another?"},
    ]
    assert conv.from_record({"messages": THREE_TURNS}) == THREE_TURNS
    assert conv.from_record({"conversations": sharegpt}) == THREE_TURNS
    hh_prompt = "\n\nHuman: Name a colour.\n\nAssistant: Blue.\n\nHuman: Another?\n\nAssistant:"
    assert conv.from_record({"prompt": hh_prompt}) == THREE_TURNS[1:]
    hh_chosen = "\n\nHuman: Name a colour.\n\nAssistant: Blue.\n\nHuman: Another?\n\nAssistant: Green."
    assert conv.from_record({"chosen": hh_chosen, "rejected": "..."}) == THREE_TURNS[1:]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"messages": THREE_TURNS[:3]}, "last message is from the assistant; it must end with a user message"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "unknown role 'tool'"),
        ({"messages": [{"role": "user", "content": "  "}]}, "message 1 (user) is empty"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}, "system message may"),
        ({"messages": [{"role": "user", "content": ["parts"]}]}, "'content' must be text"),
        ({"conversations": [{"from": "bot", "value": "x"}]}, "unknown 'from' 'bot'"),
        ({"conversations": [{"from": "human", "value": ""}]}, "message 1 (user) is empty"),
        ({"prompt": "\n\nHuman: hi\n\nAssistant: hello"}, "last message is from the assistant"),
        ({"chosen": "just text"}, "'chosen' must be an HH transcript"),
        ({"title": "no prompt"}, "expected one of 'text', 'prompt', 'messages'"),
    ],
)
def test_bad_conversations_say_why(record, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        conv.from_record(record)


def test_a_file_mixing_the_four_shapes_imports_and_a_bad_line_is_named():
    lines = [
        {"text": "plain prompt"},
        {"messages": THREE_TURNS},
        {"conversations": [{"from": "human", "value": "sharegpt prompt"}]},
        {"chosen": "\n\nHuman: hh prompt\n\nAssistant: answer"},
    ]
    items = parse_prompts("\n".join(json.dumps(x) for x in lines).encode())
    assert [len(i.messages) for i in items] == [1, 4, 1, 1]
    assert items[3].messages == [{"role": "user", "content": "hh prompt"}]
    bad = [*lines, {"messages": THREE_TURNS[:3]}]
    with pytest.raises(InvalidInput) as err:
        parse_prompts("\n".join(json.dumps(x) for x in bad).encode())
    assert err.value.details["lines"] == [5]
    assert "line 5: the conversation's last message is from the assistant" in err.value.message


def test_single_user_message_keeps_the_hash_plain_prompts_always_had(db):
    text = "  Explain   TIDES "
    old_hash = hashlib.sha256(conv.normalise_text(text).encode()).hexdigest()
    assert conv.content_hash([{"role": "user", "content": text}]) == old_hash
    prompt, created = get_or_create_prompt(db, text=text)
    again, created_again = get_or_create_prompt(db, messages=[{"role": "user", "content": "explain tides"}])
    assert created and not created_again and again.id == prompt.id and prompt.content_hash == old_hash
    multi, _ = get_or_create_prompt(db, messages=THREE_TURNS)
    assert multi.id != prompt.id and multi.messages == THREE_TURNS
    assert multi.text == "System: Be brief.\n\nUser: Name a colour.\n\nAssistant: Blue.\n\nUser: Another?"
    # the same turns with other case and spacing are the same conversation; another order is not
    variant = [{**m, "content": m["content"].upper() + "  "} for m in THREE_TURNS]
    assert get_or_create_prompt(db, messages=variant)[0].id == multi.id
    swapped = [THREE_TURNS[0], THREE_TURNS[3], THREE_TURNS[2], THREE_TURNS[1]]
    assert get_or_create_prompt(db, messages=swapped)[0].id != multi.id


def test_api_takes_messages_and_hh_text_and_names_the_bad_prompt(client, factory, db):
    headers = token_headers(client, factory.researcher())
    before = db.scalar(select(func.count()).select_from(Prompt))
    good = {"prompts": [{"messages": THREE_TURNS}, {"text": "\n\nHuman: api hh\n\nAssistant:"}]}
    created = client.post("/api/v1/prompts", json=good, headers=headers)
    assert created.status_code == 201, created.text
    ids = created.json()["ids"]
    assert db.get(Prompt, ids[1]).messages == [{"role": "user", "content": "api hh"}]
    listed = client.get("/api/v1/prompts", params={"q": "Another?"}, headers=headers).json()
    assert listed["items"][0]["messages"] == THREE_TURNS
    bad = {"prompts": [{"text": "fine new prompt"}, {"messages": THREE_TURNS[:3]}]}
    refused = client.post("/api/v1/prompts", json=bad, headers=headers)
    assert refused.status_code == 422
    assert "prompt 2: the conversation's last message is from the assistant" in refused.json()["detail"]
    both = client.post("/api/v1/prompts", json={"prompts": [{"text": "x", "messages": THREE_TURNS}]}, headers=headers)
    assert both.status_code == 422 and "either 'text' or 'messages'" in both.text
    assert db.scalar(select(func.count()).select_from(Prompt)) == before + 2


def test_a_task_can_be_created_on_a_conversation(client, factory, db):
    headers = token_headers(client, factory.researcher())
    body = {"prompt": THREE_TURNS, "completions": ["Red.", "Green.", "Pink.", "Grey."]}
    created = client.post("/api/v1/tasks", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert db.get(Prompt, created.json()["prompt_id"]).messages == THREE_TURNS
