"""The one way a conversation is rendered and tokenised for a model (sampling, reward, PPO, evaluation, SFT, DPO).

A conversation is ``messages``: ``{"role": "system" | "user" | "assistant", "content": str}`` dicts, an optional
system message first, ending with a user message (`check_messages`). A plain prompt is ``as_messages(text)``.

* `render_prompt(tokenizer, messages)`: the text the model continues, i.e. the tokenizer's chat template with
  ``add_generation_prompt=True``.
* `encode_prompt(tokenizer, messages)`: its token ids, the exact ids generation starts from.
* `encode_prompt_completion(tokenizer, messages, completion)`: prompt ids and completion ids, where the completion
  is the assistant turn that answers `messages` as the template renders it. ``prompt_ids`` equals
  `encode_prompt`, so the boundary every loss mask depends on is where generation starts; ``completion_ids`` end
  with the end of the turn, so they contain the end-of-turn token (EOS) the model must learn to emit, followed by
  whatever the template writes after it (ChatML: ``<|im_end|>`` then a newline).

Models without a chat template get ONE plain format (`PLAIN_FORMAT`): turns separated by a blank line, each a role
label on its own line then the content; an assistant turn ends with the tokenizer's EOS token; the generation
prompt is the assistant label::

    System:
    Be brief.

    User:
    What is the capital of France?

    Assistant:
    Paris.<eos>

Special tokens: a template writes its own (BOS included), so templated text is tokenised with
``add_special_tokens=False``; the plain format lets the tokenizer add its usual prefix (BOS) to the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Message = Mapping[str, str]
"""``{"role": "system" | "user" | "assistant", "content": str}``."""
ROLES = ("system", "user", "assistant")
PLAIN_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
PLAIN_TURN_SEPARATOR = "\n\n"
PLAIN_FORMAT = "turns joined by a blank line; each turn '<Label>:\\n<content>', assistant turns end with EOS"
"""One line for logs and docs; the module docstring has the example."""


def as_messages(text: str) -> list[dict[str, str]]:
    """A plain prompt as a conversation: one user message."""
    return [{"role": "user", "content": text}]


PromptLike = str | Sequence[Message]
"""A prompt as callers hold it: plain text (one user message) or a conversation."""


def to_messages(prompt: PromptLike) -> list[dict[str, str]]:
    """A prompt as a conversation: plain text becomes one user message; messages are copied as they are."""
    return as_messages(prompt) if isinstance(prompt, str) else [dict(m) for m in prompt]


def check_messages(messages: Sequence[Message]) -> None:
    """ValueError unless `messages` is a conversation a model can answer: known roles, string contents, a system
    message only first, ending with a user message."""
    if not messages:
        raise ValueError("a conversation needs at least one user message")
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"message {i}: role {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"message {i}: content must be text, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise ValueError(f"message {i}: a system message may only come first")
    if messages[-1]["role"] != "user":
        raise ValueError(f"the conversation must end with a user message, not {messages[-1]['role']!r}")


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer carries a chat template (else the plain format is used)."""
    return bool(getattr(tokenizer, "chat_template", None))


def _plain_turn(tokenizer: PreTrainedTokenizerBase, message: Message) -> str:
    text = f"{PLAIN_LABELS[message['role']]}:\n{message['content']}"
    return text + (tokenizer.eos_token or "") if message["role"] == "assistant" else text


def _plain_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> str:
    turns = [_plain_turn(tokenizer, m) for m in messages] + [f"{PLAIN_LABELS['assistant']}:\n"]
    return PLAIN_TURN_SEPARATOR.join(turns)


def render_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> str:
    """The text the model continues to answer `messages` (chat template with the generation prompt)."""
    check_messages(messages)
    if not has_chat_template(tokenizer):
        return _plain_prompt(tokenizer, messages)
    text = tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False, add_generation_prompt=True)
    return str(text)


def render_conversation(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], completion: str) -> str:
    """The whole conversation with `completion` as the assistant's answer; it starts with `render_prompt`'s text
    (ValueError for a template that renders the earlier turns differently once the answer is there)."""
    return _render(tokenizer, messages, completion)[1]


def _render(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], completion: str) -> tuple[str, str]:
    """(prompt text, answered conversation text)."""
    prompt = render_prompt(tokenizer, messages)
    if not has_chat_template(tokenizer):
        return prompt, prompt + completion + (tokenizer.eos_token or "")
    answered = [*(dict(m) for m in messages), {"role": "assistant", "content": completion}]
    text = str(tokenizer.apply_chat_template(answered, tokenize=False, add_generation_prompt=False))
    if not text.startswith(prompt):
        raise ValueError(
            "this chat template renders a conversation differently once the assistant has answered (the prompt is "
            "not a prefix of the answered conversation), so no prompt/completion boundary exists"
        )
    return prompt, text


def _ids(tokenizer: PreTrainedTokenizerBase, text: str, *, special: bool) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=special)["input_ids"]]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> list[int]:
    """Token ids of `render_prompt`: what generation starts from."""
    return _ids(tokenizer, render_prompt(tokenizer, messages), special=not has_chat_template(tokenizer))


@dataclass(frozen=True)
class PromptCompletion:
    """One answered conversation as token ids, split where the answer starts."""

    prompt_ids: list[int]
    """Exactly `encode_prompt(tokenizer, messages)`."""
    completion_ids: list[int]
    """The assistant turn: the answer, its end-of-turn token (EOS) and any text the template puts after it."""

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def completion_mask(self) -> list[int]:
        """1 on completion tokens (what SFT and DPO score), 0 on the prompt."""
        return [0] * len(self.prompt_ids) + [1] * len(self.completion_ids)


def encode_prompt_completion(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], completion: str
) -> PromptCompletion:
    """`messages` answered by `completion`, tokenised as prompt ids + completion ids (see the module docstring).

    The completion is tokenised on its own after the prompt's ids, as a model generating it would produce it. That
    equals tokenising the whole conversation (tested per family), except for an answer that starts with whitespace
    a tokenizer would merge with the prompt's last token (SmolLM2: an answer starting with a newline, where the
    whole text would merge ``assistant\n`` + ``\n``): generation can never produce that merged token, so the split
    that matches generation wins, and the decoded ids still equal the rendered text.
    """
    prompt, full = _render(tokenizer, messages, completion)
    prompt_ids = _ids(tokenizer, prompt, special=not has_chat_template(tokenizer))
    return PromptCompletion(prompt_ids, _ids(tokenizer, full[len(prompt) :], special=False))
