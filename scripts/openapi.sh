#!/usr/bin/env bash
# Regenerates openapi/openapi.json from the handlers (the test suite fails when it is stale).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run --quiet -- openapi > openapi/openapi.json
echo "wrote openapi/openapi.json"
