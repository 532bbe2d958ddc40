"""File imports (JSONL / CSV) of prompts and tasks: all lines are checked first; any bad line rejects the file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from app.db import INT64_MAX
from app.errors import InvalidInput
from app.models import PromptSource, Split, TaskKind, User
from app.services import conversations
from app.services import prompts as prompt_service
from app.services import tasks as task_service

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_REPORTED = 20
T = TypeVar("T")


def _decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not UTF-8 text (byte {exc.start})") from exc


def _collect(rows: Iterator[tuple[int, Any]], build: Callable[[Any], T]) -> list[T]:
    """Build every row, gathering 'line N: reason' for all bad ones; raise if any."""
    items: list[T] = []
    problems: list[str] = []
    for line_no, raw in rows:
        try:
            items.append(build(raw))
        except InvalidInput as exc:
            problems.append(f"line {line_no}: {exc.message}")
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise InvalidInput(
            f"nothing was imported; {len(problems)} bad line(s): " + "; ".join(problems[:MAX_REPORTED]) + more,
            lines=[int(p.split(":")[0][5:]) for p in problems],
        )
    if not items:
        raise InvalidInput("the file has no entries")
    return items


def _jsonl_rows(text: str) -> Iterator[tuple[int, Any]]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as exc:
            yield line_no, InvalidInput(f"not valid JSON ({exc.msg})")
        except RecursionError:
            yield line_no, InvalidInput("the JSON is nested too deeply")


def _csv_rows(text: str) -> Iterator[tuple[int, Any]]:
    """Rows with the line each starts on; a malformed row (an unterminated quote, a huge field) is refused there.

    `strict=True` makes csv refuse an unterminated quote instead of merging the rest of the file into one field.
    """
    reader = csv.DictReader(io.StringIO(text), strict=True)
    start = 1
    try:
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise InvalidInput("line 1: a CSV file needs a header row with a 'text' column")
        start = reader.line_num + 1
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"line {start}: not valid CSV ({exc}); nothing was imported", lines=[start]) from exc


def _split(value: Any) -> Split | None:
    if value in (None, ""):
        return None
    try:
        return Split(str(value).strip().lower())
    except ValueError as exc:
        raise InvalidInput(f"split {value!r} is not one of train, validation, eval") from exc


_PROMPT_FIELDS = ("text", "prompt", "messages", "conversations", "chosen", "rejected", "split")


def _prompt_from(raw: Any) -> prompt_service.NewPrompt:
    if isinstance(raw, InvalidInput):
        raise raw
    if not isinstance(raw, Mapping):
        raise InvalidInput("expected an object with 'text', 'prompt', 'messages', 'conversations' or 'chosen'")
    messages = conversations.from_record(raw)
    metadata = raw.get("metadata")
    if metadata is None:  # every other field (CSV column) is metadata
        metadata = {k: v for k, v in raw.items() if k not in _PROMPT_FIELDS and k and v not in (None, "")}
    if not isinstance(metadata, dict):
        raise InvalidInput("'metadata' must be an object")
    return prompt_service.NewPrompt(messages=messages, split=_split(raw.get("split")), metadata=metadata)


def parse_prompts(data: bytes, *, filename: str = "") -> list[prompt_service.NewPrompt]:
    """Prompts from JSONL (one conversation per line, in any shape `conversations.from_record` reads, with
    "split"? and "metadata"?) or CSV (a 'text' column; other columns become metadata)."""
    text = _decode(data)
    rows = _csv_rows(text) if filename.lower().endswith(".csv") else _jsonl_rows(text)
    return _collect(rows, _prompt_from)


def _task_from(raw: Any) -> task_service.ExternalTask:
    if isinstance(raw, InvalidInput):
        raise raw
    if not isinstance(raw, Mapping):
        raise InvalidInput("expected an object with 'prompt' and 'completions'")
    prompt = raw.get("prompt", raw.get("messages"))
    if isinstance(prompt, bool) or not isinstance(prompt, int | str | list):
        raise InvalidInput("'prompt' must be an existing prompt id, the prompt text or the conversation (messages)")
    if isinstance(prompt, str):
        conversations.from_text(prompt)
    elif isinstance(prompt, list):
        prompt = conversations.check_messages(prompt)
    completions = raw.get("completions")
    if not isinstance(completions, list):
        raise InvalidInput("'completions' must be a list of texts")
    task_service.check_k(len(completions))
    for i, c in enumerate(completions):
        task_service.check_completion_text(c, i)
    try:
        kind = TaskKind(raw.get("kind", "production"))
    except ValueError as exc:
        raise InvalidInput(f"kind {raw.get('kind')!r} is not one of {', '.join(k.value for k in TaskKind)}") from exc
    if isinstance(prompt, int) and not 1 <= prompt <= INT64_MAX:
        raise InvalidInput(f"there is no prompt with id {prompt}")
    overlap = raw.get("overlap", 1)
    task_service.check_overlap_priority(overlap)
    model = raw.get("model", "")
    if not isinstance(model, str):
        raise InvalidInput("'model' must be text")
    return task_service.ExternalTask(prompt=prompt, completions=completions, model=model, kind=kind, overlap=overlap)


def parse_tasks(data: bytes) -> list[task_service.ExternalTask]:
    """Tasks from JSONL: one {"prompt", "completions", "model"?, "kind"?, "overlap"?} per line."""
    return _collect(_jsonl_rows(_decode(data)), _task_from)


def import_prompts_file(
    session: Session,
    *,
    data: bytes,
    filename: str,
    created_by: User | None,
    split_ratios: Mapping[Split, float] | None = None,
) -> prompt_service.PromptImportResult:
    """Parse and import a prompts file as one unit."""
    items = parse_prompts(data, filename=filename)
    return prompt_service.import_prompts(
        session, prompts=items, source=PromptSource.import_, created_by=created_by, split_ratios=split_ratios
    )


def import_tasks_file(session: Session, *, data: bytes, created_by: User | None) -> list[int]:
    """Parse and import a tasks file as one unit; returns the new task ids."""
    specs = parse_tasks(data)
    return [t.id for t in task_service.create_external_tasks(session, specs=specs, created_by=created_by)]
