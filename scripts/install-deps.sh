#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages that building, running and
# testing sluice need. Idempotent: installs only what is missing. Run as root
# (or with sudo available).
set -euo pipefail

pkgs=(
  build-essential pkg-config
  libuv1-dev node-llhttp libjansson-dev libsqlite3-dev sqlite3 libfyaml-dev
  libpcre2-dev libcurl4-openssl-dev libssl-dev libpq-dev
  libcriterion-dev python3-pytest python3-requests python3-jwt python3-psycopg2
  python3-cryptography
  prometheus prometheus-alertmanager curl postgresql postgresql-common
  clang libclang-rt-14-dev clang-format
)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(wrk python3-fastapi python3-uvicorn)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
