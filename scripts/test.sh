#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: unit and
# integration tests (ctest; they start their own redis-server/PostgreSQL on
# free ports), each fuzz target briefly, and the interop tests against the real
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
# sanitizer runtimes are installed), over its seed corpus and the corpus kept
# in the build tree. FUZZ_SECONDS per target: 10 by default when there are
# more than three targets, else 30. tests/fuzz/run.sh runs them for longer.
fuzzers=()
for fuzzer in "$BUILD_DIR"/tests/fuzz/*_fuzz; do [ -x "$fuzzer" ] && fuzzers+=("$fuzzer"); done
if [ ${#fuzzers[@]} -gt 3 ]; then fuzz_seconds=${FUZZ_SECONDS:-10}; else fuzz_seconds=${FUZZ_SECONDS:-30}; fi
for fuzzer in "${fuzzers[@]}"; do
  name=$(basename "$fuzzer")
  mkdir -p "$BUILD_DIR/fuzz-corpus/$name"
  opts=()
  [ -f "tests/fuzz/$name.options" ] && read -r -a opts <"tests/fuzz/$name.options"
  if "$fuzzer" -max_total_time="$fuzz_seconds" "${opts[@]}" "$BUILD_DIR/fuzz-corpus/$name" \
       "tests/fuzz/corpus/$name" >"$BUILD_DIR/fuzz-$name.log" 2>&1; then
    echo "fuzz: $name ran ${fuzz_seconds}s without a crash"
  else
    echo "fuzz: $name FAILED"; tail -50 "$BUILD_DIR/fuzz-$name.log"; status=1
  fi
done

# Interop tests with the real bullmq, Bull Board and Chromium (node:test).
if compgen -G "tests/interop/*.test.mjs" >/dev/null; then
  (cd tests/interop && node --test --test-concurrency=1 ./*.test.mjs) || status=1
fi
exit $status
