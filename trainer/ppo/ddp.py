"""PPO on several processes (one per GPU) under torchrun, launched by the `train_policy` job.

The job writes a spec (versions, config, prompts, PPO-ptx texts, checkpoint and output folders) and runs

    python -m torch.distributed.run --standalone --nproc_per_node N -m trainer.ppo.ddp SPEC.json

(`trainer.common.launch`). Each rank loads the models, samples its share of every batch and updates under DDP;
rank 0 reports metrics, writes checkpoints and the policy folder. Every rank stops at the next step once the job
creates the spec's stop file, after a checkpoint. NCCL on CUDA, gloo on CPU (the tests).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import record

from trainer.common.launch import finish_rank, report_metrics


@record
def main(spec_path: str) -> None:
    """One rank of the PPO job."""
    from trainer.common.distributed import rank_session
    from trainer.common.models import save_model_folder
    from trainer.common.versions import Version
    from trainer.ppo.config import PPOConfig
    from trainer.ppo.plan import PolicyPlan, load_models
    from trainer.ppo.rollout import reward_model_fn
    from trainer.ppo.train import train_policy

    spec = json.loads(Path(spec_path).read_text())
    plan = PolicyPlan(*(Version(int(v["id"]), Path(v["path"])) for v in (spec["start"], spec["sft"], spec["reward"])))
    with rank_session(spec["device"]) as (rank, device):
        m = load_models(plan, str(device))
        stop_file = Path(spec["stop_file"])
        result = train_policy(
            PPOConfig(**spec["config"]), m.policy, m.reference, m.value_model,
            reward_model_fn(m.reward_model, m.reward_tokenizer), spec["prompts"], m.tokenizer,
            on_metrics=report_metrics, checkpoint_dir=Path(spec["checkpoint_dir"]),
            checkpoint_every=int(spec["checkpoint_every"]), should_stop=stop_file.exists, ptx_texts=spec["ptx_texts"],
        )  # fmt: skip
        finish_rank(rank, stopped=result.stopped, steps=result.steps,
                    save=lambda: save_model_folder(m.policy, m.tokenizer, Path(spec["out_dir"])))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
