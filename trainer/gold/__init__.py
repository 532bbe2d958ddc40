"""Gold preferences for the simulated labelers (`ranklab simulate`): a reward-model folder as a scorer (`model`),
and a policy measured against a known gold (`policy`). Installed into `app.simulate` by `trainer.cli`."""
