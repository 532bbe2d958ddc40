"""The rewrite diff shown on the review page: hand-worked examples."""

from __future__ import annotations

import pytest

from app.errors import InvalidInput
from app.services.conversations import turn_views
from app.services.demonstration_diff import DiffLine, rewrite_diff
from app.services.demonstrations import parse_prompt_ids


def test_unchanged_text_is_all_same() -> None:
    diff = rewrite_diff("a\nb", "a\nb")
    assert diff.lines == [DiffLine("same", "a"), DiffLine("same", "b")]
    assert (diff.added, diff.removed, diff.similarity) == (0, 0, 1.0)


def test_a_changed_line_is_removed_then_added_in_place() -> None:
    diff = rewrite_diff(
        "Paris is big.\nIt has a river.\nThe end.", "Paris is big.\nThe Seine runs through it.\nThe end."
    )
    assert diff.lines == [
        DiffLine("same", "Paris is big."),
        DiffLine("removed", "It has a river."),
        DiffLine("added", "The Seine runs through it."),
        DiffLine("same", "The end."),
    ]
    assert (diff.added, diff.removed) == (1, 1)
    # 2 matching lines of 3 + 3: ratio = 2 * 2 / 6
    assert diff.similarity == pytest.approx(4 / 6)


def test_appended_and_deleted_lines() -> None:
    assert rewrite_diff("one", "one\ntwo").lines == [DiffLine("same", "one"), DiffLine("added", "two")]
    assert rewrite_diff("one\ntwo", "two").lines == [DiffLine("removed", "one"), DiffLine("same", "two")]


def test_empty_texts() -> None:
    assert rewrite_diff("", "").similarity == 1.0
    diff = rewrite_diff("", "new")
    assert diff.lines == [DiffLine("added", "new")] and diff.similarity == 0.0


def test_turn_views_fold_all_but_the_last_two_turns() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye?"},
    ]
    view = turn_views(messages)
    assert not view["single"] and view["count"] == 4
    assert [t["label"] for t in view["earlier"]] == ["System", "User"]
    assert [(t["role"], t["content"]) for t in view["last"]] == [("assistant", "Hello"), ("user", "Bye?")]


def test_turn_views_single_user_turn_is_a_plain_prompt() -> None:
    view = turn_views([{"role": "user", "content": "Explain tides"}])
    assert view["single"] and view["earlier"] == [] and view["last"][0]["content"] == "Explain tides"


def test_prompt_ids_from_the_prompts_page_form() -> None:
    assert parse_prompt_ids("12, 13\n20  7") == [12, 13, 20, 7]
    assert parse_prompt_ids("  ") == []
    with pytest.raises(InvalidInput, match="'12x' is not a prompt id"):
        parse_prompt_ids("3, 12x")
    with pytest.raises(InvalidInput):
        parse_prompt_ids("0")
