"""Prompts (conversations): normalised dedupe, split assignment by prompt, whole-batch imports."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Prompt, PromptSource, RankingTask, Split, User
from app.services import conversations
from app.services.conversations import Message

DEFAULT_SPLIT_RATIOS: dict[Split, float] = {Split.train: 0.8, Split.validation: 0.1, Split.eval: 0.1}
"""Share of prompts per split when a prompt arrives without one."""
MAX_PROMPT_CHARS = conversations.MAX_CONVERSATION_CHARS
MAX_METADATA_BYTES = 64 * 1024
"""Largest metadata a prompt keeps, as compact UTF-8 JSON."""
MAX_SEARCH_CHARS = 1000
"""Longest search text (SQLite refuses LIKE patterns over 50,000 bytes; nobody searches with a page of text)."""
normalise_text = conversations.normalise_text


def content_hash(text: str) -> str:
    """SHA-256 hex digest of a plain prompt's normalised text (the hash of its one-user-message conversation)."""
    return conversations.content_hash([{"role": "user", "content": text}])


def split_for_hash(digest: str, ratios: Mapping[Split, float] | None = None) -> Split:
    """Deterministic split of a prompt from its content hash and the ratios (which need not sum to 1)."""
    ratios = ratios or DEFAULT_SPLIT_RATIOS
    total = sum(ratios.values())
    if total <= 0 or any(v < 0 for v in ratios.values()):
        raise InvalidInput("split ratios must be non-negative and not all zero")
    point = int(digest[:12], 16) / float(16**12) * total
    acc = 0.0
    for split in (Split.train, Split.validation, Split.eval):
        acc += ratios.get(split, 0.0)
        if point < acc:
            return split
    return next(s for s in (Split.eval, Split.validation, Split.train) if ratios.get(s, 0.0) > 0)


def parse_split_ratios(spec: str) -> dict[Split, float]:
    """Parse 'train,validation,eval' shares such as '0.8,0.1,0.1'."""
    parts = [p.strip() for p in spec.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise InvalidInput(f"split ratio {spec!r} must be three numbers such as 0.8,0.1,0.1") from exc
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"split ratio {spec!r} must be three numbers such as 0.8,0.1,0.1")
    ratios = dict(zip((Split.train, Split.validation, Split.eval), values, strict=True))
    split_for_hash("0" * 12, ratios)  # validates
    return ratios


def check_prompt_text(text: Any) -> str:
    """The text if it is a usable prompt; InvalidInput otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("prompt text is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"prompt text is longer than {MAX_PROMPT_CHARS} characters")
    if "\x00" in text:
        raise InvalidInput("prompt text contains a NUL character (\\x00), which cannot be stored")
    return text


def messages_of(text: str | None, messages: Sequence[Any] | None) -> list[Message]:
    """The conversation of an API prompt given as plain text (an HH transcript is read as its turns) or as messages
    (pydantic models or dicts)."""
    if messages is not None:
        return conversations.check_messages([m if isinstance(m, Mapping) else m.model_dump() for m in messages])
    return conversations.from_text(text)


def new_prompts(items: Sequence[Any]) -> list[NewPrompt]:
    """API prompts (each with ``text`` or ``messages``, ``split``, ``metadata``) as an import batch; InvalidInput
    naming every bad one by its position."""
    out: list[NewPrompt] = []
    problems: list[str] = []
    for i, item in enumerate(items, start=1):
        try:
            out.append(NewPrompt(messages_of(item.text, item.messages), split=item.split, metadata=item.metadata))
        except InvalidInput as exc:
            problems.append(f"prompt {i}: {exc.message}")
    if problems:
        raise InvalidInput("nothing was imported: " + "; ".join(problems[:20]))
    return out


def get_or_create_prompt(
    session: Session,
    *,
    text: str | None = None,
    messages: list[Message] | None = None,
    split: Split | None = None,
    source: PromptSource = PromptSource.import_,
    metadata: dict[str, Any] | None = None,
    created_by: User | None = None,
    split_ratios: Mapping[Split, float] | None = None,
) -> tuple[Prompt, bool]:
    """The prompt with this conversation (or plain text: one user message), creating it if new; (prompt, created)."""
    if (text is None) == (messages is None):
        raise InvalidInput("give the prompt as text or as messages, not both")
    if messages is None:
        messages = [{"role": "user", "content": check_prompt_text(text)}]
    messages = conversations.check_messages(messages)
    digest = conversations.content_hash(messages)
    existing = session.scalar(select(Prompt).where(Prompt.content_hash == digest))
    if existing is not None:
        return existing, False
    prompt = Prompt(
        text=conversations.text_form(messages),
        messages=messages,
        content_hash=digest,
        source=source,
        split=split or split_for_hash(digest, split_ratios),
        meta=dict(metadata or {}),
        created_by_id=created_by.id if created_by else None,
    )
    session.add(prompt)
    session.flush()
    return prompt, True


@dataclass
class NewPrompt:
    """One prompt of an import batch: a conversation (a plain prompt is one user message)."""

    messages: list[Message]
    split: Split | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The short text form (the content itself for a single user turn)."""
        return conversations.text_form(self.messages)


@dataclass
class PromptImportResult:
    created: int
    duplicates: int
    ids: list[int]
    duplicate_ids: list[int]


def import_prompts(
    session: Session,
    *,
    prompts: Sequence[NewPrompt],
    source: PromptSource = PromptSource.import_,
    created_by: User | None = None,
    split_ratios: Mapping[Split, float] | None = None,
) -> PromptImportResult:
    """Create the new prompts of a batch; duplicates (also within the batch) are counted, not re-created."""
    problems = [f"prompt {i + 1}: {_problem(p)}" for i, p in enumerate(prompts) if _problem(p)]
    if problems:
        raise InvalidInput("nothing was imported: " + "; ".join(problems[:20]))
    ids: list[int] = []
    duplicate_ids: list[int] = []
    created = 0
    for item in prompts:
        prompt, is_new = get_or_create_prompt(
            session,
            messages=item.messages,
            split=item.split,
            source=source,
            metadata=item.metadata,
            created_by=created_by,
            split_ratios=split_ratios,
        )
        ids.append(prompt.id)
        if is_new:
            created += 1
        else:
            duplicate_ids.append(prompt.id)
    return PromptImportResult(created=created, duplicates=len(duplicate_ids), ids=ids, duplicate_ids=duplicate_ids)


def _problem(item: NewPrompt) -> str | None:
    try:
        conversations.check_messages(item.messages)
    except InvalidInput as exc:
        return exc.message
    size = len(json.dumps(item.metadata, ensure_ascii=False, separators=(",", ":"), default=str).encode())
    if size > MAX_METADATA_BYTES:
        return f"metadata is {size:,} bytes as JSON; a prompt keeps at most {MAX_METADATA_BYTES // 1024} KB"
    return None


def check_search(query: str) -> str:
    """The search text, stripped, if it is short enough to search by; InvalidInput naming the limit otherwise."""
    if len(query) > MAX_SEARCH_CHARS:
        raise InvalidInput(f"q: search text is {len(query):,} characters; at most {MAX_SEARCH_CHARS} are searched")
    return query.strip()


def get_prompt(session: Session, *, prompt_id: int) -> Prompt:
    """The prompt with this id, or NotFound."""
    prompt = session.get(Prompt, prompt_id)
    if prompt is None:
        raise NotFound(f"no prompt with id {prompt_id}")
    return prompt


def search_prompts(
    session: Session, *, query: str = "", split: Split | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Prompt], int]:
    """Prompts whose text contains `query` (case-insensitive), newest first, with the total count."""
    where, query = [], check_search(query)
    if query:
        where.append(Prompt.text.icontains(query, autoescape=True))
    if split is not None:
        where.append(Prompt.split == split)
    total = session.scalar(select(func.count()).select_from(Prompt).where(*where)) or 0
    rows = session.scalars(select(Prompt).where(*where).order_by(Prompt.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def task_conversations(session: Session, *, task_ids: Sequence[int]) -> dict[int, list[Message]]:
    """The conversation of each task (by task id), in one statement."""
    if not task_ids:
        return {}
    rows = session.execute(
        select(RankingTask.id, Prompt.messages)
        .join(Prompt, Prompt.id == RankingTask.prompt_id)
        .where(RankingTask.id.in_(list(task_ids)))
    ).all()
    return {task_id: list(messages) for task_id, messages in rows}
