#!/usr/bin/env bash
# Sentinel failover test: the API and a worker follow Redis through
# Sentinel while the master is SIGKILLed under upload load.
#
#   tests/sentinel/sentinel_failover.sh [--before S] [--after S] [--users N] [--keep]
#
# Real processes only, each on a free loopback port with its own temp dir,
# each recorded by PID and stopped by PID on exit: one redis-server master,
# one replica (replicaof), three redis-sentinel processes (quorum 2,
# down-after-milliseconds 1000, failover-timeout 5000; requirepass on every
# one of them), build/src/app/conveyor api and worker (CONVEYOR_BIN) with
# REDIS_SENTINELS and a REDIS_HOST/REDIS_PORT that point nowhere, so that
# nothing reaches Redis but through the sentinels, and SQLite.
#
# Several clients upload small files steadily. After --before seconds the
# master is SIGKILLed; the run goes on until the sentinels have promoted the
# replica and the clients have uploaded for --after seconds more. Then the
# old master is started again (the sentinels make it a replica) and
# SENTINEL FAILOVER promotes it back, demoting the live master: --after
# seconds more of uploads. Answers
# other than 202 are allowed (not accepted, never promised); every upload
# that got a 202 must then reach `completed`, including the jobs the old
# master took and never replicated, and those whose add failed during the
# failover: their rows are pending and the worker's reconciler re-adds
# them. Prints
#   failover: accepted=N (before=N during=N after=N after_second=N) refused=N
#             completed=N not_queued=N readded=N lost_by_replication=N
#   failover: sentinels_promoted_ms=N first_queued_upload_ms=N
#             last_unqueued_upload_ms=N all_completed_ms=N
#             api_followed_ms=N worker_followed_ms=N         (from the SIGKILL)
#   failover: second (manual) failover: sentinels_named_ms=N api_followed_ms=N
#             worker_followed_ms=N demoted_became_replica_ms=N (from SENTINEL FAILOVER)
#             queued_at_once_after=N role_refusals=N failover_replies=N
#             bzpopmin_on_final_master=N xread_resumed=N
# and exits non-zero unless every accepted upload completed, the replica
# became the master, uploads after each failover were queued straight to the
# new master (the API follows), the worker's blocking connection waits on
# the final master (BZPOPMIN), the API's events reader read Redis again
# after a gap (XREAD), and the API and the worker left the demoted master
# before the sentinels made it a replica. not_queued: uploads whose job add failed (logged by
# the API), readded: jobs the worker's reconciler added again,
# lost_by_replication: re-added ones the API had queued (the old master
# took them and died or was demoted before passing them on).
set -uo pipefail

BEFORE=4
AFTER=6
USERS=4
KEEP=0
SETTLE_S=${FAILOVER_SETTLE_S:-60}
while [ $# -gt 0 ]; do
  case "$1" in
    --before) BEFORE=$2; shift 2 ;;
    --after) AFTER=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--before S] [--after S] [--users N] [--keep]" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/support/procs.sh"
BIN=${CONVEYOR_BIN:-$ROOT/build/src/app/conveyor}
[ -x "$BIN" ] || { echo "failover: no conveyor binary at $BIN (build target conveyor)" >&2; exit 2; }
SENTINEL_BIN=$(command -v redis-sentinel || true)
for tool in redis-server redis-cli curl jq sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "failover: $tool is required" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/conveyor-failover.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/data" "$WORK/clients"
echo "failover: users=$USERS before=${BEFORE}s after=${AFTER}s dir=$WORK"

log() { echo "failover: $(date -u +%H:%M:%S.%3N) $*"; }
now_ms() { date +%s%3N; }

# ---- process bookkeeping: every PID we start, stopped by PID ---------------
declare -A PID=()   # role -> pid
CLIENT_PIDS=()
cleanup() {
  local rc=$?
  for p in "${CLIENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for role in "${!PID[@]}"; do alive "${PID[$role]}" && kill -TERM "${PID[$role]}" 2>/dev/null; done
  for role in "${!PID[@]}"; do reap "${PID[$role]}" 10; done
  for p in "${CLIENT_PIDS[@]}"; do reap "$p" 5; done
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    echo "failover: logs and data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# await_for SECONDS WHAT SNIPPET: evaluates the shell SNIPPET every 50 ms until
# it succeeds or SECONDS pass (then says what it waited for).
await_for() {
  local s=$1 what=$2 cmd=$3 i
  for ((i = 0; i < s * 20; i++)); do
    eval "$cmd" && return 0
    sleep 0.05
  done
  echo "failover: timed out after ${s}s waiting for $what" >&2
  return 1
}

# ---- Redis: a master, a replica, three sentinels ------------------------------
REDIS_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
SENTINEL_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
MASTER_NAME=conveyor
MASTER_PORT=$(free_port)
REPLICA_PORT=$(free_port)
SENTINEL_PORTS=()
for i in 1 2 3; do SENTINEL_PORTS+=("$(free_port)"); done

rcli() { local port=$1; shift; REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$port" "$@" 2>/dev/null; }
scli() { local port=$1; shift; REDISCLI_AUTH=$SENTINEL_PASSWORD redis-cli -p "$port" "$@" 2>/dev/null; }

start_redis() {  # role port [replicaof-port]
  local role=$1 port=$2 dir=$WORK/$1
  mkdir -p "$dir"
  {
    echo "port $port"
    echo "bind 127.0.0.1"
    echo "dir $dir"
    echo 'save ""'
    echo "appendonly no"
    echo "requirepass $REDIS_PASSWORD"
    echo "masterauth $REDIS_PASSWORD"
    [ -n "${3:-}" ] && echo "replicaof 127.0.0.1 $3"
  } > "$dir/redis.conf"
  chmod 600 "$dir/redis.conf"
  redis-server "$dir/redis.conf" >> "$LOGS/$role.log" 2>&1 &
  PID[$role]=$!
  await_for 10 "$role to answer" "rcli $port ping | grep -q PONG" || exit 1
}
start_sentinel() {  # n port
  local dir=$WORK/sentinel$1
  mkdir -p "$dir"
  {
    echo "port $2"
    echo "bind 127.0.0.1"
    echo "dir $dir"
    echo "requirepass $SENTINEL_PASSWORD"
    echo "sentinel sentinel-pass $SENTINEL_PASSWORD"
    echo "sentinel monitor $MASTER_NAME 127.0.0.1 $MASTER_PORT 2"
    echo "sentinel auth-pass $MASTER_NAME $REDIS_PASSWORD"
    echo "sentinel down-after-milliseconds $MASTER_NAME 1000"
    echo "sentinel failover-timeout $MASTER_NAME 5000"
    echo "sentinel parallel-syncs $MASTER_NAME 1"
  } > "$dir/sentinel.conf"
  chmod 600 "$dir/sentinel.conf"
  # The sentinel rewrites its own config file: it must be writable.
  if [ -n "$SENTINEL_BIN" ]; then
    "$SENTINEL_BIN" "$dir/sentinel.conf" >> "$LOGS/sentinel$1.log" 2>&1 &
  else
    redis-server "$dir/sentinel.conf" --sentinel >> "$LOGS/sentinel$1.log" 2>&1 &
  fi
  PID[sentinel$1]=$!
}
master_port_at() {  # what sentinel $1 names as master
  scli "$1" SENTINEL get-master-addr-by-name "$MASTER_NAME" | sed -n 2p
}

start_redis master "$MASTER_PORT"
start_redis replica "$REPLICA_PORT" "$MASTER_PORT"
await_for 20 "the replica to sync" \
  "rcli $REPLICA_PORT INFO replication | grep -q 'master_link_status:up'" || exit 1
for i in 1 2 3; do start_sentinel "$i" "${SENTINEL_PORTS[$((i - 1))]}"; done
# Ready when every sentinel knows the replica and the two other sentinels.
sentinels_ready() {
  local p info
  for p in "${SENTINEL_PORTS[@]}"; do
    info=$(scli "$p" SENTINEL master "$MASTER_NAME" | paste - - | tr '\t' ' ')
    grep -q '^num-slaves 1$' <<<"$info" || return 1
    grep -q '^num-other-sentinels 2$' <<<"$info" || return 1
    scli "$p" SENTINEL ckquorum "$MASTER_NAME" | grep -q '^OK' || return 1
  done
}
await_for 30 "the sentinels to find each other and the replica" sentinels_ready || exit 1
log "master :$MASTER_PORT, replica :$REPLICA_PORT, sentinels :${SENTINEL_PORTS[*]} (quorum 2)"

# ---- conveyor --------------------------------------------------------------------
API_PORT=$(free_port)
JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
SENTINELS=$(printf '127.0.0.1:%s,' "${SENTINEL_PORTS[@]}")
export REDIS_SENTINELS=${SENTINELS%,} REDIS_SENTINEL_MASTER=$MASTER_NAME
export REDIS_SENTINEL_PASSWORD=$SENTINEL_PASSWORD REDIS_PASSWORD
# Nothing listens there: only the sentinels lead to Redis.
export REDIS_HOST=127.0.0.1 REDIS_PORT=1
export DATA_DIR=$WORK/data DATABASE_URL="sqlite://$WORK/data/conveyor.db" JWT_SECRET
export PORT=$API_PORT BIND_ADDRESS=127.0.0.1 RATE_LIMIT_PER_MINUTE=0 METRICS_PORT=0
export WORKER_CONCURRENCY=2 PROCESSING_DELAY_MS=50
# Fast recovery so that the run settles in seconds: pending rows without a job
# re-added every 2 s (RECONCILE_INTERVAL_MS), lapsed locks found within ~5 s.
export RECONCILE_INTERVAL_MS=2000 JOB_LOCK_MS=4000 STALLED_INTERVAL_MS=1000
export WORKER_OUTAGE_WAIT_MS=60000 SHUTDOWN_GRACE_MS=2000 LOG_FORMAT=text

"$BIN" migrate >> "$LOGS/migrate.log" 2>&1 || { cat "$LOGS/migrate.log" >&2; exit 1; }
"$BIN" api >> "$LOGS/api.log" 2>&1 &
PID[api]=$!
"$BIN" worker >> "$LOGS/worker.log" 2>&1 &
PID[worker]=$!
await_for 20 "the API to be ready" \
  "curl -sf -o /dev/null http://127.0.0.1:$API_PORT/readyz" || { tail "$LOGS/api.log" >&2; exit 1; }

# ---- clients ---------------------------------------------------------------------
# Each uploads one small file after another until $WORK/stop exists, and
# writes "<start ms> <end ms> <http code> <job id or ->" per upload.
client() {
  local user=$1 token n=0 file start code jid
  token=$("$BIN" token --user "$user" --ttl 3600)
  file="$WORK/clients/u$user.txt"
  while [ ! -e "$WORK/stop" ]; do
    n=$((n + 1))
    for ((i = 0; i < 8; i++)); do
      printf 'Paragraph %d of upload %d by user %d: invoices, shipping notes and the ledger.\n\n' \
        "$i" "$n" "$user"
    done > "$file"
    start=$(now_ms)
    code=$(curl -s -o "$file.resp" -w '%{http_code}' --max-time 20 \
      -H "Authorization: Bearer $token" -F "file=@$file;type=text/plain" -F "session_id=s-$user" \
      "http://127.0.0.1:$API_PORT/api/chat/upload/async" 2>/dev/null)
    jid=-
    [ "$code" = 202 ] && jid=$(jq -r '.data.jobId // "-"' "$file.resp" 2>/dev/null)
    echo "$start $(now_ms) $code $jid" >> "$WORK/uploads.$user.txt"
    [ "$code" = 202 ] || sleep 0.1
  done
}
for ((u = 1; u <= USERS; u++)); do
  client "$u" &
  CLIENT_PIDS+=($!)
done

sleep "$BEFORE"  # load before the kill (nothing to await: a steady state)
accepted_so_far() { cat "$WORK"/uploads.*.txt 2>/dev/null | awk '$3 == 202' | wc -l; }
await_for 30 "uploads before the kill" '[ "$(accepted_so_far)" -ge 10 ]' || exit 1

# ---- the failover ------------------------------------------------------------------
KILL_MS=$(now_ms)
kill -KILL "${PID[master]}"
reap "${PID[master]}" 10
unset 'PID[master]'
log "SIGKILL master (pid gone); $(accepted_so_far) uploads accepted so far"
await_for 60 "the sentinels to promote the replica" \
  "[ \"\$(master_port_at ${SENTINEL_PORTS[0]})\" = $REPLICA_PORT ]" || exit 1
PROMOTED_MS=$(now_ms)
await_for 20 "the replica to say it is the master" \
  "rcli $REPLICA_PORT ROLE | head -1 | grep -q master" || exit 1
log "sentinels promoted :$REPLICA_PORT after $((PROMOTED_MS - KILL_MS)) ms"
sleep "$AFTER"  # load after the failover

# ---- a second failover: the live master is demoted, not killed ---------------------
# The old master comes back as a replica of the new one (as an operator
# would restart it). Then SENTINEL FAILOVER promotes it again and demotes
# the live master, which keeps its clients and takes writes until the
# sentinels make it a replica, seconds later: the API and the worker must
# leave it as soon as the sentinels name the new master.
start_redis master "$MASTER_PORT" "$REPLICA_PORT"
await_for 40 "the old master to rejoin as a synced replica" \
  "rcli $MASTER_PORT INFO replication | grep -q 'master_link_status:up'" || exit 1
SWITCH_MS=$(now_ms)
await_for 40 "the sentinels to accept a manual failover" \
  "scli ${SENTINEL_PORTS[0]} SENTINEL FAILOVER $MASTER_NAME | grep -q OK" || exit 1
log "SENTINEL FAILOVER: demoting :$REPLICA_PORT"
await_for 40 "the sentinels to promote the old master again" \
  "[ \"\$(master_port_at ${SENTINEL_PORTS[0]})\" = $MASTER_PORT ]" || exit 1
NAMED_MS=$(now_ms)
# The demoted master takes writes until the sentinels make it a replica
# (seconds later): the API and the worker must have left it before.
await_for 30 "the demoted master to be a replica" \
  "rcli $REPLICA_PORT ROLE | head -1 | grep -q slave" || exit 1
SWITCHED_MS=$(now_ms)
log "sentinels promoted :$MASTER_PORT after $((SWITCHED_MS - SWITCH_MS)) ms"
sleep "$AFTER"  # load after the second failover
touch "$WORK/stop"
for p in "${CLIENT_PIDS[@]}"; do reap "$p" 30; done
CLIENT_PIDS=()
cat "$WORK"/uploads.*.txt | sort -n > "$WORK/uploads.txt"
awk '$3 == 202 {print $4}' "$WORK/uploads.txt" | sort -u > "$WORK/accepted.txt"
ACCEPTED=$(wc -l < "$WORK/accepted.txt")
log "clients stopped; $ACCEPTED uploads accepted; waiting for every one to complete"

# ---- settle: every accepted upload completed --------------------------------------
sql() { sqlite3 -separator ' ' "$WORK/data/conveyor.db" "$1"; }
open_accepted() {
  sql "SELECT \"id\", \"status\" FROM \"FileUploadJob\"" 2>/dev/null | sort > "$WORK/rows.txt"
  join "$WORK/accepted.txt" "$WORK/rows.txt" | awk '$2 == "completed"' | wc -l
}
await_for "$SETTLE_S" "every accepted upload to complete" \
  '[ "$(open_accepted)" = "$ACCEPTED" ]'
DONE_MS=$(now_ms)

# ---- verdict ---------------------------------------------------------------------
# The worker's blocking connection (CLIENT SETNAME "<prefix>:<base64 name>")
# waits on the new master, and the API's events reader read it again.
rcli "$MASTER_PORT" CLIENT LIST > "$WORK/clients.txt"
BZPOPMIN_ON_NEW=$(grep -c 'name=bull:.* cmd=bzpopmin' "$WORK/clients.txt")
XREAD_AGAIN=$(grep -c 'push: events stream .* readable again' "$LOGS/api.log")
# Informational: how the connections to the demoted master learnt it.
NOT_MASTER=$(cat "$LOGS/api.log" "$LOGS/worker.log" | grep -c 'is not a master (ROLE')
READONLY=$(cat "$LOGS/api.log" "$LOGS/worker.log" | grep -c "cannot take the queue's commands now")
grep -o 'upload [0-9a-f-]*: recorded but not queued' "$LOGS/api.log" | awk '{print $2}' \
  | tr -d : | sort -u > "$WORK/not_queued.txt"
grep -o 'reconciler re-added job [0-9a-f-]*' "$LOGS/worker.log" | awk '{print $4}' \
  | sort -u > "$WORK/readded.txt"
python3 - "$WORK" "$KILL_MS" "$PROMOTED_MS" "$SWITCH_MS" "$NAMED_MS" "$SWITCHED_MS" "$DONE_MS" \
  "$BZPOPMIN_ON_NEW" "$XREAD_AGAIN" "$NOT_MASTER" "$READONLY" "$REPLICA_PORT" "$MASTER_PORT" <<'EOF'
import sys, re, datetime
work = sys.argv[1]
(kill, promoted, switch, named, switched, done, bzpopmin, xread, not_master, readonly,
 replica_port, master_port) = map(int, sys.argv[2:])

def learnt(role, port, after):
    # When `role` learnt from the sentinels that `port` is the master (log time, ms).
    for line in open(f"{work}/logs/{role}.log"):
        m = re.match(r"\[(.{23})\] \[info\] redis: sentinel \S+ names \S+:(\d+) as master", line)
        if not m or int(m.group(2)) != port:
            continue
        t = int(datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp() * 1000)
        if t >= after:
            return t
    return None
followed = {r: learnt(r, replica_port, kill) for r in ("api", "worker")}
followed2 = {r: learnt(r, master_port, switch) for r in ("api", "worker")}
ms = lambda t, since: t - since if t is not None else -1
ups = [l.split() for l in open(f"{work}/uploads.txt")]
rows = dict(l.split() for l in open(f"{work}/rows.txt"))
not_queued = set(open(f"{work}/not_queued.txt").read().split())
readded = set(open(f"{work}/readded.txt").read().split())
accepted = [(int(s), int(e), j) for s, e, c, j in ups if c == "202"]
refused = [(int(s), c) for s, e, c, j in ups if c != "202"]
before = sum(1 for s, e, j in accepted if e < kill)
after = sum(1 for s, e, j in accepted if s > promoted and e < switch)
after2 = sum(1 for s, e, j in accepted if s > switched)
during = len(accepted) - before - after - after2
completed = sum(1 for s, e, j in accepted if rows.get(j) == "completed")
# Accepted before the kill, queued (no "not queued" line), yet re-added: the
# old master took the job and never passed it to the replica.
lost_by_replication = sorted(j for s, e, j in accepted if j in readded and j not in not_queued)
# The API follows: uploads that started after the kill and were queued at once.
queued_after = [e - kill for s, e, j in accepted if kill < s < switch and j not in not_queued]
unqueued = [e - kill for s, e, j in accepted if j in not_queued and e < switch]
queued_after2 = [e - switch for s, e, j in accepted if s > switched and j not in not_queued]
codes = {}
for s, c in refused:
    codes[c] = codes.get(c, 0) + 1
print(f"failover: accepted={len(accepted)} (before={before} during={during} after={after} "
      f"after_second={after2}) "
      f"refused={len(refused)} {dict(sorted(codes.items()))} completed={completed} "
      f"not_queued={len(not_queued)} readded={len(readded)} "
      f"lost_by_replication={len(lost_by_replication)}")
print(f"failover: sentinels_promoted_ms={promoted - kill} "
      f"first_queued_upload_ms={min(queued_after) if queued_after else -1} "
      f"last_unqueued_upload_ms={max(unqueued) if unqueued else -1} "
      f"all_completed_ms={done - kill} api_followed_ms={ms(followed['api'], kill)} "
      f"worker_followed_ms={ms(followed['worker'], kill)}")
print(f"failover: second (manual) failover: sentinels_named_ms={named - switch} "
      f"api_followed_ms={ms(followed2['api'], switch)} "
      f"worker_followed_ms={ms(followed2['worker'], switch)} "
      f"demoted_became_replica_ms={switched - switch} "
      f"queued_at_once_after={len(queued_after2)} "
      f"role_refusals={not_master} failover_replies={readonly} "
      f"bzpopmin_on_final_master={bzpopmin} xread_resumed={xread}")
problems = []
for s, e, j in accepted:
    if rows.get(j) != "completed":
        problems.append(f"accepted upload {j} is {rows.get(j, 'missing')}")
if not_queued - readded:
    problems.append(f"{len(not_queued - readded)} unqueued uploads were never re-added")
if before == 0 or after == 0 or after2 == 0:
    problems.append(f"no uploads accepted before the kill or after a failover")
if not [e for e in queued_after if e > promoted - kill]:
    problems.append("no upload after the failover was queued at once: the API did not follow")
if not queued_after2:
    problems.append("no upload after the second failover was queued at once")
for role in ("api", "worker"):
    if followed[role] is None or followed2[role] is None:
        problems.append(f"the {role} never learnt a new master from the sentinels")
    elif followed2[role] > switched:
        problems.append(f"the {role} stayed on the demoted master until it became a replica")
if bzpopmin < 1:
    problems.append("no worker waits (BZPOPMIN) on the final master")
if xread < 1:
    problems.append("the API's events reader did not read the new master (XREAD)")
for p in problems[:20]:
    print("failover:", p)
sys.exit(1 if problems else 0)
EOF
