"""A reward-model folder as a scorer of (prompt, text): the `model:PATH` gold and the report's RM check.

The folder is a Hugging Face `AutoModelForSequenceClassification` with one label (what the reward-model job
saves). `ranklab_reward_offset` in its config.json, when present, is subtracted (the job centres SFT samples
on 0). Pairs are formatted with the tokenizer's chat template when it has one (user = prompt, assistant =
text), else as ``prompt\\n\\ntext``.

Batches are right-padded with an explicit attention mask, so a text's score does not depend on what it is
batched with: positions are 0..n-1 whatever the padding, and the head reads the last non-padding token
(SmolLM2's pad token is its EOS; a ChatML turn ends with "<|im_end|>\\n", so that last token is the newline).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class RewardModelScorer:
    """Batch-scores (prompt, text) pairs with a reward-model folder (callable as a gold `BatchScorer`)."""

    def __init__(
        self, path: str | Path, *, device: str | None = None, batch_size: int = 16, max_length: int = 1024
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path)
        if not (self.path / "config.json").exists():
            raise FileNotFoundError(f"{self.path} is not a Hugging Face model folder (no config.json)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"  # keep the end of the answer, where the head reads
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path).to(self.device).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(f"{self.path}: a reward model has one label, this one has {self.model.config.num_labels}")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.offset = float(getattr(self.model.config, "ranklab_reward_offset", 0.0) or 0.0)
        self.batch_size, self.max_length = batch_size, max_length

    def format(self, prompt: str, text: str) -> str:
        """One (prompt, text) pair as the model reads it."""
        if self.tokenizer.chat_template:
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False))
        return f"{prompt}\n\n{text}"

    def __call__(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """(N,) rewards, offset removed."""
        import torch

        if len(prompts) != len(texts):
            raise ValueError(f"got {len(prompts)} prompts for {len(texts)} texts")
        formatted = [self.format(p, t) for p, t in zip(prompts, texts, strict=True)]
        order = sorted(range(len(formatted)), key=lambda i: len(formatted[i]))  # similar lengths pad less
        rewards = np.zeros(len(formatted), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [formatted[i] for i in idx],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=False,
                ).to(self.device)
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                rewards[idx] = logits[:, 0].float().cpu().numpy() - self.offset  # (B,)
        return rewards
