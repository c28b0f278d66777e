#!/usr/bin/env bash
# Chaos test: several users upload steadily while the API, the worker, Redis
# and PostgreSQL are SIGKILLed at random moments and restarted. At the end
# every upload that got a 202 must be completed, exactly once in effect, and
# STORAGE_DIR must be empty. Prints
#   accepted=N completed=N lost=0 duplicates=0 orphans=0 (+ informational fields)
# and exits non-zero otherwise.
#
#   tests/chaos/chaos.sh [--store sqlite|postgres] [--duration SECONDS]
#                        [--users N] [--seed N] [--keep] [--lenient]
#
# Real processes only: build/src/app/conveyor (CONVEYOR_BIN), redis-server
# (appendonly yes, appendfsync everysec, restarted from its AOF) and, with
# --store postgres, a PostgreSQL cluster of its own (initdb; SIGKILL of the
# postmaster and its backends, then a restart that runs crash recovery).
# Every process it starts is recorded by PID and stopped by PID on exit.
#
# What is checked (see README "Chaos test"):
#   lost        accepted uploads (202 with a job id) whose row is missing or
#               not completed once the run has settled
#   duplicates  rows sharing one upload's marker name (one upload, two rows)
#             + completed jobs whose memory is not exactly one file's chunks
#               0..n-1 with the chunk count of its content (effects applied
#               twice)
#             + reruns: completed jobs run again, i.e. a run that took the
#               job's row after its completion was committed, from the
#               worker's "job <id> claimed" and "job <id> completed" lines in
#               the order they were appended to the one worker log. Two runs
#               that overlapped (a worker lost its lock while another took
#               the job) may both commit: counted as `overlapped`, allowed,
#               their effects checked by the memory rule above.
#   stalled_out accepted uploads failed with BullMQ's "job stalled more than
#               allowable limit" (the worker was killed under the job more
#               than WORKER_MAX_STALLED_COUNT times)
#   failed_outage accepted uploads whose attempts were used up by database or
#               Redis outages (longer than WORKER_OUTAGE_WAIT_MS)
#               Both are final and shown to the client, but not completed:
#               counted as lost, unless --lenient / CHAOS_STRICT=0
#   orphans     regular files left under STORAGE_DIR (blobs and tmp/*.part)
#               once every job is final and the sweeper has run
set -uo pipefail

STORE=sqlite
DURATION=60
USERS=4
SEED=$RANDOM
KEEP=0
STRICT=${CHAOS_STRICT:-1}
while [ $# -gt 0 ]; do
  case "$1" in
    --store) STORE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --lenient) STRICT=0; shift ;;
    --strict) STRICT=1; shift ;;
    *) echo "usage: $0 [--store sqlite|postgres] [--duration S] [--users N] [--seed N] [--keep] [--lenient]" >&2
       exit 2 ;;
  esac
done
case "$STORE" in sqlite|postgres) ;; *) echo "--store: sqlite or postgres" >&2; exit 2 ;; esac
RANDOM=$SEED

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/support/procs.sh"
BIN=${CONVEYOR_BIN:-$ROOT/build/src/app/conveyor}
[ -x "$BIN" ] || { echo "chaos: no conveyor binary at $BIN (build target conveyor)" >&2; exit 2; }
for tool in redis-server redis-cli curl jq sqlite3; do
  command -v "$tool" >/dev/null || { echo "chaos: $tool is required" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/conveyor-chaos.XXXXXX)
chmod 755 "$WORK"
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/data" "$WORK/redis" "$WORK/clients"
STORAGE=$WORK/data/uploads
echo "chaos: store=$STORE duration=${DURATION}s users=$USERS seed=$SEED dir=$WORK"

log() { echo "chaos: $(date -u +%H:%M:%S) $*"; }


# ---- process bookkeeping: every PID we start, stopped by PID ---------------
declare -A PID=()   # role -> pid
CLIENT_PIDS=()
PG_EXTRA=()         # backends of a killed postmaster, reaped by PID


PG_BIN=""
PG_AS=()
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
    # Fast shutdown of the postmaster itself (runuser does not pass it on).
    kill -INT "$(postmaster_pid)" 2>/dev/null
    reap "${PID[postgres]}" 15 2>/dev/null
  fi
  for p in "${PG_EXTRA[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${CLIENT_PIDS[@]}"; do reap "$p" 5; done
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    echo "chaos: logs and data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Redis ---------------------------------------------------------------------
REDIS_PORT=$(free_port)
cat > "$WORK/redis/redis.conf" <<EOF
port $REDIS_PORT
bind 127.0.0.1
dir $WORK/redis
appendonly yes
appendfsync everysec
save ""
daemonize no
EOF
start_redis() {
  redis-server "$WORK/redis/redis.conf" >> "$LOGS/redis.log" 2>&1 &
  PID[redis]=$!
  local i
  for ((i = 0; i < 400; i++)); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
    alive "${PID[redis]}" || break
    sleep 0.05
  done
  echo "chaos: redis-server did not start" >&2; tail "$LOGS/redis.log" >&2; return 1
}

# ---- PostgreSQL ----------------------------------------------------------------
PG_PORT=""
if [ "$STORE" = postgres ]; then
  PG_BIN=${CONVEYOR_PG_BINDIR:-$(pg_config --bindir 2>/dev/null)}
  [ -x "$PG_BIN/postgres" ] || PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PG_BIN/postgres" ] || { echo "chaos: no PostgreSQL binaries" >&2; exit 2; }
  command -v psql >/dev/null || { echo "chaos: psql is required" >&2; exit 2; }
  mkdir -p "$WORK/pg"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$WORK/pg"
    PG_AS=(runuser -u postgres --)
  fi
  PG_PORT=$(free_port)
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -A trust -U conveyor -E UTF8 --locale=C \
    > "$LOGS/initdb.log" 2>&1 || { cat "$LOGS/initdb.log" >&2; exit 2; }
fi
start_postgres() {
  # exec: the PID we record is the postmaster's own.
  "${PG_AS[@]}" "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -k "$WORK/pg" -c fsync=off -c max_connections=100 >> "$LOGS/postgres.log" 2>&1 &
  PID[postgres]=$!
  local i
  for ((i = 0; i < 600; i++)); do
    psql -h 127.0.0.1 -p "$PG_PORT" -U conveyor -d postgres -Atc 'select 1' >/dev/null 2>&1 && return 0
    alive "${PID[postgres]}" || break
    sleep 0.05
  done
  echo "chaos: postgres did not start" >&2; tail "$LOGS/postgres.log" >&2; return 1
}
# The postmaster's PID (runuser forks it as a child of its own).
postmaster_pid() {
  local p=${PID[postgres]}
  if [ "${#PG_AS[@]}" -gt 0 ]; then
    local c
    c=$(ps -o pid= --ppid "$p" | head -1 | tr -d ' ')
    [ -n "$c" ] && p=$c
  fi
  echo "$p"
}
kill_postgres() {
  # A crash of the whole server: the postmaster and every backend, by PID.
  local pm kids
  pm=$(postmaster_pid)
  kids=$(ps -o pid= --ppid "$pm" | tr -d ' ')
  kill -KILL "$pm" $kids 2>/dev/null
  PG_EXTRA+=($kids)
  reap "${PID[postgres]}" 10 2>/dev/null
  local k
  for k in $kids; do
    while alive "$k"; do sleep 0.05; done
  done
  rm -f "$WORK/pg/data/postmaster.pid"
}

if [ "$STORE" = postgres ]; then
  DATABASE_URL="postgres://conveyor@127.0.0.1:$PG_PORT/postgres"
else
  DATABASE_URL="sqlite://$WORK/data/conveyor.db"
fi

# ---- conveyor ----------------------------------------------------------------
API_PORT=$(free_port)
JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export DATA_DIR=$WORK/data STORAGE_DIR=$STORAGE DATABASE_URL JWT_SECRET
export REDIS_HOST=127.0.0.1 REDIS_PORT PORT=$API_PORT BIND_ADDRESS=127.0.0.1
export RATE_LIMIT_PER_MINUTE=0 WORKER_CONCURRENCY=2
# Fast recovery so that a short run settles: stalled jobs within seconds,
# pending rows without a job re-added every 2 s, sweeps every 2 s.
export JOB_LOCK_MS=4000 STALLED_INTERVAL_MS=1000 RECONCILE_INTERVAL_MS=2000 METRICS_PORT=0
export STORAGE_SWEEP_INTERVAL_MS=2000 STORAGE_TEMP_MAX_AGE_MS=15000 STORAGE_ORPHAN_MIN_AGE_MS=15000
export BODY_IDLE_TIMEOUT_MS=5000 SHUTDOWN_GRACE_MS=2000

start_api() {
  "$BIN" api >> "$LOGS/api.log" 2>&1 &
  PID[api]=$!
  local i
  for ((i = 0; i < 600; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$API_PORT/healthz" && return 0
    alive "${PID[api]}" || { sleep 0.2; "$BIN" api >> "$LOGS/api.log" 2>&1 & PID[api]=$!; }
    sleep 0.05
  done
  echo "chaos: API did not start" >&2; tail "$LOGS/api.log" >&2; return 1
}
start_worker() {
  "$BIN" worker >> "$LOGS/worker.log" 2>&1 &
  PID[worker]=$!
}

start_role() {
  case "$1" in
    redis) start_redis ;;
    postgres) start_postgres ;;
    api) start_api ;;
    worker) start_worker ;;
  esac
}
kill_role() {
  case "$1" in
    postgres) kill_postgres ;;
    *) kill -KILL "${PID[$1]}" 2>/dev/null; reap "${PID[$1]}" 10 2>/dev/null ;;
  esac
}

start_redis || exit 1
[ "$STORE" = postgres ] && { start_postgres || exit 1; }
"$BIN" migrate >> "$LOGS/migrate.log" 2>&1 || { cat "$LOGS/migrate.log" >&2; exit 1; }
start_api || exit 1
start_worker

# ---- clients -----------------------------------------------------------------
# Each user uploads one file after another until $WORK/stop exists. A file's
# name is its marker (unique per upload); its content is a few paragraphs
# (small) or, every fourth, ~1.5 MB sent slowly (so that kills land mid-body). An upload is
# accepted when the answer is 202 with a job id: "<jobId> <marker> <size>"
# goes to accepted.txt.
client() {
  local user=$1 token n=0 file marker code body kind
  token=$("$BIN" token --user "$user" --ttl 86400)
  while [ ! -e "$WORK/stop" ]; do
    n=$((n + 1))
    marker="u${user}-n${n}-$RANDOM$RANDOM"
    file="$WORK/clients/$marker.txt"
    if (( n % 4 == 0 )); then
      kind=big
      { for ((i = 0; i < 1500; i++)); do
          printf 'Paragraph %d of %s: the quick brown fox jumps over the lazy dog, %0900d\n\n' "$i" "$marker" 0
        done; } > "$file"
      rate=(--limit-rate 600k)
    else
      kind=small
      { for ((i = 0; i < 12; i++)); do
          printf 'Paragraph %d of %s: invoices, shipping notes and the warehouse ledger of week %d.\n\n' "$i" "$marker" "$i"
        done; } > "$file"
      rate=()
    fi
    code=$(curl -s -o "$file.resp" -w '%{http_code}' --max-time 30 "${rate[@]}" \
      -H "Authorization: Bearer $token" -F "file=@$file;type=text/plain" -F "session_id=s-$user" \
      "http://127.0.0.1:$API_PORT/api/chat/upload/async" 2>/dev/null)
    if [ "$code" = 202 ]; then
      body=$(jq -r '.data.jobId // empty' "$file.resp" 2>/dev/null)
      [ -n "$body" ] && echo "$body $marker $kind" >> "$WORK/accepted.$user.txt"
    else
      echo "$marker $code" >> "$WORK/refused.$user.txt"
      sleep 0.$((RANDOM % 3))
    fi
    rm -f "$file" "$file.resp"
    sleep 0.0$((RANDOM % 10))
  done
}
for ((u = 1; u <= USERS; u++)); do
  client "$u" &
  CLIENT_PIDS+=($!)
done

# ---- chaos -------------------------------------------------------------------
ROLES=(api worker redis)
[ "$STORE" = postgres ] && ROLES+=(postgres)
declare -A KILLS=()
END=$((SECONDS + DURATION))
while ((SECONDS < END)); do
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  role=${ROLES[$((RANDOM % ${#ROLES[@]}))]}
  log "SIGKILL $role"
  kill_role "$role"
  KILLS[$role]=$(( ${KILLS[$role]:-0} + 1 ))
  sleep "0.$((RANDOM % 10))"
  start_role "$role" || exit 1
  # A worker killed while Redis or the API was down is restarted here too.
  alive "${PID[worker]}" || start_worker
  alive "${PID[api]}" || start_api || exit 1
done
touch "$WORK/stop"
for p in "${CLIENT_PIDS[@]}"; do reap "$p" 60; done
CLIENT_PIDS=()
log "kills: $(for r in "${!KILLS[@]}"; do printf '%s=%s ' "$r" "${KILLS[$r]}"; done)"

# ---- settle --------------------------------------------------------------------
sql() {
  if [ "$STORE" = postgres ]; then
    psql -h 127.0.0.1 -p "$PG_PORT" -U conveyor -d postgres -qAtF ' ' -c "$1"
  else
    sqlite3 -separator ' ' "$WORK/data/conveyor.db" "$1"
  fi
}
cat "$WORK"/accepted.*.txt 2>/dev/null | sort -u > "$WORK/accepted.txt"
ACCEPTED=$(wc -l < "$WORK/accepted.txt")
log "accepted $ACCEPTED uploads; waiting for every job to be final"
# A long run leaves a backlog: wait as long as jobs keep finishing, and give
# up only when none has for CHAOS_SETTLE_S seconds (90 by default).
SETTLE_S=${CHAOS_SETTLE_S:-90}
last_open=-1
progress_at=$SECONDS
while ((SECONDS - progress_at < SETTLE_S)); do
  open=$(sql "SELECT count(*) FROM \"FileUploadJob\" WHERE \"status\" IN ('pending','processing')" 2>/dev/null)
  [ "$open" = 0 ] && break
  if [ -n "$open" ] && [ "$open" != "$last_open" ]; then last_open=$open; progress_at=$SECONDS; fi
  sleep 0.5
done
deadline=$((SECONDS + SETTLE_S))
log "open jobs: ${open:-?}; waiting for STORAGE_DIR to empty"
files_left() { find "$STORAGE" -type f | wc -l; }
while ((SECONDS < deadline)) && [ "$(files_left)" != 0 ]; do sleep 0.5; done

# ---- verdict -------------------------------------------------------------------
sql "SELECT \"id\", \"status\", \"originalName\", coalesce(\"fileId\", '-'), replace(coalesce(\"error\", '-'), ' ', '_') FROM \"FileUploadJob\"" \
  | sort > "$WORK/rows.txt"
sql "SELECT \"jobId\", count(*), count(DISTINCT \"fileId\"), max(\"chunkIndex\"), min(\"fileId\") FROM \"MemoryChunk\" GROUP BY \"jobId\"" \
  | sort > "$WORK/chunks.txt"
# The worker's runs in the order they were logged (every worker appends to
# one file): "claimed <id>" when a run took the row, "completed <id>" when a
# completion was committed.
grep -ho 'worker: job [0-9a-f-]* \(claimed\|completed\)' "$LOGS/worker.log" \
  | awk '{print $4, $3}' > "$WORK/runs.txt"

# What the sweepers removed (informational: proves the cut-off uploads of
# killed APIs were there and went).
cat "$LOGS"/api.log "$LOGS"/worker.log \
  | sed -n 's/.*storage sweep: removed \([0-9]*\) temp files, \([0-9]*\) blobs without a row, \([0-9]*\) blobs of final.*/\1 \2 \3/p' \
  | awk '{t += $1; o += $2; f += $3} END {printf "swept_temps=%d swept_orphans=%d swept_finals=%d\n", t, o, f}' \
  > "$WORK/swept.txt"

python3 - "$WORK" "$(files_left)" "$STRICT" <<'EOF'
import sys, collections
work, orphans, strict = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
STALLED = "job_stalled_more_than_allowable_limit"

rows = {}
names = collections.Counter()
for line in open(f"{work}/rows.txt"):
    jid, status, name, file_id, error = line.split()
    rows[jid] = (status, name, file_id, error)
    names[name.rsplit(".", 1)[0]] += 1
chunks = {}
for line in open(f"{work}/chunks.txt"):
    jid, n, files, max_index, file_id = line.split()
    chunks[jid] = (int(n), int(files), int(max_index), file_id)
# Per job: completions committed, and runs that took the row after the
# first completion was committed (a completed job run again).
completions = collections.Counter()
runs_after_completion = collections.Counter()
for line in open(f"{work}/runs.txt"):
    event, jid = line.split()
    if event == "completed":
        completions[jid] += 1
    elif completions[jid] > 0:
        runs_after_completion[jid] += 1
accepted = [l.split() for l in open(f"{work}/accepted.txt")]
completed = lost = dup_rows = dup_effects = reruns = stalled_out = overlapped = failed_outage = 0
by_kind = collections.defaultdict(set)
problems = []
for jid, marker, kind in accepted:
    row = rows.get(jid)
    if row is not None and row[0] == "failed" and row[3].endswith(STALLED) and not strict:
        # Past WORKER_MAX_STALLED_COUNT: the worker died under this job too often,
        # so it failed for good and the client sees that error. Final and
        # reported, not silently lost; counted as lost unless --lenient.
        stalled_out += 1
        problems.append(f"stalled out {jid} ({marker}): the worker was killed under it too often")
        continue
    if row is not None and row[0] == "failed" and not strict and any(
            w in row[3] for w in ("postgres", "database", "redis", "unavailable")):
        # Its attempts were used up by outages longer than WORKER_OUTAGE_WAIT_MS: the
        # row says so, the client sees it. Final, not silent; lost unless --lenient.
        failed_outage += 1
        problems.append(f"failed by outage {jid} ({marker}): {row[3]}")
        continue
    if row is None or row[0] != "completed":
        lost += 1
        problems.append(f"lost {jid} ({marker}): {'no row' if row is None else row[0]}")
        continue
    completed += 1
    c = chunks.get(jid)
    if c is None or c[1] != 1 or c[0] != c[2] + 1 or c[3] != row[2]:
        dup_effects += 1
        problems.append(f"memory of {jid} ({marker}): {c} row fileId {row[2]}")
    else:
        by_kind[kind].add(c[0])
    if runs_after_completion[jid] > 0:
        reruns += 1
        problems.append(f"{jid} ({marker}) was run again after it completed")
    elif completions[jid] > 1:
        # Two runs overlapped (a worker lost its lock, another took the job)
        # and both committed: the second replaced the first one's memory,
        # checked above. At-least-once, not a re-run of a completed job.
        overlapped += 1
for kind, counts in by_kind.items():
    if len(counts) > 1:
        dup_effects += 1
        problems.append(f"{kind} uploads have different chunk counts: {sorted(counts)}")
for name, n in names.items():
    if n > 1:
        dup_rows += 1
        problems.append(f"{n} rows for upload {name}")
unacked = len(rows) - len(accepted)
open_rows = sum(1 for r in rows.values() if r[0] in ("pending", "processing"))
for p in sorted(problems, key=lambda p: not p.startswith(("lost", "memory", "rows"))):
    print("chaos:", p)
duplicates = dup_rows + dup_effects + reruns
print(f"accepted={len(accepted)} completed={completed} lost={lost} duplicates={duplicates} "
      f"orphans={orphans} rows_without_202={unacked} open_rows={open_rows} "
      f"reruns={reruns} overlapped={overlapped} stalled_out={stalled_out} failed_outage={failed_outage} " + open(f"{work}/swept.txt").read().strip())
ok = len(accepted) > 0 and completed + stalled_out + failed_outage == len(accepted) and lost == 0 \
    and duplicates == 0 \
    and orphans == 0 and open_rows == 0
sys.exit(0 if ok else 1)
EOF
