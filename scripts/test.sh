#!/usr/bin/env bash
# Install everything the tests need (Debian packages for the real Redis, etcd and Chromium the
# tests start, and the Python test dependencies in .venv), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]}: install them (as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
scripts/bootstrap.sh test
exec .venv/bin/python -m pytest "$@"
