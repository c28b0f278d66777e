#!/usr/bin/env bash
# Upload-path benchmarks (prints figures; not a test). Starts its own
# redis-server and `conveyor api` on free loopback ports, with data under a
# temp dir on the same disk as the checkout, and runs for each UPLOAD_FSYNC
# setting:
#   - 64 KiB and 1 MiB uploads at 16 connections (wrk): rate, p50, p99
#   - status requests at 64 connections (wrk), of a pending job (no worker
#     runs); with BENCH_STATUS_COMPLETED=1 also of the same job completed
#     (a worker runs until it is)
#   - one large upload (default 1 GiB): MB/s and the API's peak RSS
#   - with fsync on: dd bs=1M count=SIZE conv=fdatasync on the same disk
# Each wrk figure is the median of RUNS runs; each line ends with the
# 1-minute load average when it began (the machine may be shared) and, for
# uploads, the rows per group-commit transaction the API reported.
#
# Uploads are emptied between runs (truncated), not deleted, and each API
# start gets a fresh data directory: on ext4 without a journal every file
# created within minutes of many deletions in the same block group makes the
# kernel's inode allocator scan the deleted inodes (recently_deleted in
# fs/ext4/ialloc.c), which would bill one run for the previous run's
# cleanup. Everything is deleted at exit, which in turn slows file creation
# for the next few minutes; with BENCH_KEEP_FILES=1 the files are only
# emptied and the directory is left (its path is printed) for later removal,
# so benchmarks can follow each other.
#
#   bench/upload.sh            # RUNS=3 DURATION=10s BIG_MIB=1024
#   BENCH_ONLY=status bench/upload.sh   # only the status line (fsync off)
#   BENCH_STATUS_COMPLETED=1 ...        # also polls the job once completed
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CONVEYOR_BINARY:-$PWD/build/src/app/conveyor}
BIG=${BIG_UPLOAD:-$PWD/build/bench/big_upload}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
BIG_MIB=${BIG_MIB:-1024}
FSYNC_MODES=${FSYNC_MODES:-"false true"}
BENCH_ONLY=${BENCH_ONLY:-}  # "status": only the status requests
case "$BENCH_ONLY" in "" | status) ;; *) echo "BENCH_ONLY: status or unset"; exit 1 ;; esac
[ "$BENCH_ONLY" = status ] && FSYNC_MODES=false
command -v wrk >/dev/null || { echo "wrk missing: scripts/setup.sh installs it"; exit 1; }
[ -x "$BIN" ] && { [ "$BENCH_ONLY" = status ] || [ -x "$BIG" ]; } || { echo "build first: scripts/build.sh"; exit 1; }

WORK=$(mktemp -d "$PWD/build/bench-XXXXXX")
PIDS=()
API_PID=""
empty_files() { find "$1" -type f -exec truncate -s 0 {} + 2>/dev/null || true; }
cleanup() {
  declare -F stop_api >/dev/null && stop_api
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ "${BENCH_KEEP_FILES:-0}" = 1 ]; then
    empty_files "$WORK"
    echo "files emptied, not deleted: $WORK"
  else
    rm -rf "$WORK"
  fi
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

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes \
  --appendfsync everysec --save "" --daemonize no --logfile "$WORK/redis/log" &
PIDS+=($!)
wait_port "$REDIS_PORT"

export JWT_SECRET=bench-secret-0123456789abcdef0123456789 REDIS_HOST=127.0.0.1 REDIS_PORT
# Limits off (one user uploads as fast as it can) unless given; with
# SHARED_LIMITS (the default) each upload still makes its limit check.
export RATE_LIMIT_PER_MINUTE=${RATE_LIMIT_PER_MINUTE:-0} UPLOAD_BYTES_PER_HOUR=${UPLOAD_BYTES_PER_HOUR:-0}
export UPLOADS_IN_FLIGHT_PER_USER=${UPLOADS_IN_FLIGHT_PER_USER:-0}
export MAX_UPLOAD_BYTES=$(( (BIG_MIB + 1) << 20 ))
export BENCH_TOKEN=$("$BIN" token --user bench)
export BENCH_BOUNDARY=benchBoundary0123456789

make_body() {  # make_body SIZE_BYTES FILE
  { printf -- '--%s\r\nContent-Disposition: form-data; name="session_id"\r\n\r\nbench\r\n' "$BENCH_BOUNDARY"
    printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="b.txt"\r\nContent-Type: text/plain\r\n\r\n' "$BENCH_BOUNDARY"
    head -c "$1" /dev/zero | tr '\0' 'a'
    printf -- '\r\n--%s--\r\n' "$BENCH_BOUNDARY"; } > "$2"
}
make_body 65536 "$WORK/body64k"
make_body 1048576 "$WORK/body1m"

API_STARTS=0
start_api() {  # start_api FSYNC
  stop_api
  [ -n "${DATA:-}" ] && empty_files "$DATA"
  API_STARTS=$((API_STARTS + 1))
  DATA="$WORK/data$API_STARTS"
  API_PORT=$(free_port)
  PORT=$API_PORT DATA_DIR="$DATA" UPLOAD_FSYNC=$1 "$BIN" api >"$WORK/api.log" 2>&1 &
  API_PID=$!
  wait_port "$API_PORT" || { echo "conveyor api did not start:"; cat "$WORK/api.log"; exit 1; }
}
stop_api() {
  if [ -n "$API_PID" ]; then kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; API_PID=""; fi
}

wrk_median() {  # wrk_median CONNS SCRIPT -> "rps p50 p99" medians, errors and requests summed
  local out rps=() p50=() p99=() errors=() requests=()
  for _ in $(seq "$RUNS"); do
    out=$(wrk -t2 -c"$1" -d"$DURATION" -s "$2" "http://127.0.0.1:$API_PORT" | grep '^BENCH')
    rps+=($(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$out"))
    p50+=($(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$out"))
    p99+=($(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out"))
    errors+=($(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$out"))
    requests+=($(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out"))
    # Keep the disk from filling between runs (see the top of this file).
    empty_files "$DATA/uploads"
  done
  echo "$(printf '%s\n' "${rps[@]}" | median) $(printf '%s\n' "${p50[@]}" | median) $(printf '%s\n' "${p99[@]}" | median) $(printf '%s\n' "${errors[@]}" | awk '{s+=$1} END {print s}') $(printf '%s\n' "${requests[@]}" | awk '{s+=$1} END {print s}')"
}

load1() { cut -d' ' -f1 /proc/loadavg; }
# "rows batches" of the API's group commit so far (GET /metrics).
commit_counts() {
  curl -s "http://127.0.0.1:$API_PORT/metrics" | awk '
    /^conveyor_upload_commit_rows_total/ {r = $2}
    /^conveyor_upload_commit_batches_total/ {b = $2}
    END {print r + 0, b + 0}'
}
api_cpu_ticks() { awk '{print $14 + $15}' "/proc/$API_PID/stat"; }
upload_line() {  # upload_line LABEL BODY_FILE
  local load c0 c1 t0 t1 rps p50 p99 errs reqs
  load=$(load1)
  read -r -a c0 < <(commit_counts)
  t0=$(api_cpu_ticks)
  read -r rps p50 p99 errs reqs < <(BENCH_BODY_FILE="$2" wrk_median 16 bench/upload_post.lua)
  t1=$(api_cpu_ticks)
  read -r -a c1 < <(commit_counts)
  # The API's CPU time per upload (user + system): on a shared machine a
  # steadier figure than the rate.
  echo "$1 c=16: ${rps} uploads/s p50=${p50}ms p99=${p99}ms non-2xx/errors=${errs}" \
    "api_cpu_us/upload=$(( (t1 - t0) * 1000000 / $(getconf CLK_TCK) / (reqs > 0 ? reqs : 1) ))" \
    "rows/commit=$(awk -v r=$((c1[0] - c0[0])) -v b=$((c1[1] - c0[1])) 'BEGIN {if (b > 0) printf "%.1f", r / b; else print "-"}')" \
    "load1=$load"
}

status_line() {  # status_line LABEL JOB_ID
  local load t0 t1 rps p50 p99 errs reqs
  load=$(load1)
  t0=$(api_cpu_ticks)
  read -r rps p50 p99 errs reqs < <(BENCH_JOB_ID=$2 wrk_median 64 bench/status_get.lua)
  t1=$(api_cpu_ticks)
  # The API's CPU time per request, as for uploads.
  echo "$1: ${rps} requests/s p50=${p50}ms p99=${p99}ms non-2xx/errors=${errs}" \
    "api_cpu_us/request=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
      'BEGIN {printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0)}')" \
    "load1=$load"
}

echo "conveyor upload benchmarks: $(nproc) cores, runs=$RUNS x $DURATION, load generator on the same machine"
for fsync in $FSYNC_MODES; do
  start_api "$fsync"
  if [ "$BENCH_ONLY" != status ]; then
    upload_line "fsync=$fsync upload 64KiB" "$WORK/body64k"
    upload_line "fsync=$fsync upload 1MiB " "$WORK/body1m"
  fi
  if [ "$fsync" = false ]; then
    JOB=$(curl -s -H "Authorization: Bearer $BENCH_TOKEN" -F session_id=bench -F "file=@README.md" \
      "http://127.0.0.1:$API_PORT/api/chat/upload/async" | sed -E 's/.*"jobId":"([^"]+)".*/\1/')
    status_line "status c=64" "$JOB"
    if [ "${BENCH_STATUS_COMPLETED:-0}" = 1 ]; then
      # The same job once a worker has completed it: repeated polls of a
      # final state (the API's status cache answers them).
      DATA_DIR="$DATA" "$BIN" worker >"$WORK/worker.log" 2>&1 &
      WORKER_PID=$!
      for _ in $(seq 600); do
        curl -s -H "Authorization: Bearer $BENCH_TOKEN" \
          "http://127.0.0.1:$API_PORT/api/chat/upload/status/$JOB" | grep -q '"completed"' && break
        sleep 0.1
      done
      kill "$WORKER_PID"; wait "$WORKER_PID" 2>/dev/null || true
      status_line "status (completed) c=64" "$JOB"
    fi
  fi
  [ "$BENCH_ONLY" = status ] && break
  # The large upload on a fresh API process, so its peak RSS is this upload's.
  start_api "$fsync"
  big=$("$BIG" "$API_PORT" "$BENCH_TOKEN" "$BIG_MIB")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$API_PID/status")
  echo "fsync=$fsync upload ${BIG_MIB}MiB: $big api_peak_rss=$((hwm / 1024))MiB"
  if [ "$fsync" = true ]; then
    dd_out=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count="$BIG_MIB" conv=fdatasync 2>&1 | tail -1)
    rm -f "$WORK/dd.bin"
    echo "dd bs=1M count=$BIG_MIB conv=fdatasync (same disk): $dd_out"
  fi
  stop_api
done
