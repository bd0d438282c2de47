#!/usr/bin/env bash
# Synapse for local runs and tests: installed from PyPI into .venv, configured for loopback only.
#   scripts/synapse.sh install              install the pinned Synapse into .venv (idempotent)
#   scripts/synapse.sh config DIR PORT      write DIR/homeserver.yaml, appservice.yaml, env (if missing)
#   scripts/synapse.sh start DIR            run Synapse in the foreground with DIR's config
#   scripts/synapse.sh wait URL             wait until the homeserver answers
# config reads (all optional): SYNAPSE_SERVER_NAME (localhost), SYNAPSE_BIND_ADDRESS (127.0.0.1),
# SYNAPSE_PUBLIC_BASEURL, SYNAPSE_SERVICE_URL (how the service reaches Synapse),
# SYNAPSE_POSTGRES_HOST/_USER/_PASSWORD/_DB (Postgres instead of SQLite), SYNAPSE_BCRYPT_ROUNDS.
set -euo pipefail

SYNAPSE_VERSION="1.163.2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHATROOMS_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

install() {
  if [ -x "$PY" ] && "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('matrix-synapse') != '$SYNAPSE_VERSION')" 2>/dev/null; then
    return 0
  fi
  echo "installing Synapse $SYNAPSE_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION"
}

random_secret() { "$PY" -c 'import secrets; print(secrets.token_hex(32))'; }

config() {
  local dir="$1" port="$2"
  local server_name="${SYNAPSE_SERVER_NAME:-localhost}"
  local prefix="${CHATROOMS_MATRIX_USER_PREFIX:-app_}"
  local bot="${CHATROOMS_MATRIX_BOT_LOCALPART:-chatrooms}"
  # Tests turn bcrypt down; a real deployment keeps Synapse's default cost.
  local bcrypt_rounds="${SYNAPSE_BCRYPT_ROUNDS:-12}"
  local bind="${SYNAPSE_BIND_ADDRESS:-127.0.0.1}"
  local public_baseurl="${SYNAPSE_PUBLIC_BASEURL:-http://127.0.0.1:$port/}"
  local service_url="${SYNAPSE_SERVICE_URL:-http://127.0.0.1:$port}"
  # Where Synapse pushes the rooms' events (the service's appservice endpoint); none by default.
  local appservice_url="null"
  if [ -n "${SYNAPSE_APPSERVICE_URL:-}" ]; then appservice_url="\"$SYNAPSE_APPSERVICE_URL\""; fi
  mkdir -p "$dir/media"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/homeserver.yaml" ]; then return 0; fi
  local as_token hs_token shared_secret macaroon form_secret
  as_token="$(random_secret)"; hs_token="$(random_secret)"; shared_secret="$(random_secret)"
  macaroon="$(random_secret)"; form_secret="$(random_secret)"
  "$PY" - "$dir/signing.key" <<'PYEOF'
import sys
from signedjson.key import generate_signing_key, write_signing_keys
with open(sys.argv[1], "w") as f:
    write_signing_keys(f, [generate_signing_key("a_chat")])
PYEOF
  cat > "$dir/appservice.yaml" <<YAML
id: chatrooms
url: $appservice_url
as_token: "$as_token"
hs_token: "$hs_token"
sender_localpart: "$bot"
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: "@${prefix}.*:${server_name//./\\\\.}"
  aliases:
    - exclusive: true
      regex: "#chatrooms_.*:${server_name//./\\\\.}"
  rooms: []
YAML
  cat > "$dir/log.yaml" <<YAML
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
root:
  level: ${SYNAPSE_LOG_LEVEL:-WARNING}
  handlers: [console]
disable_existing_loggers: false
YAML
  local database
  if [ -n "${SYNAPSE_POSTGRES_HOST:-}" ]; then
    database="database:
  name: psycopg2
  args:
    host: \"$SYNAPSE_POSTGRES_HOST\"
    user: \"${SYNAPSE_POSTGRES_USER:-synapse}\"
    password: \"${SYNAPSE_POSTGRES_PASSWORD:-}\"
    dbname: \"${SYNAPSE_POSTGRES_DB:-synapse}\"
    cp_min: 2
    cp_max: 10"
  else
    database="database:
  name: sqlite3
  args:
    database: \"$dir/homeserver.db\""
  fi
  cat > "$dir/homeserver.yaml" <<YAML
server_name: "$server_name"
public_baseurl: "$public_baseurl"
pid_file: "$dir/homeserver.pid"
listeners:
  - port: $port
    bind_addresses: ["$bind"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
$database
log_config: "$dir/log.yaml"
media_store_path: "$dir/media"
signing_key_path: "$dir/signing.key"
trusted_key_servers: []
suppress_key_server_warning: true
report_stats: false
enable_metrics: false
presence:
  enabled: false
url_preview_enabled: false
enable_registration: false
registration_shared_secret: "$shared_secret"
macaroon_secret_key: "$macaroon"
form_secret: "$form_secret"
bcrypt_rounds: $bcrypt_rounds
app_service_config_files: ["$dir/appservice.yaml"]
max_upload_size: 10M
# Mobile clients get short-lived access tokens and renew them with /refresh.
refreshable_access_token_lifetime: 5m
refresh_token_lifetime: 30d
# The service talks to this homeserver alone; admin calls and password logins are its own.
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_admin_redaction: {per_second: 1000, burst_count: 1000}
rc_joins:
  local: {per_second: 1000, burst_count: 1000}
  remote: {per_second: 1000, burst_count: 1000}
rc_invites:
  per_room: {per_second: 1000, burst_count: 1000}
  per_user: {per_second: 1000, burst_count: 1000}
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
YAML
  cat > "$dir/env" <<ENV
CHATROOMS_HOMESERVER_URL=$service_url
CHATROOMS_MATRIX_SERVER_NAME=$server_name
CHATROOMS_MATRIX_AS_TOKEN=$as_token
CHATROOMS_MATRIX_HS_TOKEN=$hs_token
CHATROOMS_MATRIX_BOT_LOCALPART=$bot
CHATROOMS_MATRIX_USER_PREFIX=$prefix
CHATROOMS_MATRIX_REGISTRATION_SHARED_SECRET=$shared_secret
ENV
}

start() {
  local dir="$1"
  exec "$PY" -m synapse.app.homeserver -c "$dir/homeserver.yaml"
}

wait_up() {
  local url="$1"
  for _ in $(seq 1 300); do
    if "$PY" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/_matrix/client/versions', timeout=1)" "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "homeserver at $url did not come up" >&2
  return 1
}

cmd="${1:-}"; shift || true
case "$cmd" in
  install) install ;;
  config) install; config "$@" ;;
  start) start "$@" ;;
  wait) wait_up "$@" ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
