#!/usr/bin/env bash
# Every GPU figure the reward-model and PPO issues ask for, in one prepared run that fits the device tool's budget
# (about 10 minutes on an H200 at the sizes below). Results: one log and the JSON files under $OUT.
#
#   bash bench/gpu_wheels.sh                      # here, once: the wheels the GPU image lacks, into .whl/
#   device run: command "bash bench/gpu_checks.sh", carry [".whl"], timeout_s 600
#   TINY=1 DEVICE=cpu PYTHON=.venv/bin/python SITE=/tmp/trl112/site bash bench/gpu_checks.sh
#                                                 # the same steps on tiny models on a CPU (checks the script only)
#
# Each step has its own time limit, so one slow step costs only its share; a step that fails is logged and the
# next one runs. Record the figures in docs/benchmarks.md with the machine (nvidia-smi's line in the log).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/ranklab-gpu}"
mkdir -p "$out"
log="$out/gpu_checks.log"
device="${DEVICE:-cuda}"
dtype=bf16
[ "$device" = cpu ] && dtype=fp32  # bf16 is autocast on CUDA only
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
site="${SITE:-/tmp/ranklab-gpu-site}"  # SITE=folder: TRL 1.12.0 is already there, no wheels installed
if [ -z "${SITE:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || exit 1
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log its output, never stop the script
  local name=$1 limit=$2
  shift 2
  echo "==> $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$log"
  timeout "$limit" "$@" 2>&1 | grep -v -e "it/s]" -e "s/it]" | tee -a "$log"
  echo "==> $name: exit ${PIPESTATUS[0]}" | tee -a "$log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || nproc
  "$py" -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
} 2>&1 | tee -a "$log"

if [ -n "${TINY:-}" ]; then  # toy sizes: proves every step runs, measures nothing
  rm_135="--prompts 8 --prompt-tokens 16 --response-tokens 8 --batch-size 2 --k 4"
  rm_1b="$rm_135"
  ppo_135="--batch-size 4 --prompt-tokens 16 --response-length 4 --minibatches 2 --micro-batches 2 --steps 1 --epochs 1"
  ppo_1b="$ppo_135"
  rm_small=tiny policy_small=tiny big_rm=tiny big_policy=tiny sampler=tiny
  sample="--batch-size 4 --max-new-tokens 4 --n-prompts 4 --repeats 1"
  sft_135="--examples 16 --batch-size 4 --max-prompt-tokens 16 --max-answer-tokens 16"
  sft_1b="$sft_135"
  dpo_135="--prompts 8 --k 4 --prompt-tokens 16 --response-tokens 8 --batch-size 2"
  dpo_1b="$dpo_135"
  sft_small=tiny big_sft=tiny
  lora="--layers 1 --batch-size 2 --prompt-tokens 8 --response 4 --tasks 4"
else
  rm_135="--prompts 512 --prompt-tokens 512 --response-tokens 128 --batch-size 8 --trl-grad-accum 8"
  rm_1b="--prompts 128 --prompt-tokens 512 --response-tokens 128 --batch-size 4 --trl-grad-accum 8"
  ppo_135="--batch-size 64 --prompt-tokens 256 --response-length 64 --minibatches 4 --micro-batches 4 --steps 4"
  ppo_1b="--batch-size 64 --prompt-tokens 256 --response-length 64 --minibatches 4 --micro-batches 8 --steps 2"
  rm_small=smollm2-135m policy_small=smollm2-135m big_rm=1b big_policy=smollm2-1b sampler=smollm2-random
  sample="--batch-size 256 --max-new-tokens 64 --n-prompts 256 --repeats 2"
  sft_135="--examples 2048 --batch-size 16 --max-prompt-tokens 256 --max-answer-tokens 256"
  sft_1b="--examples 512 --batch-size 8 --max-prompt-tokens 256 --max-answer-tokens 256"
  dpo_135="--prompts 256 --k 9 --prompt-tokens 256 --response-tokens 64 --batch-size 4"
  dpo_1b="--prompts 64 --k 9 --prompt-tokens 256 --response-tokens 64 --batch-size 2"
  sft_small=smollm2-135m big_sft=1b
  lora="--layers 30 --batch-size 16 --prompt-tokens 256 --response 64 --tasks 32 --rm-batch-size 4"
fi
# shellcheck disable=SC2086  # the size strings are word lists on purpose
{
  # issue 20: the reward and PPO ranks under torchrun with NCCL (every GPU; one rank on one GPU), tiny models
  step ddp_collectives 120 "$py" bench/ddp_check.py --device "$device"
  step reward_135m 150 "$py" bench/reward_vs_trl.py --model "$rm_small" --device "$device" --dtype "$dtype" $rm_135 \
    --json "$out/reward_135m.json"
  step ppo_135m 150 "$py" bench/ppo_vs_trl.py --model "$policy_small" --device "$device" --dtype "$dtype" $ppo_135 \
    --trl-path "$site"
  step ppo_135m_static 90 "$py" bench/ppo_vs_trl.py --model "$policy_small" --device "$device" --dtype "$dtype" $ppo_135 \
    --trl-path "$site" --cache static
  step reward_1b 120 "$py" bench/reward_vs_trl.py --model "$big_rm" --device "$device" --dtype "$dtype" $rm_1b \
    --json "$out/reward_1b.json"
  step ppo_1b 120 "$py" bench/ppo_vs_trl.py --model "$big_policy" --device "$device" --dtype "$dtype" $ppo_1b \
    --trl-path "$site"
  # issues 18 and 19: SFT (padded and packed) against TRL's SFTTrainer, DPO on K-way rankings against DPOTrainer
  step sft_135m 90 "$py" bench/sft_vs_trl.py --model "$sft_small" --device "$device" --dtype "$dtype" $sft_135 \
    --json "$out/sft_135m.json"
  step sft_1b 90 "$py" bench/sft_vs_trl.py --model "$big_sft" --device "$device" --dtype "$dtype" $sft_1b \
    --json "$out/sft_1b.json"
  step dpo_135m 90 "$py" bench/dpo_vs_trl.py --model "$sft_small" --device "$device" --dtype "$dtype" $dpo_135 \
    --json "$out/dpo_135m.json"
  step dpo_1b 90 "$py" bench/dpo_vs_trl.py --model "$big_sft" --device "$device" --dtype "$dtype" $dpo_1b \
    --json "$out/dpo_1b.json"
  step sampling_static 60 "$py" bench/sampling.py --model "$sampler" --device "$device" --dtype "$dtype" $sample \
    --cache static
  # issue 20: peak memory and step time of PPO and the reward model with and without LoRA (SmolLM2-135M's shape)
  step lora_memory 120 "$py" bench/lora_memory.py --device "$device" $lora --json "$out/lora_memory.json"
}
grep -h "^{\"args\"" "$log" > "$out/ppo_runs.jsonl" || true
echo "==> done; results in $out" | tee -a "$log"
