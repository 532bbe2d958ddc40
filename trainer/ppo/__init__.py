"""PPO against a reward model (InstructGPT section 3.5): rollouts, KL-shaped rewards, GAE, clipped updates
(`train_policy`), and the `train_policy` job from database to a registered `policy` version (`job`), on one
process or under torchrun (`ddp`)."""
