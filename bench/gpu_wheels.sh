#!/usr/bin/env bash
# The wheels bench/gpu_checks.sh needs on the GPU image (Python 3.12, x86-64), which has torch, transformers and
# accelerate but not TRL 1.12.0 (the last with PPOTrainer) or datasets: downloaded into .whl/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
for spec in trl==1.12.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19; do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$spec"
done
ls -la .whl
