"""`scripts/learn_on_smollm2.py --quick --model tiny`: the whole learning run, on its own fresh data folder, as a user
runs it (real `ranklab serve` and `ranklab worker` processes, the public API, the simulated labelers), end to end.

The script keeps its own SQLite folder whatever the suite's database, so it runs once, in the SQLite pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("RANKLAB_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="the script makes its own SQLite data folder: runs in the SQLite pass of the suite",
    ),
]


def test_quick_learning_run_end_to_end(tmp_path):
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RANKLAB_")}
    done = subprocess.run(
        [sys.executable, "scripts/learn_on_smollm2.py", "--quick", "--model", "tiny",
         "--data-dir", str(tmp_path / "data"), "--report", str(report_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())

    # the gold is the candidate whose scores vary most within a task's own SFT samples
    spreads = report["gold"]["within_task_spread_over_scale"]
    assert report["gold"]["gold"] == max(spreads, key=spreads.__getitem__)
    # the labelers pass screening and rank production tasks, not only the screening set
    assert "active" in report["campaign"]["labeler_statuses"]
    assert report["campaign"]["rankings"] > 5 * len(report["campaign"]["labeler_statuses"])
    assert report["campaign"]["demonstrations"]["accepted"] == 6
    assert 0.0 <= report["reward_model"]["agreement_with_gold"] <= 1.0 and report["reward_model"]["tasks"] > 0

    # every step is a job that ran on the worker, with its wall time and the worker's peak memory
    for step in ("sample", "reward", "ppo", "ppo-lora", "dpo-1", "sft-demonstrations"):
        job = report["steps"][step]
        assert job["seconds"] > 0 and job["peak_rss_mib"] > 0, (step, job)
    versions = [p["version"] for p in report["policies"].values()]
    assert sorted(report["policies"]) == ["dpo-1", "ppo", "ppo-lora", "sft-demonstrations"]
    assert len(set(versions)) == 4 and min(versions) > 1
    assert report["policies"]["ppo-lora"]["params"]["lora"]["r"] == 8  # PPO with adapters on a frozen base
    for name, policy in report["policies"].items():
        assert policy["sft_version"] == 1, name  # SFT on demonstrations is measured against the model it started from
        assert policy["gain"] == pytest.approx(policy["policy_gold"] - policy["sft_gold"], abs=1e-9)
        assert [b["n"] for b in policy["best_of_n_by_rm"]] == [1, 2, 4] == [b["n"] for b in policy["best_of_n_by_gold"]]
        golds = [b["gold"] for b in policy["best_of_n_by_gold"]]
        assert golds == sorted(golds)  # the gold's own pick only improves with n

    # the four measurements against SFT v1 sampled the SFT model once (the data folder's bounded cache)
    assert len(list((tmp_path / "data" / "cache" / "sft-samples").glob("*.json"))) == 1
    assert len({p["sft_gold"] for p in report["policies"].values()}) == 1

    # held-out answers of SFT and of the best policy, side by side
    assert report["side_by_side"] and all(
        row["prompt"] and {"sft", "policy"} <= set(row) for row in report["side_by_side"]
    )
    assert "| policy | KL from SFT |" in done.stdout and f"report: {report_path}" in done.stdout


def test_unknown_policy_steps_are_refused_before_anything_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/learn_on_smollm2.py", "--policies", "ppo,rlhf", "--data-dir", str(tmp_path / "d")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "policy steps are a comma list of ppo, ppo-lora, dpo, sft; got 'ppo,rlhf'" in done.stderr
    assert not (tmp_path / "d").exists()
