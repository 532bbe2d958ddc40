"""The `evaluate` job: a policy against a baseline under a reward model (win rate, KL, alignment tax) and, when
asked, eval ranking tasks for a human win rate."""
