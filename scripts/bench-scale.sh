#!/usr/bin/env bash
# Scale benchmark: builds a big database directly (100,000 rooms, 1,000,000 role entries by
# default) on SQLite and Postgres, starts a Synapse and the service, sends reads at a fixed rate
# and reports p50/p99 of get, list (50) and list (all), the longest read during a periodic pass,
# the service's peak memory and the homeserver's CPU. scripts/bench_scale.py says how.
#   scripts/bench-scale.sh [--bin target/release/chatrooms] [--rooms N] ... (--help lists them)
# Makes sure .venv (scripts/synapse.sh install) has aiohttp, then runs bench_scale.py in it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHATROOMS_VENV:-$ROOT/.venv}"

"$ROOT/scripts/synapse.sh" install
if ! "$VENV/bin/python" -c 'import aiohttp' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check aiohttp
fi
exec "$VENV/bin/python" "$ROOT/scripts/bench_scale.py" "$@"
