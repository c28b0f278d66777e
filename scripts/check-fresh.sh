#!/usr/bin/env bash
# Proves the README's two commands on a minimal Debian 12, as a new user meets
# them: makes a root with `debootstrap --variant=minbase bookworm`, adds only
# git, ca-certificates and sudo, clones the current commit into it, runs the
# test command (scripts/test.sh), then the run command (scripts/dev.sh) and
# drives one upload -> status -> search through curl. Prints each step's result
# and exits non-zero on the first failure; always stops what it started and
# unmounts what it mounted.
#
#   sudo scripts/check-fresh.sh
#
# Only committed work is checked (the clone is of HEAD). Settings:
#   FRESH_DIR=DIR        where to make the root (default: a new dir under /var/tmp)
#   KEEP_ROOT=1          keep the root afterwards (default: removed on success)
#   FRESH_CCACHE=DIR     share a ccache directory with the root's builds (faster,
#                        still fresh: a missing header or library is a cache miss)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
commit=$(git rev-parse HEAD)

[ "$(id -u)" -eq 0 ] || { echo "check-fresh: run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
  echo "check-fresh: note: uncommitted changes are not checked, only $commit"

started=$(date +%s)
step() {  # step NAME COMMAND...: runs it, prints "ok" or "FAILED" with its time
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  echo "check-fresh: $name ..."
  set +e
  "$@"
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then
    echo "check-fresh: $name: ok ($(($(date +%s) - t0)) s)"
  else
    echo "check-fresh: $name: FAILED (exit $rc after $(($(date +%s) - t0)) s)"
    exit 1
  fi
}

if ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi

root=${FRESH_DIR:-$(mktemp -d /var/tmp/conveyor-fresh.XXXXXX)}
mkdir -p "$root"
chmod 0755 "$root"  # mktemp makes 0700, which shuts out every other user (postgres)
mounts=()
dev_pid=""
log_dir="$root.logs"
mkdir -p "$log_dir"

# Processes whose root directory is the fresh root (what the commands left).
procs_in_root() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
  done
  return 0
}

cleanup() {
  local rc=$? p m i
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
    kill -TERM "$dev_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for p in $(procs_in_root); do kill -KILL "$p" 2>/dev/null || true; done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m=${mounts[$i]}
    umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || echo "check-fresh: could not unmount $m"
  done
  if [ $rc -eq 0 ] && [ -z "${KEEP_ROOT:-}" ]; then
    rm -rf --one-file-system "$root" "$log_dir"
  else
    echo "check-fresh: root kept in $root, logs in $log_dir"
  fi
  echo "check-fresh: $([ $rc -eq 0 ] && echo PASSED || echo FAILED) in $(($(date +%s) - started)) s"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_into() {  # mount_into TARGET mount-args...
  local target=$root$1
  shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounts+=("$target")
  # A recursive bind is made a slave, so unmounting it later never propagates
  # back to the host's own /dev or /sys.
  [ "$1" != --rbind ] || mount --make-rslave "$target"
}

# In the root, as a login shell of a new user would have it.
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    ${FRESH_CCACHE:+CCACHE_DIR=/var/cache/conveyor-ccache CCACHE_BASEDIR=/root CCACHE_NOHASHDIR=1} "$@"
}

# The host's Debian mirror (no host is named here: the root fetches from
# wherever this machine does).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "check-fresh: no Debian mirror found in the host's apt sources" >&2; exit 2; }

bootstrap() {
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log_dir/debootstrap.log" 2>&1 ||
    { tail -20 "$log_dir/debootstrap.log"; return 1; }
}
[ -x "$root/usr/bin/apt-get" ] || step "debootstrap minbase bookworm into $root" bootstrap

configure_root() {
  # Package sources and fetch settings as the host has them, the host's
  # trusted CAs, no service started by package scripts, name resolution.
  rm -f "$root/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null ||
    cp /etc/apt/sources.list "$root/etc/apt/sources.list"
  local f
  for f in /etc/apt/apt.conf.d/*; do
    grep -q '^Acquire::' "$f" 2>/dev/null && cp "$f" "$root/etc/apt/apt.conf.d/"
  done
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  mount_into /proc -t proc proc
  mount_into /sys --rbind /sys
  mount_into /dev --rbind /dev
  mount_into /tmp -t tmpfs tmpfs
  if [ -n "${FRESH_CCACHE:-}" ]; then
    mkdir -p "$FRESH_CCACHE"
    mount_into /var/cache/conveyor-ccache --bind "$FRESH_CCACHE"
  fi
  in_root apt-get update -qq >"$log_dir/base.log" 2>&1 &&
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      git ca-certificates sudo >>"$log_dir/base.log" 2>&1 &&
    in_root update-ca-certificates >>"$log_dir/base.log" 2>&1 ||
    { tail -20 "$log_dir/base.log"; return 1; }
}
step "configure the root and add git, ca-certificates, sudo" configure_root

clone() {
  rm -rf "$root/root/conveyor"
  git clone -q --no-local "$repo" "$root/root/conveyor" && git -C "$root/root/conveyor" checkout -q "$commit"
}
step "clone $commit" clone

run_tests() {
  in_root bash -c 'cd /root/conveyor && CI=true scripts/test.sh' >"$log_dir/test.log" 2>&1 ||
    { tail -60 "$log_dir/test.log"; return 1; }
  grep -E '^(100% tests passed|[0-9]+% tests passed)|tests passed|^fuzz:|^# (pass|fail)' "$log_dir/test.log" || true
}
step "test command: scripts/test.sh" run_tests

start_dev() {
  # PORT=0: the server picks a free port and prints its URL.
  in_root bash -c "cd /root/conveyor && PORT=0 exec scripts/dev.sh" >"$log_dir/dev.log" 2>&1 &
  dev_pid=$!
  local i
  for i in $(seq 1200); do  # setup and the build of one binary first: up to 10 minutes
    grep -q 'token:' "$log_dir/dev.log" && return 0
    kill -0 "$dev_pid" 2>/dev/null || { tail -30 "$log_dir/dev.log"; return 1; }
    sleep 0.5
  done
  tail -30 "$log_dir/dev.log"
  return 1
}
step "run command: scripts/dev.sh" start_dev
token=$(sed -n 's/^[[:space:]]*token:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$log_dir/dev.log" | head -1)
base=$(sed -n 's/^[[:space:]]*URL:[[:space:]]*\(http:[^[:space:]]*\).*/\1/p' "$log_dir/dev.log" | head -1)
base=${base/localhost/127.0.0.1}
echo "check-fresh: server at $base"

upload_status_search() {
  local file=$log_dir/notes.txt answer job status i
  printf 'Quarterly invoice for the conveyor project.\nThe invoice lists three deliveries.\n' >"$file"
  answer=$(curl -sS -H "Authorization: Bearer $token" -F "file=@$file" -F session_id=fresh \
    "$base/api/chat/upload/async")
  echo "  upload: $answer"
  job=$(echo "$answer" | sed -n 's/.*"jobId":"\([^"]*\)".*/\1/p')
  [ -n "$job" ] || return 1
  for i in $(seq 600); do
    answer=$(curl -sS -H "Authorization: Bearer $token" "$base/api/chat/upload/status/$job")
    status=$(echo "$answer" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
    [ "$status" = completed ] || [ "$status" = failed ] && break
    sleep 0.1
  done
  echo "  status: ${answer:0:300}"
  [ "$status" = completed ] || return 1
  answer=$(curl -sS -H "Authorization: Bearer $token" \
    "$base/api/chat/memory/search?session_id=fresh&q=invoice&limit=5")
  echo "  search: ${answer:0:300}"
  echo "$answer" | grep -q "\"jobId\":\"$job\""
}
step "upload -> status -> search through curl" upload_status_search
