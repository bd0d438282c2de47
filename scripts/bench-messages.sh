#!/usr/bin/env bash
# Messages benchmark: search p50/p99 over 10,000 messages in 100 rooms on a real Synapse, and the
# time from a Matrix client's report to the moderation queue. scripts/bench_messages.py says how.
#   scripts/bench-messages.sh [--bin target/release/chatrooms] [--messages N] ... (--help lists them)
# Makes sure .venv (scripts/synapse.sh install) has aiohttp, then runs bench_messages.py in it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHATROOMS_VENV:-$ROOT/.venv}"

"$ROOT/scripts/synapse.sh" install
if ! "$VENV/bin/python" -c 'import aiohttp' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check aiohttp
fi
# -B: importing the other benchmarks leaves no scripts/__pycache__ behind.
exec "$VENV/bin/python" -B "$ROOT/scripts/bench_messages.py" "$@"
