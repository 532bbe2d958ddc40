"""Sampling K completions per prompt for ranking (`completions`) and the `sample` job that turns them into ranking
tasks (`job`)."""
