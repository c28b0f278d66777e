#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: unit and
# integration tests (ctest; they start their own redis-server/PostgreSQL on
# free ports), the fuzz target briefly, and the interop tests against the real
# `bullmq` package.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
export CONVEYOR_BINARY="$PWD/$BUILD_DIR/src/app/conveyor"

status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j2 --timeout 600) || status=1

# A short libFuzzer run of each fuzz target (built when clang++ and its
# sanitizer runtimes are installed), over its seed corpus.
for fuzzer in "$BUILD_DIR"/tests/fuzz/*_fuzz; do
  [ -x "$fuzzer" ] || continue
  name=$(basename "$fuzzer")
  mkdir -p "$BUILD_DIR/fuzz-corpus/$name"
  if "$fuzzer" -max_total_time="${FUZZ_SECONDS:-30}" "$BUILD_DIR/fuzz-corpus/$name" \
       "tests/fuzz/corpus/$name" >"$BUILD_DIR/fuzz-$name.log" 2>&1; then
    echo "fuzz: $name ran ${FUZZ_SECONDS:-30}s without a crash"
  else
    echo "fuzz: $name FAILED"; tail -50 "$BUILD_DIR/fuzz-$name.log"; status=1
  fi
done

# Interop tests with the real bullmq, Bull Board and Chromium (node:test).
if compgen -G "tests/interop/*.test.mjs" >/dev/null; then
  (cd tests/interop && node --test --test-concurrency=1 ./*.test.mjs) || status=1
fi
exit $status
