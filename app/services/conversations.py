"""Conversations: a prompt is an ordered list of messages ending with a user turn.

Pure functions (no database): validation of the canonical form, the importers' shapes normalised into it (TRL/OpenAI
``messages``, ShareGPT ``conversations``, Anthropic HH transcripts, plain text), the content hash that keeps
single-turn prompts deduplicated exactly as before, and the short text form used for search and tables.

The canonical form is ``[{"role": "system" | "user" | "assistant", "content": str}, ...]``: an optional system
message first, then turns, the last one from the user (the model writes the next assistant turn).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from app.errors import InvalidInput

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
MAX_TURNS = 200
MAX_CONVERSATION_CHARS = 100_000
"""The whole conversation's text, all turns together (the limit a single prompt had before)."""
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
"""ShareGPT's ``from`` values (and the canonical names, which some exports use) mapped to roles."""
ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
_WS = re.compile(r"\s+")
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def normalise_text(text: str) -> str:
    """The form used for dedupe: NFC, case-folded, whitespace collapsed, stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def check_messages(messages: Any) -> list[Message]:
    """The canonical conversation if ``messages`` is a valid one; InvalidInput naming the first problem otherwise."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("a conversation must be a non-empty list of messages")
    if len(messages) > MAX_TURNS:
        raise InvalidInput(f"a conversation has at most {MAX_TURNS} messages, got {len(messages)}")
    out: list[Message] = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, Mapping):
            raise InvalidInput(f"message {i} must be an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise InvalidInput(f"message {i} has unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise InvalidInput(f"message {i} ({role}): 'content' must be text")
        if not content.strip():
            raise InvalidInput(f"message {i} ({role}) is empty")
        if "\x00" in content:
            raise InvalidInput(f"message {i} ({role}) contains a NUL character (\\x00), which cannot be stored")
        if role == "system" and i != 1:
            raise InvalidInput(f"message {i}: a system message may only come first")
        out.append({"role": str(role), "content": content})
    if out[-1]["role"] != "user":
        raise InvalidInput(
            f"the conversation's last message is from the {out[-1]['role']}; it must end with a user message "
            "(the outputs are the next assistant turn)"
        )
    total = sum(len(m["content"]) for m in out)
    if total > MAX_CONVERSATION_CHARS:
        raise InvalidInput(f"the conversation is longer than {MAX_CONVERSATION_CHARS} characters ({total})")
    return out


def from_text(text: Any) -> list[Message]:
    """A plain prompt: one user message (an HH transcript in the text is read as its turns)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("prompt text is empty")
    if is_hh_transcript(text):
        return from_hh(text, answer_last=False)
    return check_messages([{"role": "user", "content": text}])


def from_sharegpt(turns: Any) -> list[Message]:
    """ShareGPT ``conversations``: ``[{"from": "human" | "gpt" | "system", "value": ...}]``."""
    if not isinstance(turns, list) or not turns:
        raise InvalidInput("'conversations' must be a non-empty list of {from, value} turns")
    messages = []
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, Mapping):
            raise InvalidInput(f"turn {i} of 'conversations' must be an object with 'from' and 'value'")
        who = turn.get("from")
        role = SHAREGPT_ROLES.get(who.strip().lower()) if isinstance(who, str) else None
        if role is None:
            raise InvalidInput(f"turn {i} of 'conversations' has unknown 'from' {who!r}; use human, gpt or system")
        messages.append({"role": role, "content": turn.get("value")})
    return check_messages(messages)


def is_hh_transcript(text: str) -> bool:
    """Whether the text is an Anthropic HH transcript (``\\n\\nHuman: ... \\n\\nAssistant: ...``)."""
    return text.lstrip(" \t").startswith(("\n\nHuman:", "Human:")) and "\n\nAssistant:" in text


def from_hh(text: str, *, answer_last: bool) -> list[Message]:
    """An HH transcript's turns. ``answer_last``: the text is a ``chosen`` field, whose last assistant turn is the
    answer, not part of the prompt; otherwise an empty trailing ``Assistant:`` (the generation cue) is dropped."""
    body = text.lstrip(" \t")
    body = body if body.startswith("\n\n") else "\n\n" + body
    parts = _HH_TURN.split(body)
    if parts[0].strip():
        raise InvalidInput("an HH transcript must start with '\\n\\nHuman:'")
    messages = [
        {"role": "user" if who == "Human" else "assistant", "content": content.strip()}
        for who, content in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if messages and messages[-1]["role"] == "assistant" and (answer_last or not messages[-1]["content"]):
        messages.pop()
    return check_messages(messages)


def from_record(raw: Mapping[str, Any]) -> list[Message]:
    """The conversation of one import line, whichever common shape it has:
    ``messages`` (TRL/OpenAI), ``conversations`` (ShareGPT), ``text``/``prompt`` (plain or HH), ``chosen`` (HH)."""
    if "messages" in raw:
        return check_messages(raw["messages"])
    if "conversations" in raw:
        return from_sharegpt(raw["conversations"])
    for key in ("text", "prompt"):
        if key in raw:
            value = raw[key]
            if isinstance(value, list):
                return check_messages(value)
            return from_text(value)
    if "chosen" in raw:
        chosen = raw["chosen"]
        if not isinstance(chosen, str) or not is_hh_transcript(chosen):
            raise InvalidInput("'chosen' must be an HH transcript ('\\n\\nHuman: ... \\n\\nAssistant: ...')")
        return from_hh(chosen, answer_last=True)
    raise InvalidInput("expected one of 'text', 'prompt', 'messages', 'conversations' or 'chosen'")


def content_hash(messages: Sequence[Mapping[str, str]]) -> str:
    """SHA-256 of the normalised conversation. A single user message hashes as its normalised text alone, exactly as
    plain prompts always did, so existing prompts keep deduplicating against new imports."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        key = normalise_text(messages[0]["content"])
    else:
        key = json.dumps([[m["role"], normalise_text(m["content"])] for m in messages], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def text_form(messages: Sequence[Mapping[str, str]]) -> str:
    """The short text kept beside the messages for search and tables: the content itself for a single user turn,
    otherwise every turn as ``Role: content`` separated by blank lines."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{ROLE_LABELS[m['role']]}: {m['content']}" for m in messages)


def last_user_turn(messages: Sequence[Mapping[str, str]]) -> str:
    """The content of the final user message (what the outputs answer)."""
    return messages[-1]["content"]


SHOWN_OPEN = 2
"""How many of the last turns a page always shows; earlier ones fold into a disclosure."""
FOLD_CHARS = 1500
"""Earlier turns longer than this (together) start folded; shorter ones start open."""


def turn_views(messages: Sequence[Mapping[str, str]], *, shown_open: int = SHOWN_OPEN) -> dict[str, Any]:
    """What a page shows of a conversation: ``single`` (one user turn, shown as a plain prompt), the ``earlier``
    turns (in a disclosure, ``earlier_open`` when they are short) and the ``last`` ones, each as
    ``{"role", "label", "content"}``."""
    turns = [{"role": m["role"], "label": ROLE_LABELS[m["role"]], "content": m["content"]} for m in messages]
    single = len(turns) == 1 and turns[0]["role"] == "user"
    cut = max(0, len(turns) - shown_open)
    earlier_open = sum(len(t["content"]) for t in turns[:cut]) <= FOLD_CHARS
    return {
        "single": single,
        "earlier": turns[:cut],
        "earlier_open": earlier_open,
        "last": turns[cut:],
        "count": len(turns),
    }
