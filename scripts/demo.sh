#!/usr/bin/env bash
# Install edgeward into .venv and start the demo on 127.0.0.1:8080 (Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/edgeward demo "$@"
