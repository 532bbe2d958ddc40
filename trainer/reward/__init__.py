"""Reward-model training (InstructGPT section 3.5): K-way rankings -> `train_reward_model` -> evaluation, and the
`train_reward` job from database to a registered `reward` version (`job`), on one process or under torchrun (`ddp`).
"""
