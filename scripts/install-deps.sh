#!/usr/bin/env bash
# Installs with apt-get the Debian packages that building, testing and the demo need.
# Silent when everything is already there; one line naming what it installs otherwise.
#   scripts/install-deps.sh           everything: build, tests, demo
#   scripts/install-deps.sh --build   only what compiling build/envproxy needs (plain `make`,
#                                     Node.js and npm included: the web console is bundled)
#   scripts/install-deps.sh --gui     what `make compat-gui` needs (Adminer, phpMyAdmin, Chromium)
set -euo pipefail

build_packages=(
    build-essential pkg-config
    libevent-dev libssl-dev libmariadb-dev libyaml-dev libsqlite3-dev
    # the web console is bundled with esbuild from npm (web/package-lock.json)
    nodejs npm
)
packages=(
    build-essential pkg-config clang
    libevent-dev libssl-dev libmariadb-dev libyaml-dev libsqlite3-dev
    mariadb-server mariadb-client sqlite3 openssl
    # ss (test_frontdoor reads the keepalive timers of the proxy's sockets)
    iproute2
    python3 python3-pytest python3-pymysql python3-mysqldb
    # the compatibility suite (tests/compat): Connector/J, SQLAlchemy, Node.js for mysql2,
    # PHP mysqli/PDO, Perl DBD::MariaDB/DBD::mysql, Ruby mysql2, Go's go-sql-driver
    default-jdk-headless libmariadb-java python3-sqlalchemy nodejs npm
    php-cli php-mysql libdbd-mariadb-perl libdbd-mysql-perl ruby-mysql2
    golang-go golang-github-go-sql-driver-mysql-dev mycli
    # the web console's browser tests (tests/integration/test_console.py)
    chromium chromium-driver python3-selenium
)

gui_packages=(
    php-cli php-mysql adminer phpmyadmin chromium chromium-driver python3-selenium python3-pytest
    python3-pymysql mariadb-server mariadb-client
)

if [ "${1:-}" = "--build" ]; then
    packages=("${build_packages[@]}")
elif [ "${1:-}" = "--gui" ]; then
    packages=("${gui_packages[@]}")
elif [ -n "${1:-}" ]; then
    echo "usage: scripts/install-deps.sh [--build | --gui]" >&2
    exit 2
fi

# Satisfied by the command as well as by the Debian package: a Node.js installed from
# elsewhere ships its own npm, and Debian's npm package would conflict with it.
declare -A command_for=([nodejs]=node [npm]=npm)

missing=()
for p in "${packages[@]}"; do
    if [ -n "${command_for[$p]:-}" ] && command -v "${command_for[$p]}" >/dev/null 2>&1; then
        continue
    fi
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *" ok installed") ;;
    *) missing+=("$p") ;;
    esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: not root and sudo is not available; install these as root: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi

# Keep the packages' maintainer scripts from starting a system-wide MariaDB server:
# the tests and the demo start their own on other ports. Only done when the machine
# has no policy of its own, and undone on exit.
policy=/usr/sbin/policy-rc.d
added_policy=0
cleanup() {
    if [ "$added_policy" -eq 1 ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    if [ -n "${log:-}" ]; then rm -f "$log"; fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    added_policy=1
fi

log=$(mktemp)
apt() {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}
if ! { apt update && apt install --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    echo "install-deps: apt-get failed:" >&2
    tail -n 40 "$log" >&2
    exit 1
fi
