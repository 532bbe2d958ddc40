"""The trainers' shared core: tokenizer and model loading (`tokenizer`, `models`, `smollm2`, `tiny`), the one
conversation renderer (`chat`), generation and log-probs shared by sampling, PPO, evaluation and the next methods
(`generation`, `logprobs`, `masked`), the reward model as a scorer (`reward_model`), collectives and torchrun
(`distributed`, `launch`), checkpoints (`checkpoint`), job params as the source of configs (`params`), and what
jobs share (`context`, `progress`, `versions`). It imports no method package (an import-linter contract)."""
