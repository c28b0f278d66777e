#!/usr/bin/env bash
# Profiles `conveyor api` under callgrind while wrk drives one route, and
# prints instructions per request (deterministic, unlike wall-clock figures
# on a shared machine) and the top functions. Counters are zeroed once the
# server is up, so start-up is not counted.
#
#   bench/profile.sh status|upload64k [DURATION]   # default 10s
# Env: CONVEYOR_BINARY (default build/src/app/conveyor), CONNS (16),
#      OUT (callgrind file; default a temp file that is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?status or upload64k}
DURATION=${2:-10s}
BIN=${CONVEYOR_BINARY:-$PWD/build/src/app/conveyor}
CONNS=${CONNS:-16}
WORK=$(mktemp -d /tmp/conveyor-prof-XXXXXX)
OUT=${OUT:-$WORK/callgrind.out}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK/data" "$WORK/redis"
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
wait_port() { for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes \
  --appendfsync everysec --save "" --daemonize no --logfile "$WORK/redis/log" &
PIDS+=($!)
wait_port "$REDIS_PORT"
export JWT_SECRET=bench-secret-0123456789abcdef0123456789 REDIS_HOST=127.0.0.1 REDIS_PORT RATE_LIMIT_PER_MINUTE=0 UPLOAD_FSYNC=false
export BENCH_TOKEN=$("$BIN" token --user bench)
export BENCH_BOUNDARY=benchBoundary0123456789
API_PORT=$(free_port)
PORT=$API_PORT DATA_DIR="$WORK/data" valgrind --tool=callgrind --separate-threads=no \
  --callgrind-out-file="$OUT" "$BIN" api >"$WORK/api.log" 2>&1 &
API_PID=$!
PIDS+=($API_PID)
wait_port "$API_PORT" || { cat "$WORK/api.log"; exit 1; }
if [ "$MODE" = status ]; then
  export BENCH_JOB_ID=$(curl -s -H "Authorization: Bearer $BENCH_TOKEN" -F session_id=bench \
    -F "file=@README.md" "http://127.0.0.1:$API_PORT/api/chat/upload/async" |
    sed -E 's/.*"jobId":"([^"]+)".*/\1/')
  SCRIPT=bench/status_get.lua
else
  { printf -- '--%s\r\nContent-Disposition: form-data; name="session_id"\r\n\r\nbench\r\n' "$BENCH_BOUNDARY"
    printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="b.txt"\r\nContent-Type: text/plain\r\n\r\n' "$BENCH_BOUNDARY"
    head -c 65536 /dev/zero | tr '\0' 'a'
    printf -- '\r\n--%s--\r\n' "$BENCH_BOUNDARY"; } > "$WORK/body"
  export BENCH_BODY_FILE=$WORK/body
  SCRIPT=bench/upload_post.lua
fi
# Warm up (reader connections, token cache), then count from zero.
wrk -t1 -c"$CONNS" -d2s -s "$SCRIPT" "http://127.0.0.1:$API_PORT" >/dev/null
callgrind_control -z "$API_PID" >/dev/null
out=$(wrk -t1 -c"$CONNS" -d"$DURATION" -s "$SCRIPT" "http://127.0.0.1:$API_PORT" | grep '^BENCH')
callgrind_control -d "$API_PID" >/dev/null
requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")
sleep 1
dump=$(ls -t "$OUT"* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "$out"
echo "mode=$MODE requests=$requests instructions=$total per_request=$((total / requests)) profile=$dump"
callgrind_annotate --inclusive=no "$dump" 2>/dev/null | sed -n '/^Ir/,$p' | head -40
