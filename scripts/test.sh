#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: unit and
# integration tests (ctest; they start their own redis-server/PostgreSQL on
# free ports), the fuzz target briefly, and the interop tests against the real
# `bullmq` package.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
export CONVEYOR_BINARY="$PWD/$BUILD_DIR/src/app/conveyor"

status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j2 --timeout 600) || status=1

# A short libFuzzer run of the multipart parser (built when clang is present).
if [ -x "$BUILD_DIR/tests/fuzz/multipart_fuzz" ]; then
  mkdir -p "$BUILD_DIR/fuzz-corpus"
  "$BUILD_DIR/tests/fuzz/multipart_fuzz" -max_total_time="${FUZZ_SECONDS:-30}" \
    "$BUILD_DIR/fuzz-corpus" tests/fuzz/corpus >"$BUILD_DIR/fuzz.log" 2>&1 \
    && echo "fuzz: multipart_fuzz ran ${FUZZ_SECONDS:-30}s without a crash" \
    || { echo "fuzz: multipart_fuzz FAILED"; tail -50 "$BUILD_DIR/fuzz.log"; status=1; }
fi

# Interop tests with the real bullmq, Bull Board and Chromium (node:test).
if compgen -G "tests/interop/*.test.mjs" >/dev/null; then
  (cd tests/interop && node --test --test-concurrency=1 ./*.test.mjs) || status=1
fi
exit $status
