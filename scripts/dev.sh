#!/usr/bin/env bash
# Set everything up and run ranklab locally: SQLite, the bundled offline SmolLM2 model, demo data.
# Starts the web server on http://127.0.0.1:8000 and a background worker; Ctrl-C stops both.
# --simulate: also run a small simulated campaign (`ranklab simulate --demo`) on the SmolLM2 samples as the worker
# produces them, so the dashboards fill up; its report lands in data/simulate-report.json (log: data/simulate.log).
set -euo pipefail
cd "$(dirname "$0")/.."
simulate=0
for arg in "$@"; do
  case "$arg" in
    --simulate) simulate=1 ;;
    *) echo "usage: bash scripts/dev.sh [--simulate]" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

ranklab migrate
ranklab demo            # demo accounts, MT-Bench prompts, SmolLM2 as SFT v1, a queued sampling job (idempotent)

ranklab worker &
pids=$!
if [ "$simulate" = 1 ]; then
  mkdir -p data
  ranklab simulate --demo --url "http://127.0.0.1:${RANKLAB_PORT:-8000}" > data/simulate.log 2>&1 &
  pids="$pids $!"
  echo "==> simulated labelers start once the worker has sampled enough tasks (log: data/simulate.log)"
fi
trap 'kill $pids 2>/dev/null || true' EXIT INT TERM
echo "==> open http://${RANKLAB_HOST:-127.0.0.1}:${RANKLAB_PORT:-8000}/ (demo logins are printed above / in the README)"
ranklab serve --host "${RANKLAB_HOST:-127.0.0.1}" --port "${RANKLAB_PORT:-8000}"
