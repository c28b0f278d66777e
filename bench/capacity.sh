#!/usr/bin/env bash
# What one upload and one job cost each shared engine, for the capacity model
# in docs/scaling.md (prints figures; not a test).
#
# Starts its own PostgreSQL, redis-server, `conveyor api` and `conveyor
# worker` (and, with --s3, an s3rver holding the blobs), uploads N small text
# files (C at a time, U users and sessions), waits until every job is
# completed, and prints per upload+job:
#   - Redis: commands by name, CPU ms of redis-server, bytes in and out;
#   - PostgreSQL: transactions committed, rows written, WAL bytes, CPU ms of
#     every PostgreSQL process;
#   - S3 (--s3): requests by method and kind, from the S3 server's log
#     (tests/interop/s3_server.mjs: s3rver, locked in tests/interop);
#   - CPU ms of the API process and of the worker with its parser children.
#
#   bench/capacity.sh [--n N] [--concurrency C] [--users U] [--s3]
set -euo pipefail
N=400
C=16
USERS=20
S3=0
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N=$2; shift 2 ;;
    --concurrency) C=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --s3) S3=1; shift ;;
    *) echo "usage: $0 [--n N] [--concurrency C] [--users U] [--s3]" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/tests/support/procs.sh"
BIN=${CONVEYOR_BIN:-$ROOT/build/src/app/conveyor}
WORK=$(mktemp -d /tmp/conveyor-capacity.XXXXXX)
chmod 755 "$WORK"
declare -A PID=()
PG_AS=()
cleanup() {
  for r in api worker redis s3rver; do
    [ -n "${PID[$r]:-}" ] && kill -TERM "${PID[$r]}" 2>/dev/null && wait "${PID[$r]}" 2>/dev/null
  done
  if [ -n "${PID[postgres]:-}" ]; then
    local pm
    pm=$(ps -o pid= --ppid "${PID[postgres]}" | head -1 | tr -d ' ')
    kill -INT "${pm:-${PID[postgres]}}" 2>/dev/null
    wait "${PID[postgres]}" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# CPU ticks of a process and of its waited-for children; with "tree", of its
# live children too (PostgreSQL backends, the worker's extract server).
ticks() {
  local pid=$1 total=0 c
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")
  if [ "${2:-}" = tree ]; then
    for c in $(ps -o pid= --ppid "$pid"); do
      total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
  fi
  echo "$total"
}
HZ=$(getconf CLK_TCK)
# CAPACITY_RT=1: Redis and PostgreSQL run at a real-time priority (root
# only), so that on a shared machine other work does not preempt them in
# the middle of a command (SLOWLOG's times are wall-clock).
RT=""
[ "${CAPACITY_RT:-0}" = 1 ] && RT="chrt -f 10"

# PostgreSQL
PG_BIN=$(pg_config --bindir 2>/dev/null || true)
[ -x "$PG_BIN/postgres" ] || PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
mkdir -p "$WORK/pg"
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK/pg"; PG_AS=(runuser -u postgres --); fi
PG_PORT=$(free_port)
"${PG_AS[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -A trust -U conveyor -E UTF8 --locale=C >/dev/null
$RT "${PG_AS[@]}" "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
  -k "$WORK/pg" > "$WORK/pg.log" 2>&1 &
PID[postgres]=$!
psqlc() { psql -h 127.0.0.1 -p "$PG_PORT" -U conveyor -d postgres -Atc "$1"; }
await 60 psqlc 'select 1' >/dev/null
PGPM=$(ps -o pid= --ppid "${PID[postgres]}" | head -1 | tr -d ' ')
[ -n "$PGPM" ] || PGPM=${PID[postgres]}

# Redis
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
$RT redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" --appendonly "${CAPACITY_AOF:-yes}" \
  --appendfsync everysec > "$WORK/redis.log" 2>&1 &
PID[redis]=$!
rc() { redis-cli -p "$REDIS_PORT" "$@"; }
await 30 rc ping >/dev/null 2>&1

export JWT_SECRET=capacity-secret-0123456789abcdef0123456789 DATA_DIR=$WORK/data
export DATABASE_URL="postgres://conveyor@127.0.0.1:$PG_PORT/postgres"
export REDIS_HOST=127.0.0.1 REDIS_PORT BIND_ADDRESS=127.0.0.1 METRICS_PORT=0
export RATE_LIMIT_PER_MINUTE=0 UPLOADS_IN_FLIGHT_PER_USER=0 WORKER_CONCURRENCY=4
if [ "$S3" = 1 ]; then
  S3_PORT=$(free_port)
  mkdir -p "$WORK/s3"
  S3_REQUEST_LOG=1 node "$ROOT/tests/interop/s3_server.mjs" "$S3_PORT" "$WORK/s3" capacity \
    > "$WORK/s3rver.log" 2>&1 &
  PID[s3rver]=$!
  await 30 grep -q '^ready' "$WORK/s3rver.log"
  export STORAGE_URL=s3://capacity/uploads S3_ENDPOINT=http://127.0.0.1:$S3_PORT S3_REGION=us-east-1
  export S3_ACCESS_KEY_ID=S3RVER S3_SECRET_ACCESS_KEY=S3RVER S3_FORCE_PATH_STYLE=true
fi
"$BIN" migrate > "$WORK/migrate.log" 2>&1
API_PORT=$(free_port)
PORT=$API_PORT "$BIN" api > "$WORK/api.log" 2>&1 &
PID[api]=$!
"$BIN" worker > "$WORK/worker.log" 2>&1 &
PID[worker]=$!
await 60 curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/readyz"
await 60 grep -q "worker running" "$WORK/worker.log"

# One warm-up upload (scripts loaded, connections open, first-use costs paid).
mkdir -p "$WORK/files"
make_file() {
  local i=$1
  for ((p = 0; p < 6; p++)); do
    printf 'Paragraph %d of file %d: the depot ledger lists invoices, freight notes and pallet counts.\n\n' "$p" "$i"
  done > "$WORK/files/$i.txt"
}
for ((i = 0; i <= N; i++)); do make_file "$i"; done
for ((u = 0; u < USERS; u++)); do "$BIN" token --user "cap$u" --ttl 3600 > "$WORK/token$u"; done
up() {
  local i=$1 u=$(( $1 % USERS ))
  curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $(cat "$WORK/token$u")" \
    -F "file=@$WORK/files/$i.txt;type=text/plain" -F "session_id=s$u" \
    "http://127.0.0.1:$API_PORT/api/chat/upload/async"
}
export -f up
export WORK USERS API_PORT
[ "$(up 0)" = 202 ] || { echo "capacity: the warm-up upload failed" >&2; exit 1; }
done_jobs() { psqlc "select count(*) from \"FileUploadJob\" where status = 'completed'"; }
completed_are() { [ "$(done_jobs)" = "$1" ]; }
await 60 completed_are 1

snapshot() {
  rc info commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\).*/\1 \2 \3/p' > "$WORK/cmd.$1"
  rc info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f\n", s}' > "$WORK/rcpu.$1"
  rc info stats | tr -d '\r' | awk -F: '/^total_net_(input|output)_bytes:/ {print $2}' | paste -sd' ' > "$WORK/rnet.$1"
  psqlc "select xact_commit, tup_inserted + tup_updated + tup_deleted from pg_stat_database where datname = 'postgres'" > "$WORK/pg.$1"
  psqlc "select pg_current_wal_lsn()" > "$WORK/wal.$1"
  ticks "$PGPM" tree > "$WORK/pgcpu.$1"
  ticks "${PID[api]}" > "$WORK/apicpu.$1"
  ticks "${PID[worker]}" tree > "$WORK/wcpu.$1"
  [ "$S3" = 1 ] && grep -c '' "$WORK/s3rver.log" > "$WORK/s3.$1" || true
}
rc config set slowlog-log-slower-than 0 >/dev/null
rc config set slowlog-max-len 1000000 >/dev/null
rc slowlog reset >/dev/null
snapshot a
start=$(date +%s.%N)
seq 1 "$N" | xargs -P "$C" -I{} bash -c 'up {}' > "$WORK/codes"
accepted=$(grep -c '^202$' "$WORK/codes" || true)
await 600 completed_are "$((accepted + 1))" || { echo "capacity: jobs did not complete" >&2; exit 1; }
end=$(date +%s.%N)
sleep 1  # the last completions' trailing Redis writes (events, metrics)
snapshot b

per() { awk -v a="$1" -v b="$2" -v n="$accepted" 'BEGIN {printf "%.2f", (b - a) / n}'; }
echo "capacity: $accepted uploads+jobs (of $N; $C at a time, $USERS users), $(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.1f", e - s}') s, storage=$([ "$S3" = 1 ] && echo s3 || echo local), load $(cut -d' ' -f1 /proc/loadavg)"
echo "redis commands per upload+job (calls, and µs inside Redis; a script's time includes its commands'):"
join -a2 -e 0 -o 0,1.2,1.3,2.2,2.3 <(sort "$WORK/cmd.a") <(sort "$WORK/cmd.b") |
  awk -v n="$accepted" '{d = $4 - $2; if (d > 0) {t += d; printf "  %-16s %6.2f %8.1f us\n", $1, d / n, ($5 - $3) / n}} END {printf "  %-16s %6.2f\n", "total", t / n}' |
  sort -k2 -nr
echo "redis scripts per upload+job (from SLOWLOG at threshold 0, with their first key; wall time, so inflated on a loaded machine):"
rc --json slowlog get 1000000 | python3 -c '
import glob, hashlib, json, os, re, sys
n = int(sys.argv[1]); agg = {}
names = {}
for f in glob.glob(os.path.join(sys.argv[2], "src/queue/lua/*.lua")):
    names[hashlib.sha1(open(f, "rb").read()).hexdigest()[:8]] = os.path.basename(f)[:-4]
for entry in json.load(sys.stdin):
    args = entry[3]
    if not args or args[0].lower() != "evalsha" or len(args) < 4:
        continue
    first = args[3] if int(args[2]) > 0 else "-"
    first = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<job>", first)
    first = re.sub(r"(conveyor-limits):.*", r"\1:<user>", first)
    k = (names.get(args[1][:8], args[1][:8]), first)
    c, us = agg.get(k, (0, 0)); agg[k] = (c + 1, us + entry[2])
for (sha, key), (c, us) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"  {sha:24} {key:34} {c / n:6.2f} calls {us / n:8.1f} us ({us / c:6.1f} us each, wall)")
' "$accepted" "$ROOT"
read -r ia oa < "$WORK/rnet.a"; read -r ib ob < "$WORK/rnet.b"
echo "redis: cpu $(awk -v a="$(cat "$WORK/rcpu.a")" -v b="$(cat "$WORK/rcpu.b")" -v n="$accepted" 'BEGIN {printf "%.3f", (b - a) * 1000 / n}') ms, in $(per "$ia" "$ib") B, out $(per "$oa" "$ob") B per upload+job"
read -r xa ra < <(tr '|' ' ' < "$WORK/pg.a"); read -r xb rb < <(tr '|' ' ' < "$WORK/pg.b")
wal=$(psqlc "select pg_wal_lsn_diff('$(cat "$WORK/wal.b")', '$(cat "$WORK/wal.a")')")
echo "postgres: $(per "$xa" "$xb") commits, $(per "$ra" "$rb") rows written, $(per 0 "$wal") WAL bytes, cpu $(awk -v a="$(cat "$WORK/pgcpu.a")" -v b="$(cat "$WORK/pgcpu.b")" -v n="$accepted" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) * 1000 / hz / n}') ms per upload+job"
cpu_ms() { awk -v a="$(cat "$WORK/$1.a")" -v b="$(cat "$WORK/$1.b")" -v n="$accepted" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) * 1000 / hz / n}'; }
echo "api: cpu $(cpu_ms apicpu) ms per upload; worker (with parser children): cpu $(cpu_ms wcpu) ms per job"
if [ "$S3" = 1 ]; then
  echo "s3 requests per upload+job:"
  tail -n +"$(( $(cat "$WORK/s3.a") + 1 ))" "$WORK/s3rver.log" |
    sed -n 's/^s3 //p' | sort | uniq -c | awk -v n="$accepted" '{printf "  %-6s %-32s %6.2f\n", $2, $3, $1 / n}'
fi
