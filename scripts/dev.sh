#!/usr/bin/env bash
# Quick start: install what is missing, build the conveyor binary (only it: no
# tests, benchmarks or fuzz targets), and run `conveyor dev` (API and worker in
# one process, SQLite and storage under ./data, its own redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh conveyor
exec "${BUILD_DIR:-build}/src/app/conveyor" dev "$@"
