#!/usr/bin/env bash
# Runs the service locally: a Synapse under data/synapse (installed into .venv, port 8008 by
# default) and the service on SQLite (data/chatrooms.db) at http://127.0.0.1:8080.
# Ctrl-C stops both. Variables already set in the environment win over the generated ones.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SYNAPSE_PORT="${SYNAPSE_PORT:-8008}"
SYNAPSE_DIR="data/synapse"
# Synapse pushes the rooms' events to the service (written into a new registration only).
export SYNAPSE_APPSERVICE_URL="${SYNAPSE_APPSERVICE_URL:-http://${CHATROOMS_BIND_ADDR:-127.0.0.1:8080}}"
scripts/synapse.sh config "$SYNAPSE_DIR" "$SYNAPSE_PORT"

synapse_pid=""
if ! scripts/synapse.sh wait "http://127.0.0.1:$SYNAPSE_PORT" 2>/dev/null; then
  scripts/synapse.sh start "$SYNAPSE_DIR" >"$SYNAPSE_DIR/synapse.log" 2>&1 &
  synapse_pid=$!
  trap '[ -n "$synapse_pid" ] && kill "$synapse_pid" 2>/dev/null' EXIT
  scripts/synapse.sh wait "http://127.0.0.1:$SYNAPSE_PORT"
  echo "Synapse running at http://127.0.0.1:$SYNAPSE_PORT (log: $SYNAPSE_DIR/synapse.log)"
fi

# Local secrets, made once and kept in data/local.env.
if [ ! -f data/local.env ]; then
  {
    echo "CHATROOMS_API_TOKENS=$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    echo "CHATROOMS_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    echo "CHATROOMS_CREDENTIALS_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  } > data/local.env
fi
while IFS='=' read -r key value; do
  [ -n "$key" ] && [ -z "${!key:-}" ] && export "$key=$value"
done < <(cat "$SYNAPSE_DIR/env" data/local.env)

echo "API token: $CHATROOMS_API_TOKENS   (header API-TOKEN; see data/local.env)"
echo "API docs:  http://${CHATROOMS_BIND_ADDR:-127.0.0.1:8080}/docs"
# Webhook receivers on this machine are fine locally (refused by default elsewhere).
export CHATROOMS_WEBHOOKS_ALLOW_PRIVATE="${CHATROOMS_WEBHOOKS_ALLOW_PRIVATE:-true}"
cargo run --quiet -- serve
