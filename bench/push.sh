#!/usr/bin/env bash
# Push-notification benchmark (prints figures; not a test). Starts its own
# redis-server and `conveyor api` on free loopback ports (no worker: the
# bench finishes the jobs itself, row first and then the queue event, as a
# worker does) and runs build/bench/push_bench (bench/push.cc):
#   - event -> client latency p50/p99 with CONNS subscribed WebSockets
#   - the API's RSS with IDLE idle WebSocket connections
# RUNS runs (default 3); each line ends with the 1-minute load average.
#
#   bench/push.sh                      # CONNS=1000 IDLE=10000 GAP_US=2000
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CONVEYOR_BINARY:-$PWD/build/src/app/conveyor}
BENCH=${PUSH_BENCH:-$PWD/build/bench/push_bench}
CONNS=${CONNS:-1000}
IDLE=${IDLE:-10000}
GAP_US=${GAP_US:-2000}
RUNS=${RUNS:-3}
# Both ends hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-push.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }
  done
  return 1
}
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
  --daemonize no --logfile "$WORK/redis/log" &
PIDS+=($!)
wait_port "$REDIS_PORT"
export JWT_SECRET=bench-secret-0123456789abcdef0123456789 REDIS_HOST=127.0.0.1 REDIS_PORT
export RATE_LIMIT_PER_MINUTE=0 UPLOADS_IN_FLIGHT_PER_USER=0 MAX_CONNECTIONS_PER_CLIENT=0 MAX_CONNECTIONS=$((IDLE + CONNS + 1000))
export UPLOAD_FSYNC=false

for run in $(seq "$RUNS"); do
  DATA="$WORK/data$run"
  mkdir -p "$DATA"
  API_PORT=$(free_port)
  PORT=$API_PORT DATA_DIR="$DATA" "$BIN" api >"$WORK/api$run.log" 2>&1 &
  API_PID=$!
  PIDS+=("$API_PID")  # stopped by cleanup too if this run fails
  wait_port "$API_PORT" || { echo "conveyor api did not start:"; cat "$WORK/api$run.log"; exit 1; }
  load=$(cut -d' ' -f1 /proc/loadavg)
  "$BENCH" "$API_PORT" "$REDIS_PORT" "$DATA/conveyor.db" "$API_PID" "$JWT_SECRET" \
    "$CONNS" "$IDLE" "$GAP_US" | sed "s/\$/ [run $run, load $load]/"
  kill "$API_PID"; wait "$API_PID" 2>/dev/null || true
done
