"""A reward-model folder as a scorer of (prompt, text): the `model:PATH` gold and the report's RM check.

The folder is a Hugging Face `AutoModelForSequenceClassification` with one label (what the reward-model job
saves). `ranklab_reward_offset` in its config.json, when present, is subtracted (the job centres SFT samples
on 0). A pair is tokenised exactly as the reward model was trained (`trainer.common.reward_model.encode_completion`:
the prompt (a conversation, or plain text as one user message), the text as the assistant's answer, rendered by
`trainer.common.chat`) and read at its last real token, so a text's score does not depend on what it is batched with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.simulate.gold import Prompt

logger = logging.getLogger(__name__)


class RewardModelScorer:
    """Batch-scores (prompt, text) pairs with a reward-model folder (callable as a gold `BatchScorer`)."""

    def __init__(
        self, path: str | Path, *, device: str | None = None, batch_size: int = 16, max_length: int = 1024
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        from trainer.common.tokenizer import load_tokenizer

        self.path = Path(path)
        if not (self.path / "config.json").exists():
            raise FileNotFoundError(f"{self.path} is not a Hugging Face model folder (no config.json)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = load_tokenizer(self.path)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path).to(self.device).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(f"{self.path}: a reward model has one label, this one has {self.model.config.num_labels}")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def format(self, prompt: Prompt, text: str) -> str:
        """One (prompt or conversation, text) pair as the model reads it."""
        from trainer.common.chat import render_conversation, to_messages

        return render_conversation(self.tokenizer, to_messages(prompt), text)

    def __call__(self, prompts: Sequence[Prompt], texts: Sequence[str]) -> np.ndarray:
        """(N,) rewards, offset removed."""
        from trainer.common.chat import to_messages
        from trainer.common.reward_model import encode_completion, score_sequences

        if len(prompts) != len(texts):
            raise ValueError(f"got {len(prompts)} prompts for {len(texts)} texts")
        sequences = [
            encode_completion(self.tokenizer, to_messages(p), t, self.max_length)
            for p, t in zip(prompts, texts, strict=True)
        ]
        pad = int(self.tokenizer.pad_token_id)
        scores = score_sequences(self.model, sequences, pad_token_id=pad, batch_size=self.batch_size)
        return scores.double().numpy()
