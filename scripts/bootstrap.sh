#!/usr/bin/env bash
# Create .venv with edgeward installed (editable). Usage: scripts/bootstrap.sh [EXTRAS]
# Works on a fresh Debian with Python 3.11 as root: installs python3-venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$py" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    "$py" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install -q -e ".[$extras]"
else
  .venv/bin/python -m pip install -q -e .
fi
# Compile the data plane with mypyc (about twice as fast); without a C toolchain edgeward
# runs the same code as plain Python. EDGEWARD_NATIVE=0 skips the build;
# EDGEWARD_NATIVE=background (scripts/demo.sh) builds in the background, so the gateway
# started now answers at once as plain Python and the next start runs compiled.
native() {
  .venv/bin/python -m pip install -q "mypy>=1.10"
  if ! command -v gcc >/dev/null || ! .venv/bin/python -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev >/dev/null || true
    fi
  fi
  .venv/bin/python -m edgeward.build_native || echo "edgeward: running as plain Python" >&2
}
case "${EDGEWARD_NATIVE:-1}" in
  0) ;;
  background)
    lock=src/edgeward/native-build.lock
    log=.venv/native-build.log
    # The lock names the job from now on: a gateway started meanwhile leaves the half-built
    # modules alone and runs as plain Python until its next start.
    (
      trap 'rm -f "$lock"' EXIT
      native
    ) >"$log" 2>&1 </dev/null &
    echo $! >"$lock"
    echo "edgeward: compiling the data plane in the background (about a minute, log: $log);" \
         "edgeward runs as plain Python until its next start after that" >&2
    ;;
  *) native ;;
esac
