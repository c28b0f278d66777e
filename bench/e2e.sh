#!/usr/bin/env bash
# The pipeline end to end, conveyor beside the Node.js reference, same machine,
# same load: E2E_N (500) small text files uploaded by E2E_CONCURRENCY (32)
# clients, once all into one session of one user and once spread over 50
# users and sessions; each run waits until every job is completed and prints
# jobs/s and upload-to-completed p50/p99 (bench/e2e/client.mjs), plus the
# peak RSS and CPU seconds of the API and the worker.
#
#   bench/e2e.sh [RUNS]     RUNS rounds (default 1); each round runs every
#                           target and user count back to back
#   E2E_SPLIT=1 bench/e2e.sh [RUNS]
#                           the pipeline with one side removed at a time:
#                           first every file is uploaded with no worker
#                           running (upload side alone: uploads/s), then the
#                           worker starts and drains the queue while the
#                           client only polls (processing side alone: jobs/s
#                           from the worker's start, and its CPU seconds)
#
# Environment: PEER_DIR (default ../shared/peer: the reference and its
# harness, copied to a temp dir, never changed), E2E_TARGETS (default
# "conveyor node-reference-cluster"), E2E_USER_COUNTS (default "1 50"),
# CONVEYOR_BIN (default build/src/app/conveyor, built first), and anything
# the client reads (E2E_N, E2E_CONCURRENCY, ...). Extra settings for
# conveyor go through the environment as usual (e.g. WORKER_CONCURRENCY).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source scripts/env.sh
RUNS=${1:-1}
PEER_SRC=${PEER_DIR:-$ROOT/../shared/peer}
TARGETS=${E2E_TARGETS:-conveyor node-reference-cluster}
USER_COUNTS=${E2E_USER_COUNTS:-1 50}

if [ -z "${CONVEYOR_BIN:-}" ]; then
  scripts/build.sh conveyor >/dev/null
  CONVEYOR_BIN=$ROOT/build/src/app/conveyor
fi
# The targets run from the harness's copy: a relative path must not depend on it.
CONVEYOR_BIN=$(realpath "$CONVEYOR_BIN")
[ -x "$CONVEYOR_BIN" ] || { echo "e2e: CONVEYOR_BIN $CONVEYOR_BIN is not an executable" >&2; exit 2; }
export CONVEYOR_BIN

work=$(mktemp -d /tmp/conveyor-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$PEER_SRC" "$work/peer"
(cd "$work/peer/node-reference" && npm ci --no-audit --no-fund --silent >/dev/null 2>&1) ||
  { echo "e2e: npm ci of the Node reference failed" >&2; exit 1; }

# b - a, to one decimal.
delta() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

# The harness's helpers (lib.sh: redis, API and worker on fixed ports, a temp
# dir) with `target` loaded; call in a subshell.
load_target() {
  # shellcheck disable=SC1091
  source "$work/peer/harness/lib.sh"
  h_load_target "$work/peer/harness/targets/$1.env"
  if [ -n "${TARGET_SETUP_CMD:-}" ]; then (cd "$PEER_DIR" && eval "$TARGET_SETUP_CMD") >/dev/null 2>&1; fi
}

# One target, one user count: brings the stack up, runs the client, prints
# one line.
run_one() {
  local target=$1 users=$2
  (
    load_target "$target"
    h_up 2>/dev/null
    api0=$(h_cpu_s api) wrk0=$(h_cpu_s worker)
    rc=0
    out=$(E2E_USERS=$users node "$ROOT/bench/e2e/client.mjs") || rc=$?
    api_rss=$(h_peak_rss_kb api) wrk_rss=$(h_peak_rss_kb worker)
    api_cpu=$(delta "$api0" "$(h_cpu_s api)")
    wrk_cpu=$(delta "$wrk0" "$(h_cpu_s worker)")
    h_down 2>/dev/null
    echo "e2e target=$target $out client_rc=$rc api_peak_rss_mb=$(h_mb "$api_rss") worker_peak_rss_mb=$(h_mb "$wrk_rss") api_cpu_s=$api_cpu worker_cpu_s=$wrk_cpu load1=$(cut -d' ' -f1 /proc/loadavg)"
  )
}

# CPU seconds the whole machine spent so far outside niced processes (user,
# system, irq, softirq of /proc/stat): a background job at nice 19 is not
# counted, everything the benchmark runs is.
busy_s() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($2 + $4 + $7 + $8) / hz}' /proc/stat
}

# The same, in two phases: uploads with no worker, then the worker alone.
run_split() {
  local target=$1 users=$2
  (
    load_target "$target"
    h_up --no-worker 2>/dev/null
    jobs_file="$work/jobs-$target-$users.json"
    api0=$(h_cpu_s api) busy0=$(busy_s)
    rc=0
    up=$(E2E_USERS=$users E2E_PHASE=upload E2E_JOBS_FILE=$jobs_file node "$ROOT/bench/e2e/client.mjs") || rc=$?
    busy=$(delta "$busy0" "$(busy_s)")
    api_cpu=$(delta "$api0" "$(h_cpu_s api)")
    echo "e2e-split phase=upload target=$target $up client_rc=$rc api_cpu_s=$api_cpu machine_busy_s=$busy load1=$(cut -d' ' -f1 /proc/loadavg)"
    # No settling pause: the drain is timed from the worker's start, its
    # start-up included (the same for both targets).
    H_WORKER_SETTLE_S=0 h_start worker 2>/dev/null
    busy0=$(busy_s)
    rc=0
    out=$(E2E_USERS=$users E2E_PHASE=drain E2E_JOBS_FILE=$jobs_file node "$ROOT/bench/e2e/client.mjs") || rc=$?
    busy=$(delta "$busy0" "$(busy_s)")
    wrk_cpu=$(delta 0 "$(h_cpu_s worker)")  # the worker started with the drain
    h_down 2>/dev/null
    echo "e2e-split phase=drain target=$target $out client_rc=$rc worker_cpu_s=$wrk_cpu machine_busy_s=$busy load1=$(cut -d' ' -f1 /proc/loadavg)"
  )
}

for ((r = 1; r <= RUNS; r++)); do
  for users in $USER_COUNTS; do
    for target in $TARGETS; do
      if [ "${E2E_SPLIT:-0}" = 1 ]; then run_split "$target" "$users"; else run_one "$target" "$users"; fi
    done
  done
done
