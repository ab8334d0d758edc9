#!/usr/bin/env bash
# What observability costs on the data plane: proxybench twice with the same route, once with
# admin + access log off (benchmarks/metrics_off.yaml) and once on (metrics_on.yaml); prints
# both "ratio gateway/nginx" lines. Run from the project root:
#   bash benchmarks/metrics_cost.sh [--no-wait] [proxybench options, e.g. --rounds 3 --seconds 5]
# By default it first waits (up to 10 min) for the 1-minute load average to fall below 2, so
# other work on a shared machine does not pollute the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=../shared/bench/proxybench.py
LOG=/tmp/edgeward-metrics-cost-access.log
EDGEWARD=${EDGEWARD:-$(command -v edgeward || echo .venv/bin/edgeward)}

wait=1
if [[ "${1:-}" == "--no-wait" ]]; then wait=0; shift; fi
if (( wait )); then
  for _ in $(seq 120); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$load" 'BEGIN { exit !(l < 2) }' && break
    echo "# load average $load >= 2; waiting" >&2
    sleep 5
  done
fi

run() {  # $1 = off|on; the rest goes to proxybench
  local which=$1; shift
  rm -f "$LOG"
  echo "### metrics_$which (load $(cut -d' ' -f1-3 /proc/loadavg))"
  python3 "$BENCH" --peers nginx --gateway "$EDGEWARD run -c {config}" \
    --config "benchmarks/metrics_$which.yaml" "$@" | tee "/tmp/edgeward-metrics-cost-$which.out"
}

run off "$@"
run on "$@"
lines=$(wc -l < "$LOG" 2>/dev/null || echo 0)
rm -f "$LOG"
echo
echo "access log lines written during the 'on' run: $lines"
echo "off: $(grep '^ratio' /tmp/edgeward-metrics-cost-off.out)"
echo "on:  $(grep '^ratio' /tmp/edgeward-metrics-cost-on.out)"
