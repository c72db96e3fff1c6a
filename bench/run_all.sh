#!/usr/bin/env bash
# Run the benchmarks one after the other (about 10 minutes on 2 cores); each updates its own section of
# bench/RESULTS.md. Add --diagnosis to also run bench/ack_variants.py (3 more minutes).
# Traffic goes to 127.0.0.1 only. PostgreSQL: $BENCH_DATABASE_URL or postgresql://root@127.0.0.1:5432/test
# (SQLite with one worker when it does not answer).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

run() { echo "== $*"; local t0=$SECONDS; "$PY" "$@"; echo "== $1 done in $((SECONDS - t0)) s"; echo; }

run bench/sandbox_latency.py
run bench/targets.py
run bench/work_floor.py
run bench/ack_latency.py
run bench/throughput.py
run bench/call_economy.py
run bench/audit_scale.py
run bench/memory.py
if [ "${1:-}" = "--diagnosis" ]; then
  run bench/ack_variants.py
fi
echo "results: bench/RESULTS.md"
