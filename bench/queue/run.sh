#!/usr/bin/env bash
# Compares conveyor's queue engine with bullmq 6.7.0 on the same workload:
# starts a private redis-server on a free port, runs queue_bench (C++) and
# bullmq_bench.mjs (Node) one after the other on a flushed database, and
# prints both and the conveyor/bullmq ratios.
#
#   bench/queue/run.sh [BUILD_DIR]   (default: build; needs `ninja queue_bench`
#                                     and `npm ci` in tests/interop)
# JOBS=20000 PRODUCERS=4 CONSUMERS=16 may be set in the environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/scripts/env.sh"
build="${1:-$root/build}"
bench="$build/bench/queue_bench"
jobs="${JOBS:-20000}"; producers="${PRODUCERS:-4}"; consumers="${CONSUMERS:-16}"
[[ -x "$bench" ]] || { echo "missing $bench (ninja -C $build queue_bench)" >&2; exit 2; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
dir="$(mktemp -d)"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --logfile "$dir/redis.log" &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

redis-cli -p "$port" flushall >/dev/null
c="$("$bench" --port "$port" --jobs "$jobs" --producers "$producers" --consumers "$consumers")"
redis-cli -p "$port" flushall >/dev/null
n="$(node "$here/bullmq_bench.mjs" --port "$port" --jobs "$jobs" --concurrency "$consumers")"
echo "conveyor: $c"
echo "bullmq:   $n"

python3 - "$c" "$n" <<'PY'
import json, sys
c, n = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rows = [
  ("add, one producer (jobs/s)", "add_rate_single", True),
  ("add, conveyor %d threads / bullmq addBulk (jobs/s)" % c["producers"], "add_rate_multi", True),
  ("process, %d consumers (jobs/s)" % c["consumers"], "process_rate", True),
  ("worker CPU per 10k jobs (s)", "cpu_s_per_10k", False),
  ("latency p50 timestamp->processedOn (ms)", "p50_ms", False),
  ("latency p99 timestamp->processedOn (ms)", "p99_ms", False),
]
w = max(len(r[0]) for r in rows)
print(f"\n{'metric':<{w}}  {'conveyor':>10}  {'bullmq':>10}  {'conveyor/bullmq':>15}")
for label, key, _ in rows:
  a, b = c[key], n[key]
  ratio = f"{a / b:.2f}" if b else "-"
  print(f"{label:<{w}}  {a:>10}  {b:>10}  {ratio:>15}")
PY
