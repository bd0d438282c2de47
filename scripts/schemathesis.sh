#!/usr/bin/env bash
# Fuzzes the running service with schemathesis, driven by the committed openapi/openapi.json and
# valid credentials: any 5xx, or a response that breaks the schema, fails the run.
# Starts its own Synapse and service (SQLite) in a temporary directory.
#   SCHEMATHESIS_EXAMPLES  test cases per operation and phase (default 50)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCHEMATHESIS_VERSION="4.32.5"
TOOLS="${CHATROOMS_TOOLS_VENV:-$PWD/.venv-tools}"
if ! "$TOOLS/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
scripts/synapse.sh install

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

hs_port="$(free_port)"
SYNAPSE_BCRYPT_ROUNDS=4 scripts/synapse.sh config "$work/synapse" "$hs_port"
scripts/synapse.sh start "$work/synapse" >"$work/synapse.log" 2>&1 &
pids+=($!)
scripts/synapse.sh wait "http://127.0.0.1:$hs_port"

cargo build --quiet --bin chatrooms
bin="${CARGO_TARGET_DIR:-target}/debug/chatrooms"
svc_port="$(free_port)"
token="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
(
  set -a
  . "$work/synapse/env"
  set +a
  export DATABASE_URL="sqlite://$work/chatrooms.db" CHATROOMS_BIND_ADDR="127.0.0.1:$svc_port" \
    CHATROOMS_API_TOKENS="$token" CHATROOMS_JWT_SECRET="schemathesis-jwt-secret-0123456789" RUST_LOG=warn
  exec "$bin" serve
) >"$work/service.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$svc_port/healthz', timeout=1)" 2>/dev/null && break
  sleep 0.1
done

status=0
# The run authenticates with the API token only. A request carrying a second credential is a
# 401 (one caller per request), so the fuzzer is shown only the api_token scheme: otherwise it
# fills Personal-Access-Token and Authorization itself and most requests stop at the 401.
spec="$work/openapi.json"
python3 - "$PWD/openapi/openapi.json" "$spec" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for item in doc["paths"].values():
    for operation in item.values():
        if isinstance(operation, dict) and "security" in operation:
            operation["security"] = [s for s in operation["security"] if "api_token" in s]
json.dump(doc, open(sys.argv[2], "w"))
PY
# Run inside the temporary directory: schemathesis keeps a cache in its working directory.
cd "$work"
"$TOOLS/bin/schemathesis" run "$spec" \
  --url "http://127.0.0.1:$svc_port" \
  --header "API-TOKEN: $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
  --seed 20261121 \
  --workers 1 \
  --request-timeout 60 \
  --generation-database none \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- service log (last 50 lines)"; tail -n 50 "$work/service.log"
  echo "--- Synapse log (errors)"; grep -E "ERROR|Traceback" -A8 "$work/synapse.log" | tail -n 60 || true
fi
exit "$status"
