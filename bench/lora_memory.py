"""Memory and time with and without LoRA: one PPO step and one reward-model epoch, same data, same run.

    python bench/lora_memory.py --device cpu --layers 4 --json /tmp/lora_memory.json   # the recorded CPU run
    python bench/lora_memory.py --device cuda --layers 30                              # SmolLM2-135M itself

The models are SmolLM2-135M's architecture built in code with random weights (hidden 576, 9 heads, 3 KV heads,
MLP 1536, vocabulary 49,152, tied embeddings), with `--layers` of its 30 layers. PPO holds what its job holds:
without LoRA a policy, a separate reference, a value model and a reward model (as `trainer.ppo.plan.load_models`
on CPU, all float32); with LoRA (r 16 on every attention and MLP projection) the reference is the policy with its
adapters off and the value model trains its own adapter (`trainer.common.lora`). The reward model trains on the
same synthetic K-way rankings either way (`bench/common.make_tasks`).

Every case runs in its own subprocess: peak RSS (CPU; the CUDA allocator's peak on a GPU) is that process's rise
over its RSS after imports, and the PPO step time is the second step's (the first one warms up). Then, from two
model sizes (`--layers` and twice that) and two batch sizes, the bytes per parameter of the policy and the bytes
per episode token of a PPO step are fitted, and the largest policy whose PPO run fits one 80 GB GPU is
extrapolated, with and without LoRA: an estimate (linear in parameters at a fixed token count; measured at this
width and precision, so activations of wider models and bf16 frozen copies are not modelled).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import make_tasks, quiet_libraries  # noqa: E402

SMOLLM2 = dict(
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
    rope_theta=100000.0, tie_word_embeddings=True, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2,
    pad_token_id=2,
)  # fmt: skip
GPU_BYTES = 80 * 10**9


def _rss_mib() -> float:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def _peak_mib(device: str, start: float) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start


def _config(layers: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(num_hidden_layers=layers, **SMOLLM2)


def _lora() -> Any:
    from app.schemas.params import LoraParams

    return LoraParams(r=16, alpha=32, dropout=0.0)


def run_ppo(args: argparse.Namespace) -> dict[str, Any]:
    """One warm-up PPO step and one timed step on random SmolLM2-shaped models."""
    from transformers import LlamaForCausalLM

    from trainer.common.lora import add_adapters, trainable_counts
    from trainer.common.reward_model import build_reward_model
    from trainer.common.tiny import build_tiny_tokenizer
    from trainer.ppo.config import PPOConfig
    from trainer.ppo.rollout import reward_model_fn
    from trainer.ppo.train import train_policy

    start = _rss_mib()
    config = _config(args.layers)
    torch.manual_seed(0)
    policy = LlamaForCausalLM(config)
    policy.generation_config.pad_token_id = 2
    value_model = build_reward_model(config, pad_token_id=2)
    reward_model = build_reward_model(config, pad_token_id=2).eval()
    if args.lora:
        policy = add_adapters(policy, _lora()).get_base_model()
        value_model = add_adapters(value_model, _lora(), head="score").get_base_model()
        reference = policy
    else:
        reference = LlamaForCausalLM(config)
        reference.load_state_dict(policy.state_dict())
    for model in {id(m): m for m in (policy, reference, value_model, reward_model)}.values():
        model.to(args.device)
    cfg = PPOConfig(
        steps=2, batch_size=args.batch_size, minibatches=1, grad_accum=1, epochs=1, response_length=args.response,
        generation_batch_size=args.batch_size, whiten_scores=False, max_grad_norm=None, temperature=1.0,
    )  # fmt: skip
    prompts = [[3 + (i * 7 + j) % 300 for j in range(args.prompt_tokens)] for i in range(args.batch_size)]
    history: list[dict[str, float]] = []
    train_policy(cfg, policy, reference, value_model, reward_model_fn(reward_model, batch_size=args.batch_size),
                 prompts, build_tiny_tokenizer(), on_metrics=lambda s, m: history.append(m))  # fmt: skip
    trainable, held = trainable_counts(policy)
    return {
        "peak_mib": _peak_mib(args.device, start), "step_s": history[-1]["perf/step_s"],
        "policy_params": held, "trainable_policy_params": trainable,
        "episode_tokens": args.batch_size * (args.prompt_tokens + args.response),
    }  # fmt: skip


def run_reward(args: argparse.Namespace) -> dict[str, Any]:
    """One epoch of reward-model training on synthetic K-way rankings."""
    from trainer.common.lora import add_adapters, trainable_counts
    from trainer.common.reward_model import build_reward_model
    from trainer.common.tiny import build_tiny_tokenizer
    from trainer.reward.config import RewardConfig
    from trainer.reward.train import train_reward_model

    start = _rss_mib()
    torch.manual_seed(0)
    model = build_reward_model(_config(args.layers), pad_token_id=2)
    if args.lora:
        model = add_adapters(model, _lora(), head="score").get_base_model()
    model.to(args.device)  # type: ignore[arg-type]
    tasks = make_tasks(args.tasks, args.k, args.prompt_tokens, args.response, seed=0)
    cfg = RewardConfig(batch_size=args.rm_batch_size, epochs=1, max_length=2 * (args.prompt_tokens + args.response))
    began = time.perf_counter()
    train_reward_model(cfg, model, build_tiny_tokenizer(), tasks)
    trainable, held = trainable_counts(model)
    return {"peak_mib": _peak_mib(args.device, start), "epoch_s": time.perf_counter() - began,
            "params": held, "trainable_params": trainable}  # fmt: skip


def run_case(argv: list[str], **overrides: Any) -> dict[str, Any]:
    """One case in a fresh interpreter (its own peak memory)."""
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in overrides.items() if not isinstance(v, bool)]
    extra += [f"--{k}" for k, v in overrides.items() if v is True]
    proc = subprocess.run([sys.executable, __file__, *argv, *extra, "--case"], capture_output=True, text=True,
                          check=False, env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"case {overrides} failed: {proc.stderr.strip().splitlines()[-3:]}")
    return json.loads(lines[-1])


def largest_model(base: dict[str, Any], bigger: dict[str, Any], more_tokens: dict[str, Any], tokens: int) -> float:
    """Policy parameters whose PPO run fits GPU_BYTES at `tokens` episode tokens per step, extrapolated linearly."""
    per_param = (bigger["peak_mib"] - base["peak_mib"]) * 2**20 / (bigger["policy_params"] - base["policy_params"])
    tokens_added = more_tokens["episode_tokens"] - base["episode_tokens"]
    per_token = (more_tokens["peak_mib"] - base["peak_mib"]) * 2**20 / tokens_added
    fixed = base["peak_mib"] * 2**20 - per_param * base["policy_params"] - per_token * base["episode_tokens"]
    return (GPU_BYTES - max(fixed, 0.0) - max(per_token, 0.0) * tokens) / per_param


def measure(argv: list[str], args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    for lora in (False, True):
        name = "lora" if lora else "full"
        ppo = run_case(argv, method="ppo", lora=lora)
        results[f"ppo_{name}"] = ppo
        results[f"reward_{name}"] = run_case(argv, method="reward", lora=lora)
        bigger = run_case(argv, method="ppo", lora=lora, layers=2 * args.layers)
        more = run_case(argv, method="ppo", lora=lora, batch_size=2 * args.batch_size)
        results[f"ppo_{name}_2x_layers"], results[f"ppo_{name}_2x_batch"] = bigger, more
        results[f"largest_ppo_policy_80gb_{name}"] = largest_model(ppo, bigger, more, args.gpu_tokens)
    return results


def print_table(r: dict[str, Any]) -> None:
    print(f"{'case':24}{'peak MiB':>12}{'seconds':>10}{'trainable':>14}{'of params':>14}")
    for method, key, count in (("ppo", "step_s", "policy_params"), ("reward", "epoch_s", "params")):
        for name in ("full", "lora"):
            c = r[f"{method}_{name}"]
            trainable = c["trainable_policy_params" if method == "ppo" else "trainable_params"]
            print(f"{method + ' ' + name:24}{c['peak_mib']:12.0f}{c[key]:10.2f}{trainable:14,}{c[count]:14,}")
    for method in ("ppo", "reward"):
        ratio = r[f"{method}_lora"]["peak_mib"] / r[f"{method}_full"]["peak_mib"]
        print(f"{method}: LoRA peak / full peak = {ratio:.2f}")
    for name in ("full", "lora"):
        print(f"estimate: largest policy for PPO on one 80 GB GPU, {name}: "
              f"{r[f'largest_ppo_policy_80gb_{name}'] / 1e9:.2f}B parameters")  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=4, help="of SmolLM2-135M's 30 layers")
    parser.add_argument("--batch-size", type=int, default=4, help="PPO episodes per step")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--response", type=int, default=16, help="PPO response tokens; reward completion words")
    parser.add_argument("--tasks", type=int, default=8, help="reward-model tasks in the epoch")
    parser.add_argument("--k", type=int, default=4, help="outputs per ranking")
    parser.add_argument("--rm-batch-size", type=int, default=2)
    parser.add_argument("--gpu-tokens", type=int, default=64 * 320, help="episode tokens per PPO step on the GPU")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--method", choices=["ppo", "reward"], help=argparse.SUPPRESS)
    parser.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()
    if args.case:
        print(json.dumps(run_ppo(args) if args.method == "ppo" else run_reward(args)))
        return
    results = measure(argv, args)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps({"lora_memory": results}))


if __name__ == "__main__":
    main()
