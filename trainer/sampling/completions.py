"""Sample K completions per prompt from a policy: batched, KV-cached, seeded, de-duplicated, recorded.

Prompts are texts (one user message) or conversations, rendered and tokenised by `trainer.common.chat`. Every
generate call gets left-padded input with an explicit attention mask (pad may equal EOS, see
`trainer.common.tokenizer`). Seeds are derived per (run seed, round, batch), so a run is reproducible for the same
prompts, config, model, device and dtype; a prompt's samples depend on the batch it was drawn in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from trainer.common.chat import Message, as_messages, encode_prompt, render_prompt
from trainer.common.generation import batch_seed, collate_queries, eos_token_ids
from trainer.common.precision import cpu_bf16_autocast

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

FinishReason = Literal["eos", "length"]
MIN_K, MAX_K = 4, 9  # InstructGPT shows labelers between 4 and 9 completions per prompt
STATIC_CACHE_WIDTH_MULTIPLE = 64
CACHE_IMPLEMENTATIONS = (None, "dynamic", "static")


@dataclass(frozen=True)
class SamplingConfig:
    """How completions are sampled for one ranking round."""

    k: int = 4
    """Completions per prompt (4..9, as in InstructGPT)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]; 1 disables it (top-k is always off)."""
    max_new_tokens: int = 64
    """Most tokens generated per completion, EOS included."""
    seed: int = 0
    """Run seed; every batch derives its own seed from it."""
    batch_size: int = 32
    """Sequences (prompt copies) per generate call."""
    dedupe_retries: int = 3
    """Rounds of re-sampling exact duplicate texts within one prompt."""
    cache_implementation: str | None = None
    """KV cache for generate: None = dynamic; "static" lets CUDA compile the decode step."""

    def __post_init__(self) -> None:
        checks = [
            (MIN_K <= self.k <= MAX_K, f"k must be in {MIN_K}..{MAX_K}, got {self.k}"),
            (self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.dedupe_retries >= 0, f"dedupe_retries must be >= 0, got {self.dedupe_retries}"),
            (self.cache_implementation in CACHE_IMPLEMENTATIONS, f"unknown cache {self.cache_implementation!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def params(self) -> dict[str, Any]:
        """The sampling parameters recorded with every completion."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Completion:
    """One sampled answer."""

    text: str
    """Decoded answer, special tokens stripped."""
    token_count: int
    """Generated tokens up to and including EOS."""
    finish_reason: FinishReason
    """"eos" when the model ended the answer, "length" when max_new_tokens cut it."""
    sampling_params: dict[str, Any] = field(default_factory=dict)
    """SamplingConfig.params() plus the batch seed and the dedupe round it came from."""


@dataclass(frozen=True)
class SamplingStats:
    """Throughput and de-duplication figures of one generate_completions call."""

    generated_tokens: int
    """Tokens generated in all rounds (each completion counted up to and including EOS)."""
    seconds: float
    """Wall time of the whole call."""
    tokens_per_s: float
    """generated_tokens / seconds."""
    sequences: int
    """Completions generated, re-samples included."""
    rounds: int
    """Generation rounds run (1 + dedupe rounds that had work)."""
    resampled: int
    """Completions re-sampled because they duplicated another of the same prompt."""
    duplicates_left: int
    """Completions still duplicating another of the same prompt after all retries."""

    def as_dict(self) -> dict[str, float]:
        """Plain dict, for job metrics."""
        return asdict(self)


@dataclass(frozen=True)
class SamplingResult:
    """Completions per prompt (same order as the prompts, k each) and the call's stats."""

    completions: list[list[Completion]]
    stats: SamplingStats


def dedupe_key(text: str) -> str:
    """Texts a labeler could not tell apart share a key (outer whitespace ignored)."""
    return text.strip()


def duplicate_slots(texts: Sequence[str]) -> list[int]:
    """Indices of texts that repeat an earlier text of the list (the first occurrence is kept)."""
    seen: set[str] = set()
    duplicates = []
    for index, text in enumerate(texts):
        key = dedupe_key(text)
        if key in seen:
            duplicates.append(index)
        seen.add(key)
    return duplicates


def trim_at_eos(token_ids: Sequence[int], eos_ids: set[int]) -> tuple[list[int], int, FinishReason]:
    """Cut generated ids at the first EOS: (ids before EOS, token count incl. EOS, finish reason)."""
    for index, token_id in enumerate(token_ids):
        if token_id in eos_ids:
            return list(token_ids[:index]), index + 1, "eos"
    return list(token_ids), len(token_ids), "length"


def generate_kwargs(cfg: SamplingConfig, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Keyword arguments for `model.generate` matching `cfg` (top_k off: HF defaults it to 50)."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": cfg.max_new_tokens,
        "use_cache": True,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if cfg.temperature == 0:
        kwargs.update(do_sample=False)
    else:
        kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
    if cfg.cache_implementation is not None:
        kwargs["cache_implementation"] = cfg.cache_implementation
    return kwargs


def sample_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    cfg: SamplingConfig,
    *,
    seed: int,
) -> list[list[int]]:
    """Generated token ids (padding after EOS included) for prompt ids, one generate call."""
    import torch

    # A static cache is compiled per shape on CUDA: round prompt widths so few shapes occur.
    multiple = STATIC_CACHE_WIDTH_MULTIPLE if cfg.cache_implementation == "static" else 1
    query_ids, query_mask = collate_queries(prompts, int(tokenizer.pad_token_id), pad_to_multiple_of=multiple)
    input_ids = query_ids.to(model.device)  # (B, T_prompt)
    attention_mask = query_mask.to(model.device)  # (B, T_prompt), 0 on left padding
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    fork = torch.random.fork_rng(devices=devices, device_type=model.device.type)
    with torch.inference_mode(), fork, cpu_bf16_autocast(model.device):
        torch.manual_seed(seed)
        output = model.generate(  # type: ignore[operator]  # nn.Module.__getattr__ confuses mypy
            input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs(cfg, tokenizer)
        )  # (B, T_prompt + T_new)
    return output[:, input_ids.shape[1] :].tolist()


def to_completions(
    rows: list[list[int]], tokenizer: PreTrainedTokenizerBase, eos_ids: set[int], params: dict[str, Any]
) -> list[Completion]:
    """Decode generated id rows into completions with counts and finish reasons."""
    completions = []
    for row in rows:
        kept, token_count, finish_reason = trim_at_eos(row, eos_ids)
        text = str(tokenizer.decode(kept, skip_special_tokens=True))
        completions.append(Completion(text, token_count, finish_reason, dict(params)))
    return completions


class _Progress:
    """Reports a non-decreasing fraction of planned sequences done; re-samples extend the plan."""

    def __init__(self, callback: Callable[[float], None] | None, planned: int) -> None:
        self.callback, self.planned, self.done, self.last = callback, planned, 0, 0.0

    def plan(self, more: int) -> None:
        self.planned += more

    def step(self, done: int) -> None:
        self.done += done
        self.last = max(self.last, self.done / max(self.planned, 1))
        if self.callback is not None:
            self.callback(self.last)


Request = tuple[int, int]  # (prompt index, completion slot)


def _run_round(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: list[list[int]],
    requests: list[Request],
    slots: list[list[Completion | None]],
    cfg: SamplingConfig,
    round_index: int,
    progress: _Progress,
) -> int:
    """Sample one completion per request into `slots`; returns the tokens generated."""
    eos_ids = eos_token_ids(model, tokenizer)
    generated = 0
    for batch_index, start in enumerate(range(0, len(requests), cfg.batch_size)):
        chunk = requests[start : start + cfg.batch_size]
        seed = batch_seed(cfg.seed, round_index, batch_index)
        rows = sample_batch(model, tokenizer, [prompt_ids[p] for p, _ in chunk], cfg, seed=seed)
        params = {**cfg.params(), "batch_seed": seed, "round": round_index}
        for (prompt_index, slot), completion in zip(
            chunk, to_completions(rows, tokenizer, eos_ids, params), strict=True
        ):
            slots[prompt_index][slot] = completion
            generated += completion.token_count
        progress.step(len(chunk))
    return generated


def _texts(completions: list[Completion | None]) -> list[str]:
    return [c.text if c is not None else "" for c in completions]


def generate_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str | Sequence[Message]],
    cfg: SamplingConfig,
    *,
    progress_callback: Callable[[float], None] | None = None,
) -> SamplingResult:
    """K completions per prompt (a text or a conversation), exact duplicates re-sampled up to `cfg.dedupe_retries`
    rounds."""
    start = time.perf_counter()
    conversations = [as_messages(p) if isinstance(p, str) else p for p in prompts]
    ids = [encode_prompt(tokenizer, messages) for messages in conversations]
    # Similar lengths share a batch so little compute goes to left padding.
    lengths = [len(render_prompt(tokenizer, messages)) for messages in conversations]
    order = sorted(range(len(ids)), key=lambda i: lengths[i])
    requests = [(i, slot) for i in order for slot in range(cfg.k)]
    slots: list[list[Completion | None]] = [[None] * cfg.k for _ in prompts]
    progress = _Progress(progress_callback, planned=len(requests))
    generated = _run_round(model, tokenizer, ids, requests, slots, cfg, 0, progress)
    sequences, rounds, resampled = len(requests), 1, 0
    for round_index in range(1, cfg.dedupe_retries + 1):
        requests = [(i, slot) for i in order for slot in duplicate_slots(_texts(slots[i]))]
        if not requests:
            break
        progress.plan(len(requests))
        generated += _run_round(model, tokenizer, ids, requests, slots, cfg, round_index, progress)
        sequences, rounds, resampled = sequences + len(requests), rounds + 1, resampled + len(requests)
    duplicates_left = sum(len(duplicate_slots(_texts(row))) for row in slots)
    seconds = time.perf_counter() - start
    stats = SamplingStats(
        generated_tokens=generated,
        seconds=seconds,
        tokens_per_s=generated / seconds if seconds > 0 else 0.0,
        sequences=sequences,
        rounds=rounds,
        resampled=resampled,
        duplicates_left=duplicates_left,
    )
    completions = [[c for c in row if c is not None] for row in slots]
    return SamplingResult(completions=completions, stats=stats)
