"""Simulated labelers with a known gold preference, driving a running ranklab over its public HTTP API.

* `gold` — gold preferences: scoring functions of (prompt, text), chosen by name (`sentiment`, `length:60`,
  `concept:ocean`, `model:PATH`); a registry a researcher extends in a few lines.
* `profiles` — labeler profiles: Plackett-Luce rankings over gold scores at a temperature, or a known bias,
  with ratings and flags derived from the same perceived scores; expected agreement with gold.
* `client` / `driver` — the campaign: accounts, screening and gold tasks, a simulated researcher, labelers
  ranking concurrently through `/api/v1/labeling/...`.
* `report` — per profile: agreement with gold and (as the product measured it) with researchers, the
  screening gate's decisions against what it should have decided, a reward model's agreement with gold.

Torch-free: `model:PATH` uses the reward-model scorer `trainer.cli` installs (`trainer.gold.model`), only when
asked for.
"""
