#!/bin/sh
# install-deps.sh - install the Debian 12 packages that building, running and
# testing sluice need, `make` included (build-essential), so that on a bare
# machine `sh scripts/install-deps.sh` is the first command and `make run` the
# second. Plain POSIX sh (a bare Debian has dash as sh, and may lack make).
# Idempotent: installs only what is missing. Run as root (or with sudo).
# --bench: also what bench/run.sh needs.
set -eu

# tzdata: the zone files (/usr/share/zoneinfo) that src/cron/tz.c reads for schedules;
# faketime: libfaketime, the clock the scheduler's tests (tests/e2e/test_sched.py) move.
pkgs="build-essential make pkg-config
  libuv1-dev node-llhttp libjansson-dev libsqlite3-dev sqlite3 libfyaml-dev
  libpcre2-dev libcurl4-openssl-dev libssl-dev libpq-dev
  libcriterion-dev python3-pytest python3-pytest-xdist python3-requests python3-jwt python3-psycopg2
  python3-cryptography
  prometheus prometheus-alertmanager curl postgresql postgresql-common
  clang libclang-rt-14-dev clang-format tzdata faketime"
if [ "${1:-}" = "--bench" ]; then
  pkgs="$pkgs wrk python3-fastapi python3-uvicorn"
fi

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: run as root (no sudo here) to install:$missing" >&2
    exit 1
  fi
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # one word per package
$SUDO apt-get install -y -qq --no-install-recommends $missing
