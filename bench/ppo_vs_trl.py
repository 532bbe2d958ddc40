"""PPO episodes/s: ranklab's `train_policy` against TRL 1.12.0's `trl.experimental.ppo.PPOTrainer`.

    python bench/ppo_vs_trl.py --device cpu --steps 8 --batch-size 16 --response-length 16
    python bench/ppo_vs_trl.py --trl-path /tmp/trl112/site   # where `pip install --target` put trl==1.12.0
    # the issue's GPU settings (64 episodes, 256-token prompts, 64-token responses, 4 epochs x 4 minibatches):
    python bench/ppo_vs_trl.py --device cuda --dtype bf16 --model smollm2-135m --batch-size 64 --prompt-tokens 256 \
        --response-length 64 --minibatches 4 --micro-batches 4 --steps 4 --repeats 2
    python bench/ppo_vs_trl.py ... --model smollm2-1b   # the same at ~1.1B parameters

Both sides get the same random Llama policy (copied for the reference), the same reward model (also the value
model's initialisation: `--model tiny` a smaller one, the presets the policy's architecture), the same token-id
prompts (no chat template: TRL takes every pad = EOS id in a query for padding), response length, temperature,
epochs, learning rate and KL coefficient, and `--minibatches` optimizer steps per epoch over `--micro-batches`
accumulated micro-batches in all (TRL's `num_mini_batches` with gradient accumulation; ranklab's `minibatches`,
`grad_accum`). `--dtype bf16` on CUDA: both sides autocast to bf16 (TRL through Accelerate's mixed precision),
and ranklab keeps its frozen reference and reward model in bf16 as its job does; on CPU both run float32. Each side
runs in its own subprocess (peak RSS / CUDA memory are per side; with `--repeats` the sides alternate and each
keeps its fastest run) and reports episodes/s over all steps after a
warm-up step, split into generation, scoring (reward, reference, value and old log-prob passes) and update. TRL's
split is measured by wrapping its module-level `batch_generation`, `get_reward` and `forward`; TRL is skipped with a
note when `trl.experimental.ppo` cannot be imported.

Measured on the shared 2-core CPU box (load average 6-8, 1 thread per side; tiny Llama policy hidden 64, RM/value
hidden 32, 2 layers, vocabulary 384, 4 epochs; numbers swing with the load): batch 16, response 16, 2 micro-batches,
8 timed steps: ranklab 47-103 episodes/s, TRL 14-24, ratio 2.0x-7.1x over six runs (best-of-3: 58.7 vs 16.8,
3.5x). Batch 32, response 32, 4 micro-batches (best-of-2): 31.2 vs 12.8, 2.4x. Generation costs the same on both
(both call `generate` with a KV cache); the gap is the update (ranklab ~3-6x faster: no hidden-state outputs, no
full-softmax entropy in the loss pass, no Accelerate wrapper) while ranklab's scoring is ~2x slower (one
reference / value / old-log-prob pass per micro-batch, so the first update pass sees identical tensors).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer.common.tiny import build_tiny_tokenizer  # noqa: E402

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "labelers",
    "rank",
    "answers",
    "from",
    "best",
    "to",
    "worst",
]


# Random-weight architectures for the GPU runs: SmolLM2-135M's, and a ~1.1B one of the same family (SmolLM2-1.7B's
# widths with 16 layers). Reward and value models share the policy's architecture, as in the TRL baseline.
PRESETS: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
    ),
    "smollm2-1b": dict(
        vocab_size=49152, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=32, rope_theta=130000.0, tie_word_embeddings=True,
    ),
}  # fmt: skip


def model_configs(args: argparse.Namespace, vocab_size: int) -> tuple[Any, Any]:
    """(policy config, reward/value config) for `--model`."""
    from transformers import LlamaConfig

    common = dict(max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    if args.model in PRESETS:
        preset = LlamaConfig(**PRESETS[args.model], **common)
        return preset, preset
    common |= dict(vocab_size=vocab_size, num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2)
    policy = LlamaConfig(
        hidden_size=args.hidden, intermediate_size=2 * args.hidden, tie_word_embeddings=False, **common
    )
    reward = LlamaConfig(hidden_size=args.rm_hidden, intermediate_size=2 * args.rm_hidden, **common)
    return policy, reward


def frozen_in_bf16(args: argparse.Namespace) -> bool:
    """`--dtype bf16` on CUDA: autocast everywhere, and ranklab keeps its frozen models' weights in bf16."""
    return args.dtype == "bf16" and args.device.startswith("cuda")


def models(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Any]:
    """(tokenizer, policy, reference, reward model, value model), seeded, on the device.

    The tiny character tokenizer makes the prompts for every preset (its ids are valid in any larger vocabulary;
    sampled ids beyond it decode to nothing, which neither side's scoring reads: both score tokens).
    """
    from transformers import LlamaForCausalLM

    from trainer.common.reward_model import build_reward_model

    tokenizer = build_tiny_tokenizer()
    tokenizer.padding_side = "left"
    policy_config, rm_config = model_configs(args, len(tokenizer))
    torch.manual_seed(0)
    policy = LlamaForCausalLM(policy_config)
    reference = LlamaForCausalLM(policy_config)
    reference.load_state_dict(policy.state_dict())
    reward_model = build_reward_model(rm_config, pad_token_id=2)
    value_model = build_reward_model(rm_config, pad_token_id=2)
    value_model.load_state_dict(reward_model.state_dict())
    for model in (policy, reference):
        model.generation_config.pad_token_id = 2
    for model in (policy, reference, reward_model, value_model):
        model.to(args.device)
    return tokenizer, policy, reference, reward_model, value_model


def prompts(n: int, words: int, tokens: int = 0) -> list[list[int]]:
    """`n` prompts of random words (`words` at most), or of exactly `tokens` random token ids when `tokens` > 0."""
    import random

    tokenizer, rng = build_tiny_tokenizer(), random.Random(0)
    if tokens:
        return [[rng.randrange(3, len(tokenizer)) for _ in range(tokens)] for _ in range(n)]
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(words // 2, words))) for _ in range(n)]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ranklab(args: argparse.Namespace) -> dict[str, float]:
    from trainer.ppo.config import PPOConfig
    from trainer.ppo.rollout import reward_model_fn
    from trainer.ppo.train import train_policy

    tokenizer, policy, reference, reward_model, value_model = models(args)
    reward_model.eval()
    if frozen_in_bf16(args):
        reference.to(torch.bfloat16)
        reward_model.to(torch.bfloat16)
    cfg = PPOConfig(
        steps=args.steps + 1, batch_size=args.batch_size, minibatches=args.minibatches,
        grad_accum=args.micro_batches // args.minibatches, bf16=args.dtype == "bf16",
        epochs=args.epochs,
        learning_rate=args.lr, response_length=args.response_length, temperature=args.temperature,
        kl_coef=args.kl_coef, generation_batch_size=args.batch_size, whiten_scores=False, max_grad_norm=None,
        cache_implementation=args.cache,
    )  # fmt: skip
    history: list[dict[str, float]] = []
    train_policy(
        cfg, policy, reference, value_model, reward_model_fn(reward_model, batch_size=args.batch_size),
        prompts(args.prompts, args.prompt_words, args.prompt_tokens), tokenizer,
        on_metrics=lambda s, m: history.append(m),
    )  # fmt: skip
    timed = history[1:]  # after the warm-up step
    seconds = sum(m["perf/step_s"] for m in timed)
    return {
        "episodes_per_s": args.batch_size * len(timed) / seconds,
        "generation_s": sum(m["perf/generation_s"] for m in timed),
        "scoring_s": sum(m["perf/scoring_s"] for m in timed),
        "update_s": sum(m["perf/update_s"] for m in timed),
        "total_s": seconds,
        "peak_memory_mb": peak_memory_mb(args.device),
        "final_score": timed[-1]["objective/scores"],
    }


class _Timers:
    """Wraps TRL module functions to split its step time; steps are stamped by a callback."""

    def __init__(self) -> None:
        self.generation = self.scoring = 0.0
        self.step_marks: list[tuple[float, float, float]] = []

    def wrap(self, module: Any, name: str, kind: str, only_no_grad: bool = False) -> None:
        original = getattr(module, name)

        def timed(*a: Any, **k: Any) -> Any:
            if only_no_grad and torch.is_grad_enabled():
                return original(*a, **k)
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                setattr(self, kind, getattr(self, kind) + time.perf_counter() - started)

        setattr(module, name, timed)


def run_trl(args: argparse.Namespace) -> dict[str, float]:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as module

    tokenizer, policy, reference, reward_model, value_model = models(args)
    timers = _Timers()
    timers.wrap(module, "batch_generation", "generation")
    timers.wrap(module, "get_reward", "scoring")
    timers.wrap(module, "forward", "scoring", only_no_grad=True)

    class StepClock(TrainerCallback):
        def on_step_end(self, *a: Any, **k: Any) -> None:
            timers.step_marks.append((time.perf_counter(), timers.generation, timers.scoring))

    ids = prompts(args.prompts, args.prompt_words, args.prompt_tokens)
    dataset = Dataset.from_dict({"input_ids": ids})
    with tempfile.TemporaryDirectory() as out:
        config = PPOConfig(
            output_dir=out, report_to="none", save_strategy="no", logging_steps=10_000, disable_tqdm=True,
            use_cpu=args.device == "cpu", bf16=frozen_in_bf16(args), seed=0,
            per_device_train_batch_size=args.batch_size // args.micro_batches,
            gradient_accumulation_steps=args.micro_batches // args.minibatches,
            num_mini_batches=args.minibatches, num_ppo_epochs=args.epochs,
            total_episodes=(args.steps + 1) * args.batch_size,
            local_rollout_forward_batch_size=args.batch_size, response_length=args.response_length,
            temperature=args.temperature, kl_coef=args.kl_coef, learning_rate=args.lr, stop_token="eos",
            num_sample_generations=0, max_grad_norm=1e9,
        )  # fmt: skip
        trainer = PPOTrainer(
            args=config, processing_class=tokenizer, model=policy, ref_model=reference, reward_model=reward_model,
            value_model=value_model, train_dataset=dataset, eval_dataset=dataset.select(range(2)),
            callbacks=[StepClock()],
        )  # fmt: skip
        started = time.perf_counter()
        trainer.train()
    marks = [(started, 0.0, 0.0), *timers.step_marks]
    first, last = marks[1], marks[-1]
    steps = len(marks) - 2
    episodes = steps * config.batch_size
    total = last[0] - first[0]
    generation, scoring = last[1] - first[1], last[2] - first[2]
    return {
        "episodes_per_s": episodes / total,
        "generation_s": generation,
        "scoring_s": scoring,
        "update_s": total - generation - scoring,
        "total_s": total,
        "peak_memory_mb": peak_memory_mb(args.device),
        "trl_version": float(".".join(trl.__version__.split(".")[:2])),
    }


SIDES = {"ranklab": run_ranklab, "trl": run_trl}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=8, help="timed PPO steps (one warm-up step more is run)")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes per step")
    parser.add_argument("--model", choices=["tiny", *PRESETS], default="tiny", help="random-weight architecture")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast on CUDA")
    parser.add_argument("--minibatches", type=int, default=1, help="optimizer steps per epoch")
    parser.add_argument(
        "--micro-batches", type=int, default=2, help="micro-batches per epoch (a multiple of --minibatches)"
    )
    parser.add_argument("--prompt-tokens", type=int, default=0, help="prompts of exactly this many random tokens")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--response-length", type=int, default=16)
    parser.add_argument("--prompt-words", type=int, default=12)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rm-hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--cache", choices=["static", "dynamic"], default=None, help="ranklab generation KV cache")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per side")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating; the fastest is kept")
    parser.add_argument("--trl-path", default="/tmp/trl112/site", help="folder put first on PYTHONPATH for TRL")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.micro_batches % args.minibatches or args.batch_size % args.micro_batches:
        parser.error("--batch-size must split into --micro-batches, and those into --minibatches")
    return args


def run_side(side: str, argv: list[str], trl_path: str) -> dict[str, Any]:
    """One side in a fresh interpreter (separate peak memory); returns its JSON result or the error."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (trl_path, str(ROOT)) if p))
    proc = subprocess.run(
        [sys.executable, __file__, *argv, "--side", side], capture_output=True, text=True, env=env, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.side:
        print(json.dumps(SIDES[args.side](args)))
        return
    # Alternate the sides and keep each one's fastest run: on a shared machine the load changes minute to minute.
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeats):
        for side in ("ranklab", "trl"):
            result = run_side(side, argv, args.trl_path)
            best = results.get(side)
            if best is None or "error" in best or result.get("episodes_per_s", 0) > best.get("episodes_per_s", 0):
                results[side] = result
    keys = ("episodes_per_s", "generation_s", "scoring_s", "update_s", "total_s", "peak_memory_mb")
    print(f"{'':10}" + "".join(f"{k:>16}" for k in keys))
    for side, result in results.items():
        if "error" in result:
            print(f"{side:10}  not run: {result['error']}")
        else:
            print(f"{side:10}" + "".join(f"{result[k]:16.3f}" for k in keys))
    if all("error" not in r for r in results.values()):
        speedup = results["ranklab"]["episodes_per_s"] / results["trl"]["episodes_per_s"]
        print(f"ranklab / TRL episodes/s: {speedup:.2f}x")
    print(json.dumps({"args": vars(args), "results": results}))


if __name__ == "__main__":
    main()
