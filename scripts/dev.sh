#!/usr/bin/env bash
# Set everything up and run ranklab locally: SQLite, the bundled offline SmolLM2 model, demo data.
# Starts the web server on http://127.0.0.1:8000 and a background worker; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

ranklab migrate
ranklab demo            # demo accounts, MT-Bench prompts, SmolLM2 as SFT v1, a queued sampling job (idempotent)

ranklab worker &
worker_pid=$!
trap 'kill $worker_pid 2>/dev/null || true' EXIT INT TERM
echo "==> open http://${RANKLAB_HOST:-127.0.0.1}:${RANKLAB_PORT:-8000}/ (demo logins are printed above / in the README)"
ranklab serve --host "${RANKLAB_HOST:-127.0.0.1}" --port "${RANKLAB_PORT:-8000}"
