"""Tiny models built in code for tests and CPU benches: a byte-level BPE tokenizer with ChatML special tokens and
a 2-layer random Llama. No test downloads or converts real weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# ChatML, as SmolLM2 uses it, without SmolLM2's default system turn (tests want short prompts).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Same ids as SmolLM2: 0 = unk, 1 = bos, 2 = eos (= pad).
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Rank the answers from best to worst, ties are allowed.",
    "A reward model learns which answer labelers prefer.",
    "Write a short poem about the sea and the sky.",
    "What is the capital of France? Paris is the capital of France.",
    "Explain the difference between a list and a tuple in Python.",
    "user assistant system: hello, how are you today? I am fine, thank you!",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000",
]


def build_tiny_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained in code on a few sentences, with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(TINY_CORPUS, trainer=trainer)
    unk, bos, eos = TINY_SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        pad_token=eos,
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=2048,
    )


def build_tiny_model(out_dir: Path, *, seed: int = 0) -> Path:
    """Save a tiny random Llama (2 layers, hidden 64, 4 heads) and its tokenizer in HF format."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        # Untied: with tied embeddings and 0.02 init, greedy decoding just repeats the last prompt token,
        # which would hide padding bugs from the tests.
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
