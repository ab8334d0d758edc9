#!/usr/bin/env bash
# Install edgeward into .venv and start the demo on 127.0.0.1:8080 (Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
# The data plane compiles in the background: the demo answers at once as plain Python and
# runs compiled from its next start (EDGEWARD_NATIVE=1 waits for the build instead).
EDGEWARD_NATIVE="${EDGEWARD_NATIVE:-background}" scripts/bootstrap.sh
exec .venv/bin/edgeward demo "$@"
