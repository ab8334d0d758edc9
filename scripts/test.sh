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
command -v pebble >/dev/null || need+=(pebble)
command -v curl >/dev/null || need+=(curl)
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
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest
# The codec and exchange tests once more as plain Python (EDGEWARD_NATIVE=0: the native build
# is not loaded), so the compiled and the interpreted data plane cannot drift apart.
EDGEWARD_NATIVE=0 .venv/bin/python -m pytest tests/http/h1 tests/http/test_message.py \
  tests/proxy/test_exchange_unit.py tests/http/h2/test_h2_server_unit.py
