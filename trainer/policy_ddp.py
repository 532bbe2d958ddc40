"""PPO on several processes (one per GPU) under torchrun, launched by the `train_policy` job.

    python -m torch.distributed.run --standalone --nproc_per_node N -m trainer.policy_ddp SPEC.json

Every rank loads the policy, reference, value and reward models from the spec's folders and samples its share of
each step's episodes (`trainer.ppo.train_policy` splits rollouts across ranks); rank 0 reports each step's metrics
and, at the end, writes the policy folder. The job's stop file stops every rank at a checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from trainer.distributed import DONE_PREFIX, finish_rank, init_rank, report_metrics


def write_spec(path: Path, **spec: Any) -> Path:
    """The spec a launch reads: folders, config, prompts, PPO-ptx texts, checkpoint and output folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, default=str))
    return path


def main(spec_path: str) -> None:
    """One rank of the PPO job."""
    from trainer.models import save_model_folder
    from trainer.policy_job import PolicyPlan, Version, load_models, rm_tokenizer
    from trainer.ppo import train_policy
    from trainer.ppo_config import PPOConfig
    from trainer.ppo_rollout import reward_model_fn

    spec = json.loads(Path(spec_path).read_text())
    rank, device = init_rank(spec["device"])
    plan = PolicyPlan(*(Version(int(v["id"]), Path(v["path"])) for v in (spec["start"], spec["sft"], spec["reward"])))
    policy, reference, value_model, reward_model, tokenizer = load_models(plan, str(device))
    stop_file = Path(spec["stop_file"])
    result = train_policy(
        PPOConfig(**spec["config"]), policy, reference, value_model,
        reward_model_fn(reward_model, rm_tokenizer(plan.reward.path)), spec["prompts"], tokenizer,
        on_metrics=report_metrics, checkpoint_dir=Path(spec["checkpoint_dir"]),
        checkpoint_every=int(spec["checkpoint_every"]), should_stop=stop_file.exists, ptx_texts=spec["ptx_texts"],
    )  # fmt: skip
    if rank == 0:
        if not result.stopped:
            save_model_folder(policy, tokenizer, Path(spec["out_dir"]))
        print(DONE_PREFIX + json.dumps({"stopped": result.stopped, "steps": result.steps}), flush=True)
    finish_rank()


if __name__ == "__main__":
    main(sys.argv[1])
