#!/usr/bin/env bash
# Installs every Debian package deltasync needs to build, test and run its demo.
# Idempotent and quick when everything is already there (no apt-get update then).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  sqlite3 libsqlite3-dev
  nlohmann-json3-dev
  libgtest-dev libgmock-dev librapidcheck-dev
  libzstd-dev
  libcli11-dev
  libcpp-jwt-dev openssl libssl-dev
  libcurl4-openssl-dev libcpp-httplib-dev
  clang-14 libclang-rt-14-dev llvm-14
  postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libpq-dev bc
  python3-django python3-psycopg2 python3-sqlalchemy python3-alembic
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
