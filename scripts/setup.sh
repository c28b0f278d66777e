#!/usr/bin/env bash
# Installs everything conveyor needs on Debian 12: compilers, libraries, Redis,
# PostgreSQL, load tools and the Node.js packages the interop tests use.
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev
  libhiredis-dev libsqlite3-dev libpq-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
  libssl-dev libjwt-dev libmagic-dev libpoppler-cpp-dev libarchive-dev libxml2-dev
  libtesseract-dev libleptonica-dev tesseract-ocr-eng
  libcurl4-openssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools postgresql wrk curl nodejs chromium
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v npm >/dev/null || {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm
}

# Node.js packages for the interop tests and benchmarks (locked versions).
if [ -f tests/interop/package-lock.json ]; then
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
