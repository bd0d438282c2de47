#!/bin/sh
# Reads the appservice settings Synapse's init step wrote (CHATROOMS_ENV_FILE), without
# overriding variables the environment sets, then runs the service.
set -eu
if [ -n "${CHATROOMS_ENV_FILE:-}" ] && [ -f "$CHATROOMS_ENV_FILE" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] || continue
    eval "current=\${$key:-}"
    [ -n "$current" ] || export "$key=$value"
  done < "$CHATROOMS_ENV_FILE"
fi
exec chatrooms "$@"
