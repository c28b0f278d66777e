#!/usr/bin/env bash
# Document processing benchmark (prints figures; not a test). Starts its own
# redis-server, and for each WORKER_CONCURRENCY setting a fresh `conveyor api`
# and `conveyor worker` on free loopback ports with data under a temp dir.
# Uploads a mixed corpus (PER_FORMAT files of each of the 14 formats,
# generated once by processing_corpus) and measures:
#   - documents per second of the one worker process, from the first upload
#     to the last completion (the queue's completed+failed count, polled
#     every 20 ms)
#   - the worker's peak RSS (VmHWM at the end)
#   - the peak RSS of its extract children (child_rss samples
#     their VmHWM/VmRSS every 20 ms)
# Each figure is the median of RUNS runs.
#
#   bench/processing.sh        # RUNS=3 PER_FORMAT=5 CONCURRENCIES="1 2" BUILD=build
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
BIN=${CONVEYOR_BINARY:-$BUILD/src/app/conveyor}
CORPUS_GEN=$BUILD/bench/processing_corpus
CHILD_RSS=$BUILD/bench/child_rss
RUNS=${RUNS:-3}
PER_FORMAT=${PER_FORMAT:-5}
CONCURRENCIES=${CONCURRENCIES:-"1 2"}
for b in "$BIN" "$CORPUS_GEN" "$CHILD_RSS"; do
  [ -x "$b" ] || { echo "missing $b: ninja -C $BUILD conveyor processing_corpus child_rss"; exit 1; }
done
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "redis missing"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-bench-processing-XXXXXX")
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
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_ms() { date +%s%3N; }
kb_of() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

"$CORPUS_GEN" "$WORK/corpus" "$PER_FORMAT"
FILES=("$WORK"/corpus/*)
TOTAL=${#FILES[@]}

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes \
  --appendfsync everysec --save "" --daemonize no --logfile "$WORK/redis/log" &
PIDS+=($!)
wait_port "$REDIS_PORT"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

export JWT_SECRET=bench-secret-0123456789abcdef0123456789 REDIS_HOST=127.0.0.1 REDIS_PORT RATE_LIMIT_PER_MINUTE=0 UPLOAD_FSYNC=false
TOKEN=$("$BIN" token --user bench)

# One run: fresh data, api and worker; prints
# "docs_per_s worker_hwm_kb child_hwm_kb failed children_sampled".
run_once() {  # run_once CONCURRENCY
  rcli FLUSHALL >/dev/null
  rm -rf "$WORK/data"
  local port api worker sampler t0 t1 done_n failed hwm
  port=$(free_port)
  PORT=$port BIND_ADDRESS=127.0.0.1 DATA_DIR="$WORK/data" "$BIN" api >"$WORK/api.log" 2>&1 &
  api=$!
  PIDS+=($api)
  wait_port "$port" || { echo "api did not start:" >&2; cat "$WORK/api.log" >&2; return 1; }
  DATA_DIR="$WORK/data" WORKER_CONCURRENCY=$1 "$BIN" worker >"$WORK/worker.log" 2>&1 &
  worker=$!
  PIDS+=($worker)
  "$CHILD_RSS" "$worker" 20 >"$WORK/child_rss.out" &
  sampler=$!
  t0=$(now_ms)
  for f in "${FILES[@]}"; do
    curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -F session_id=bench -F "file=@$f" \
      "http://127.0.0.1:$port/api/chat/upload/async" || { echo "upload of $f failed" >&2; return 1; }
  done
  while :; do
    done_n=$(( $(rcli ZCARD bull:file-upload:completed) + $(rcli ZCARD bull:file-upload:failed) ))
    [ "$done_n" -ge "$TOTAL" ] && break
    sleep 0.02
  done
  t1=$(now_ms)
  failed=$(rcli ZCARD bull:file-upload:failed)
  hwm=$(kb_of "$worker" VmHWM)
  kill "$sampler"; wait "$sampler" || true
  kill "$worker" "$api"; wait "$worker" "$api" 2>/dev/null || true
  local child_hwm children
  child_hwm=$(sed -E 's/.*max_child_hwm_kb=([0-9]+).*/\1/' "$WORK/child_rss.out")
  children=$(sed -E 's/^children=([0-9]+).*/\1/' "$WORK/child_rss.out")
  awk -v n="$TOTAL" -v ms=$((t1 - t0)) -v w="$hwm" -v c="$child_hwm" -v f="$failed" -v k="$children" \
    'BEGIN {printf "%.2f %d %d %d %d\n", n * 1000 / ms, w, c, f, k}'
}

echo "conveyor processing benchmark: $(nproc) cores, $TOTAL documents ($PER_FORMAT of each of 14 formats), runs=$RUNS"
for c in $CONCURRENCIES; do
  rates=() whwm=() chwm=() fails=()
  for r in $(seq "$RUNS"); do
    run_once "$c" >"$WORK/run.out"
    read -r rate w ch f k <"$WORK/run.out"
    echo "  WORKER_CONCURRENCY=$c run $r: ${rate} docs/s worker_peak_rss=$((w / 1024))MiB" \
      "extract_child_peak_rss=$((ch / 1024))MiB failed=$f (extract children sampled: $k)"
    rates+=("$rate"); whwm+=("$w"); chwm+=("$ch"); fails+=("$f")
  done
  echo "WORKER_CONCURRENCY=$c median: $(printf '%s\n' "${rates[@]}" | median) docs/s per worker," \
    "worker peak RSS $(( $(printf '%s\n' "${whwm[@]}" | median) / 1024 ))MiB," \
    "extract child peak RSS $(( $(printf '%s\n' "${chwm[@]}" | median) / 1024 ))MiB," \
    "failed $(printf '%s\n' "${fails[@]}" | median)/$TOTAL"
done
