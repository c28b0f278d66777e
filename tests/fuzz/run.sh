#!/usr/bin/env bash
# Runs the libFuzzer targets for longer than scripts/test.sh does, one after
# the other; builds nothing (build them first: scripts/build.sh, or one with
# scripts/build.sh NAME_target).
#
#   tests/fuzz/run.sh [NAME...]     every build/tests/fuzz/*_fuzz, or the named ones
#
# Each target runs over a persistent corpus in the build tree
# (build/fuzz-corpus/NAME, which keeps what it finds, shared with
# scripts/test.sh) plus its seed corpus (tests/fuzz/corpus/NAME), with the
# flags in tests/fuzz/NAME.options if that file exists. Crash, leak and
# timeout inputs go to build/fuzz-artifacts/NAME/ (those of this run are
# listed); the full log to
# build/fuzz-NAME-run.log. Prints per target: executions, exec/s, final
# coverage (libFuzzer's cov: and ft: from its last stats line), corpus size
# and any crash files; exits non-zero if a target crashed.
#
# Environment: FUZZ_RUNS (executions per target, default 10000000),
# FUZZ_TIME (seconds per target; when set, -max_total_time replaces
# -runs), FUZZ_TIMEOUT (seconds one input may take, default 30), FUZZ_ARGS
# (more libFuzzer flags), BUILD_DIR (default build). Run it under nice on a
# shared machine: nice -n 10 tests/fuzz/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
RUNS=${FUZZ_RUNS:-10000000}

targets=()
if [ $# -gt 0 ]; then
  for name in "$@"; do targets+=("$BUILD_DIR/tests/fuzz/$name"); done
else
  for f in "$BUILD_DIR"/tests/fuzz/*_fuzz; do [ -x "$f" ] && targets+=("$f"); done
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "no fuzz targets in $BUILD_DIR/tests/fuzz (build them first: scripts/build.sh)" >&2
  exit 2
fi

status=0
printf '%-24s %12s %8s %7s %8s %16s %6s  %s\n' target executions exec/s cov ft corpus secs crashes
for fuzzer in "${targets[@]}"; do
  name=$(basename "$fuzzer")
  if [ ! -x "$fuzzer" ]; then
    echo "$name: not built ($fuzzer)" >&2
    status=1
    continue
  fi
  corpus="$BUILD_DIR/fuzz-corpus/$name"
  artifacts="$BUILD_DIR/fuzz-artifacts/$name"
  log="$BUILD_DIR/fuzz-$name-run.log"
  mkdir -p "$corpus" "$artifacts"
  opts=()
  [ -f "tests/fuzz/$name.options" ] && read -r -a opts <"tests/fuzz/$name.options"
  if [ -n "${FUZZ_TIME:-}" ]; then limit=(-max_total_time="$FUZZ_TIME"); else limit=(-runs="$RUNS"); fi
  extra=()
  [ -n "${FUZZ_ARGS:-}" ] && read -r -a extra <<<"$FUZZ_ARGS"
  start=$(date +%s)
  stamp="$artifacts/.started"
  touch "$stamp"
  "$fuzzer" "${limit[@]}" -timeout="${FUZZ_TIMEOUT:-30}" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${opts[@]}" "${extra[@]}" \
    "$corpus" "tests/fuzz/corpus/$name" >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(du -sk "$corpus" | cut -f1)
  crashes=$(find "$artifacts" -type f -newer "$stamp" 2>/dev/null | sort)
  printf '%-24s %12s %8s %7s %8s %16s %6s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${files} files/${bytes}K" "$secs" "$( [ -n "$crashes" ] && echo "$crashes" | tr '\n' ' ' || echo none)"
  if [ $rc -ne 0 ] || [ -n "$crashes" ]; then
    echo "  $name: exit status $rc; log $log:" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant broken|.*runtime error)' "$log" | head -5 >&2
    status=1
  fi
done
exit $status
