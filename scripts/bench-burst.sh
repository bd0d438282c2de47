#!/usr/bin/env bash
# Burst benchmark: fires N room creations at once (200 by default, fresh users to register) at
# a fresh service and Synapse, then reports the answers (201/202/other, latency), how long the
# rooms take to reach syncStatus synced, the homeserver calls by operation and outcome (timeouts,
# 403s) and Synapse's CPU. scripts/bench_burst.py says how.
#   scripts/bench-burst.sh [--bin target/release/chatrooms] [--rooms N] ... (--help lists them)
# Makes sure .venv (scripts/synapse.sh install) has aiohttp, then runs bench_burst.py in it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHATROOMS_VENV:-$ROOT/.venv}"

"$ROOT/scripts/synapse.sh" install
if ! "$VENV/bin/python" -c 'import aiohttp' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check aiohttp
fi
# -B: importing bench_scale leaves no scripts/__pycache__ behind.
exec "$VENV/bin/python" -B "$ROOT/scripts/bench_burst.py" "$@"
