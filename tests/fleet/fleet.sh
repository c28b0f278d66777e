#!/usr/bin/env bash
# Fleet test: conveyor on several "hosts" that share no filesystem.
#
# Two API processes and two workers, each with a private DATA_DIR and
# TMPDIR, share only PostgreSQL, Redis (a master and a replica watched by
# three sentinels; every process finds the master through REDIS_SENTINELS)
# and an S3 server (s3rver, from tests/interop's locked npm packages, through
# tests/interop/s3_server.mjs; blobs
# under STORAGE_URL=s3://fleet/uploads). Then:
#   - USERS clients upload SMALL small files each, alternating between the
#     two APIs, while one client uploads a BIG_MIB file to the second API and
#     that API's RSS is sampled (it must stay flat: the upload streams into
#     a multipart upload);
#   - the first worker is SIGKILLed while it is running a job (workers
#     pause PROCESSING_DELAY_MS per job, so one is caught mid-job), and that
#     job must finish on the other worker;
#   - every accepted upload must reach `completed`; the status of every job
#     and a memory search of every session answer the same from either API;
#   - at the end the bucket holds no object and no host directory holds a
#     file (no blob, no temp file).
# Prints
#   fleet: accepted=N completed=N killed_jobs=N big_rss_growth_mib=N ...
# and exits non-zero when a check fails.
#
#   tests/fleet/fleet.sh [--users N] [--small N] [--big-mib N] [--keep]
#
# Every process it starts is recorded by PID and stopped by PID on exit.
set -uo pipefail

USERS=3
SMALL=8
BIG_MIB=200
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --users) USERS=$2; shift 2 ;;
    --small) SMALL=$2; shift 2 ;;
    --big-mib) BIG_MIB=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--users N] [--small N] [--big-mib N] [--keep]" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/support/procs.sh"
BIN=${CONVEYOR_BIN:-$ROOT/build/src/app/conveyor}
S3SERVER=$ROOT/tests/interop/s3_server.mjs
[ -x "$BIN" ] || { echo "fleet: no conveyor binary at $BIN (build target conveyor)" >&2; exit 2; }
[ -d "$ROOT/tests/interop/node_modules/s3rver" ] || { echo "fleet: s3rver is missing (npm ci in tests/interop)" >&2; exit 2; }
for tool in redis-server redis-sentinel redis-cli curl jq node psql python3; do
  command -v "$tool" >/dev/null || { echo "fleet: $tool is required" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/conveyor-fleet.XXXXXX)
chmod 755 "$WORK"
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/clients" "$WORK/s3"
echo "fleet: users=$USERS small=$SMALL big=${BIG_MIB}MiB dir=$WORK"

log() { echo "fleet: $(date -u +%H:%M:%S) $*"; }
fail() { echo "fleet: FAIL: $*" >&2; exit 1; }

declare -A PID=()
CLIENT_PIDS=()
PG_BIN=""
PG_AS=()
postmaster_pid() {
  local p=${PID[postgres]}
  if [ "${#PG_AS[@]}" -gt 0 ]; then
    local c
    c=$(ps -o pid= --ppid "$p" | head -1 | tr -d ' ')
    [ -n "$c" ] && p=$c
  fi
  echo "$p"
}
cleanup() {
  local rc=$?
  for p in "${CLIENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for role in "${!PID[@]}"; do
    [ "$role" = postgres ] && continue
    alive "${PID[$role]}" && kill -TERM "${PID[$role]}" 2>/dev/null
  done
  for role in "${!PID[@]}"; do
    [ "$role" = postgres ] && continue
    reap "${PID[$role]}" 10
  done
  if [ -n "${PID[postgres]:-}" ] && alive "${PID[postgres]}"; then
    kill -INT "$(postmaster_pid)" 2>/dev/null
    reap "${PID[postgres]}" 15
  fi
  for p in "${CLIENT_PIDS[@]}"; do reap "$p" 5; done
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    echo "fleet: logs and data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- PostgreSQL ------------------------------------------------------------------
PG_BIN=${CONVEYOR_PG_BINDIR:-$(pg_config --bindir 2>/dev/null)}
[ -x "$PG_BIN/postgres" ] || PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PG_BIN/postgres" ] || { echo "fleet: no PostgreSQL binaries" >&2; exit 2; }
mkdir -p "$WORK/pg"
if [ "$(id -u)" = 0 ]; then
  chown postgres "$WORK/pg"
  PG_AS=(runuser -u postgres --)
fi
PG_PORT=$(free_port)
"${PG_AS[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -A trust -U conveyor -E UTF8 --locale=C \
  > "$LOGS/initdb.log" 2>&1 || { cat "$LOGS/initdb.log" >&2; exit 2; }
"${PG_AS[@]}" "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
  -k "$WORK/pg" -c fsync=off -c max_connections=100 >> "$LOGS/postgres.log" 2>&1 &
PID[postgres]=$!
pg_up() { psql -h 127.0.0.1 -p "$PG_PORT" -U conveyor -d postgres -Atc 'select 1' >/dev/null 2>&1; }
await 60 pg_up || { tail "$LOGS/postgres.log" >&2; fail "PostgreSQL did not start"; }

# ---- Redis: master, replica, three sentinels -------------------------------------
MASTER_PORT=$(free_port)
REPLICA_PORT=$(free_port)
start_redis() {  # role port [replicaof-port]
  local role=$1 port=$2 dir=$WORK/$1
  mkdir -p "$dir"
  {
    echo "port $port"; echo "bind 127.0.0.1"; echo "dir $dir"; echo "save \"\""
    echo "appendonly yes"; echo "appendfsync everysec"; echo "daemonize no"
    [ -n "${3:-}" ] && echo "replicaof 127.0.0.1 $3"
  } > "$dir/redis.conf"
  redis-server "$dir/redis.conf" >> "$LOGS/$role.log" 2>&1 &
  PID[$role]=$!
}
start_redis master "$MASTER_PORT"
start_redis replica "$REPLICA_PORT" "$MASTER_PORT"
replica_synced() {
  redis-cli -p "$REPLICA_PORT" info replication 2>/dev/null | grep -q 'master_link_status:up'
}
await 30 replica_synced || fail "the replica did not sync with the master"
SENTINELS=()
for n in 1 2 3; do
  port=$(free_port)
  mkdir -p "$WORK/sentinel$n"
  cat > "$WORK/sentinel$n/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
dir $WORK/sentinel$n
sentinel monitor fleet 127.0.0.1 $MASTER_PORT 2
sentinel down-after-milliseconds fleet 2000
sentinel failover-timeout fleet 10000
sentinel parallel-syncs fleet 1
EOF
  redis-sentinel "$WORK/sentinel$n/sentinel.conf" >> "$LOGS/sentinel$n.log" 2>&1 &
  PID[sentinel$n]=$!
  SENTINELS+=("127.0.0.1:$port")
done
sentinels_agree() {
  local s
  for s in "${SENTINELS[@]}"; do
    redis-cli -p "${s#*:}" sentinel get-master-addr-by-name fleet 2>/dev/null | grep -qx "$MASTER_PORT" \
      || return 1
  done
}
await 30 sentinels_agree || fail "the sentinels do not name the master"

# ---- S3 (s3rver with the multipart calls it lacks: tests/interop/s3_server.mjs) --
S3_PORT=$(free_port)
node "$S3SERVER" "$S3_PORT" "$WORK/s3" fleet >> "$LOGS/s3rver.log" 2>&1 &
PID[s3rver]=$!
s3_up() { grep -q '^ready' "$LOGS/s3rver.log"; }
await 30 s3_up || { tail "$LOGS/s3rver.log" >&2; fail "s3rver did not start"; }
s3_keys() {  # number of objects in the bucket
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "S3RVER:S3RVER" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://127.0.0.1:$S3_PORT/fleet?list-type=2" | sed -n 's:.*<KeyCount>\([0-9]*\)</KeyCount>.*:\1:p'
}

s3_uploads() {  # multipart uploads in progress
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "S3RVER:S3RVER" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://127.0.0.1:$S3_PORT/fleet?uploads" | grep -o '<Upload>' | wc -l
}

# ---- conveyor ------------------------------------------------------------------
JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
unset REDIS_HOST REDIS_PORT REDIS_URL STORAGE_DIR DATA_DIR
export JWT_SECRET DATABASE_URL="postgres://conveyor@127.0.0.1:$PG_PORT/postgres"
export REDIS_SENTINELS=$(IFS=,; echo "${SENTINELS[*]}") REDIS_SENTINEL_MASTER=fleet
export STORAGE_URL=s3://fleet/uploads S3_ENDPOINT=http://127.0.0.1:$S3_PORT S3_REGION=us-east-1
export S3_ACCESS_KEY_ID=S3RVER S3_SECRET_ACCESS_KEY=S3RVER S3_FORCE_PATH_STYLE=true
export S3_PART_SIZE=$((8 << 20))
export BIND_ADDRESS=127.0.0.1 METRICS_PORT=0 RATE_LIMIT_PER_MINUTE=0 WORKER_CONCURRENCY=2
export MAX_UPLOAD_BYTES=$(((BIG_MIB + 16) << 20)) EXTRACT_MAX_INPUT_BYTES=$(((BIG_MIB + 16) << 20))
export EXTRACT_MEMORY_MB=$((BIG_MIB * 4 + 1024)) EXTRACT_TIMEOUT_MS=120000 EXTRACT_CPU_SECONDS=120
export PROCESSING_DELAY_MS=400 JOB_LOCK_MS=4000 STALLED_INTERVAL_MS=1000 RECONCILE_INTERVAL_MS=2000
export STORAGE_SWEEP_INTERVAL_MS=2000 SHUTDOWN_GRACE_MS=2000

"$BIN" migrate > "$LOGS/migrate.log" 2>&1 || { cat "$LOGS/migrate.log" >&2; fail "migrate failed"; }

declare -A API_PORT=()
start_host() {  # name role
  local name=$1 role=$2
  mkdir -p "$WORK/$name/data" "$WORK/$name/tmp"
  if [ "$role" = api ]; then
    API_PORT[$name]=$(free_port)
    DATA_DIR=$WORK/$name/data TMPDIR=$WORK/$name/tmp PORT=${API_PORT[$name]} \
      "$BIN" api >> "$LOGS/$name.log" 2>&1 &
  else
    DATA_DIR=$WORK/$name/data TMPDIR=$WORK/$name/tmp "$BIN" worker >> "$LOGS/$name.log" 2>&1 &
  fi
  PID[$name]=$!
}
start_host api1 api
start_host api2 api
start_host worker1 worker
start_host worker2 worker
for a in api1 api2; do
  api_up() { curl -sf -o /dev/null "http://127.0.0.1:${API_PORT[$a]}/readyz"; }
  await 60 api_up || { tail "$LOGS/$a.log" >&2; fail "$a did not become ready"; }
done
worker_running() { grep -q "worker running" "$LOGS/$1.log"; }
await 60 worker_running worker1 || { tail "$LOGS/worker1.log" >&2; fail "worker1 did not start"; }
await 60 worker_running worker2 || { tail "$LOGS/worker2.log" >&2; fail "worker2 did not start"; }
log "2 APIs, 2 workers, PostgreSQL, Redis via 3 sentinels, s3rver: up"

url() { echo "http://127.0.0.1:${API_PORT[$1]}"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- uploads ---------------------------------------------------------------------
# "<jobId> <user> <marker>" per accepted upload.
upload() {  # api user file marker
  local api=$1 user=$2 file=$3 marker=$4 token code job
  token=$("$BIN" token --user "u$user" --ttl 3600)
  code=$(curl -s -o "$file.resp" -w '%{http_code}' --max-time 300 \
    -H "Authorization: Bearer $token" -F "file=@$file;type=text/plain" -F "session_id=s$user" \
    "$(url "$api")/api/chat/upload/async")
  if [ "$code" = 202 ]; then
    job=$(jq -r '.data.jobId // empty' "$file.resp")
    [ -n "$job" ] && echo "$job $user $marker" >> "$WORK/accepted.txt"
  else
    echo "$marker $code $(cat "$file.resp")" >> "$WORK/refused.txt"
  fi
}

BIG=$WORK/clients/big.txt
python3 - "$BIG" "$BIG_MIB" <<'EOF'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
line = b"The fleet ledger records warehouse shipments, invoices and freight notes for every depot.\n"
with open(path, "wb") as f:
    f.write(b"Fleet manifest bigmarker: one very large report.\n")
    block = line * ((1 << 20) // len(line) + 1)
    left = mib << 20
    while left > 0:
        f.write(block[:left]); left -= len(block[:left])
EOF
base_rss=$(rss_kib "${PID[api2]}")
upload api2 0 "$BIG" bigmarker &
BIG_PID=$!
CLIENT_PIDS+=($BIG_PID)
peak_rss=$base_rss
(
  while alive "$BIG_PID"; do rss_kib "${PID[api2]}"; sleep 0.1; done
) > "$WORK/rss.txt" &
SAMPLER=$!

for ((u = 1; u <= USERS; u++)); do
  (
    for ((n = 1; n <= SMALL; n++)); do
      marker="fleetu${u}n${n}x$RANDOM"
      file=$WORK/clients/$marker.txt
      for ((i = 0; i < 6; i++)); do
        printf 'Paragraph %d: %s keeps the depot ledger, invoices and shipping notes.\n\n' "$i" "$marker"
      done > "$file"
      api=api$(( (n + u) % 2 + 1 ))
      upload "$api" "$u" "$file" "$marker"
    done
  ) &
  CLIENT_PIDS+=($!)
done

# SIGKILL worker1 while it runs a job: its "claimed" line without a
# "completed" one, checked again right before the kill.
running_on_worker1() {
  local id
  for id in $(sed -n 's/.*job \([0-9a-f-]\{36\}\) claimed.*/\1/p' "$LOGS/worker1.log"); do
    grep -q "job $id completed" "$LOGS/worker1.log" || { echo "$id"; return 0; }
  done
  return 1
}
caught() { running_on_worker1 > "$WORK/killed_job"; }
await 120 caught || fail "worker1 never ran a job"
kill -KILL "${PID[worker1]}"
reap "${PID[worker1]}" 10
KILLED_JOB=$(cat "$WORK/killed_job")
log "SIGKILLed worker1 while it ran job $KILLED_JOB"

for p in "${CLIENT_PIDS[@]}"; do reap "$p" 400; done
CLIENT_PIDS=()
reap "$SAMPLER" 5
peak_rss=$(sort -n "$WORK/rss.txt" | tail -1)
growth_mib=$(( (${peak_rss:-0} - base_rss) / 1024 ))
touch "$WORK/accepted.txt" "$WORK/refused.txt"
accepted=$(wc -l < "$WORK/accepted.txt")
refused=$(wc -l < "$WORK/refused.txt")
log "uploads: accepted=$accepted refused=$refused; api2 RSS during the big upload: ${base_rss} KiB -> peak ${peak_rss} KiB"
[ "$refused" = 0 ] || { cat "$WORK/refused.txt" >&2; fail "uploads were refused"; }
grep -q " bigmarker$" "$WORK/accepted.txt" || fail "the ${BIG_MIB} MiB upload was not accepted"

# ---- every job completes -----------------------------------------------------------
status_of() {  # api job user -> status JSON's data
  local token
  token=$("$BIN" token --user "u$3" --ttl 3600)
  curl -s -H "Authorization: Bearer $token" "$(url "$1")/api/chat/upload/status/$2" | jq -c '.data'
}
all_final() {
  local job user marker st open=0
  while read -r job user marker; do
    st=$(status_of api1 "$job" "$user" | jq -r '.status')
    case "$st" in
      completed) ;;
      failed) echo "fleet: job $job ($marker) failed: $(status_of api1 "$job" "$user")" >&2; return 2 ;;
      *) open=$((open + 1)) ;;
    esac
  done < "$WORK/accepted.txt"
  [ "$open" = 0 ]
}
settle() { all_final; local r=$?; [ $r = 2 ] && fail "a job failed"; return $r; }
await 300 settle || fail "not every accepted upload completed within 300 s"
completed=$accepted
log "all $accepted jobs completed"

grep -q "job $KILLED_JOB claimed" "$LOGS/worker2.log" \
  || fail "job $KILLED_JOB, killed on worker1, was not run by worker2"

# ---- either API answers the same ---------------------------------------------------
while read -r job user marker; do
  a=$(status_of api1 "$job" "$user")
  b=$(status_of api2 "$job" "$user")
  [ "$a" = "$b" ] || fail "status of $job differs: api1 $a, api2 $b"
done < "$WORK/accepted.txt"
searches=0
for ((u = 1; u <= USERS; u++)); do
  token=$("$BIN" token --user "u$u" --ttl 3600)
  marker=$(awk -v u="$u" '$2 == u {print $3; exit}' "$WORK/accepted.txt")
  job=$(awk -v u="$u" '$2 == u {print $1; exit}' "$WORK/accepted.txt")
  a=$(curl -s -H "Authorization: Bearer $token" "$(url api1)/api/chat/memory/search?session_id=s$u&q=$marker&limit=5" | jq -c '[.data.results[].jobId]')
  b=$(curl -s -H "Authorization: Bearer $token" "$(url api2)/api/chat/memory/search?session_id=s$u&q=$marker&limit=5" | jq -c '[.data.results[].jobId]')
  [ "$a" = "$b" ] || fail "search of s$u differs: api1 $a, api2 $b"
  echo "$a" | grep -q "$job" || fail "search of s$u for $marker does not find job $job: $a"
  searches=$((searches + 1))
done

# ---- nothing left behind -------------------------------------------------------------
bucket_empty() { [ "$(s3_keys)" = 0 ]; }
await 60 bucket_empty || fail "objects are left in the bucket: $(s3_keys)"
[ "$(s3_uploads)" = 0 ] || fail "multipart uploads are left in the bucket: $(s3_uploads)"
no_host_files() { [ -z "$(find "$WORK"/api? "$WORK"/worker? -type f 2>/dev/null | head -1)" ]; }
await 30 no_host_files || fail "files are left on a host: $(find "$WORK"/api? "$WORK"/worker? -type f | head)"

echo "fleet: accepted=$accepted completed=$completed killed_jobs=1 big_upload_mib=$BIG_MIB" \
  "big_rss_growth_mib=$growth_mib status_checks=$accepted searches=$searches bucket_objects=0" \
  "multipart_uploads=0 host_files=0"
limit_mib=$(( 4 * (S3_PART_SIZE >> 20) + 32 ))
[ "$growth_mib" -le "$limit_mib" ] || fail "api2 grew by $growth_mib MiB during the big upload (limit $limit_mib)"
echo "fleet: PASS"
