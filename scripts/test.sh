#!/usr/bin/env bash
# The whole test suite: schemathesis against the running service (no 5xx, no response outside
# the OpenAPI schema), unit tests, then every integration test against a real Synapse
# (installed into .venv on first use) on SQLite, and again on Postgres when one is reachable.
#   CHATROOMS_TEST_POSTGRES_URL  Postgres to create test databases in
#                                (default postgres://postgres@127.0.0.1:5432/postgres)
#   CI=true                      an unreachable Postgres is an error instead of a skip
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/synapse.sh install

echo "== schemathesis against openapi/openapi.json"
scripts/schemathesis.sh

# The Matrix client with end-to-end encryption the encrypted-room test drives: its own
# workspace (see tools/e2ee-client/Cargo.toml), built before the tests so none waits on it.
E2EE_TARGET="${CARGO_TARGET_DIR:-$PWD/target}/e2ee-client"
CARGO_TARGET_DIR="$E2EE_TARGET" cargo build --quiet --manifest-path tools/e2ee-client/Cargo.toml
export CHATROOMS_E2EE_CLIENT="$E2EE_TARGET/debug/e2ee-client"

echo "== tests on SQLite"
# Not --all-targets: that would also run the benchmark, which belongs to `cargo bench`.
cargo test --lib --bins --tests

PG_URL="${CHATROOMS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CHATROOMS_TEST_POSTGRES_URL="$PG_URL"
if python3 - "$PG_URL" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
try:
    socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=2).close()
except OSError:
    sys.exit(1)
PY
then
  # Test databases of earlier runs (each test makes its own).
  if command -v psql >/dev/null; then
    psql "$PG_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'chatrooms_test_%'" 2>/dev/null |
      while read -r db; do psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
  fi
  echo "== integration tests on Postgres ($PG_URL)"
  CHATROOMS_TEST_DATABASE=postgres cargo test --test it
elif [ "${CI:-}" = "true" ]; then
  echo "Postgres at $PG_URL is unreachable; CI runs the suite on both databases" >&2
  exit 1
else
  echo "== Postgres at $PG_URL unreachable: skipped the Postgres run"
fi
