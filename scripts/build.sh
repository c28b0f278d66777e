#!/usr/bin/env bash
# Configures and builds conveyor into ./build (Ninja, ccache, -j2 by default).
# Arguments are Ninja targets (default: everything), e.g. `scripts/build.sh conveyor`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
WERROR=${CONVEYOR_WERROR:-OFF}
[ "${CI:-}" = "true" ] && WERROR=ON
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVEYOR_WERROR="$WERROR"
fi
ninja -C "$BUILD_DIR" -j"$JOBS" "$@"
