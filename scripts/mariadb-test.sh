#!/usr/bin/env bash
# Starts and stops a throw-away MariaDB server with its own data directory, bound to
# 127.0.0.1, for the integration tests and the demo.
#
#   mariadb-test.sh start DIR PORT NAME SEEDFILE   print the server's PID on stdout
#   mariadb-test.sh stop DIR
#
# The first start initialises DIR/data, creates the backend account app / app-secret
# (app@127.0.0.1 and app@localhost, every privilege) and loads SEEDFILE as root.
# A later start on the same DIR reuses the data as it was left: no seeding again.
# Root has no password and is reached over the socket DIR/mysqld.sock.
# MARIADB_TEST_ARGS: more mariadbd options (e.g. --ssl-cert=... for a TLS server).
set -euo pipefail

WAIT_SECONDS=${MARIADB_TEST_WAIT:-30}

die() {
    echo "mariadb-test: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start DIR PORT NAME SEEDFILE | stop DIR" >&2
    exit 2
}

# True when process $1 exists and is not a zombie waiting for a slow reaper.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -e 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "${state%% *}" != Z ]
}

# Prints the PID recorded in DIR/mysqld.pid when that process is alive.
running_pid() {
    local pidfile=$1/mysqld.pid pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    alive "$pid" || return 1
    echo "$pid"
}

# root over the server's socket, without reading any option file.
client() {
    mariadb --no-defaults --user=root --socket="$dir/mysqld.sock" \
        --default-character-set=utf8mb4 "$@"
}

show_error_log() {
    if [ -f "$dir/error.log" ]; then
        echo "--- last lines of $dir/error.log" >&2
        tail -n 20 "$dir/error.log" >&2
    fi
}

cmd_start() {
    [ $# -eq 4 ] || usage
    dir=$1 port=$2 name=$3 seed=$4
    case "$port" in '' | *[!0-9]*) die "$name: port must be a number, got '$port'" ;; esac
    [ -f "$seed" ] || die "$name: seed file $seed not found"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    seed=$(cd "$(dirname "$seed")" && pwd)/$(basename "$seed")
    # A unix socket path must fit in sun_path (108 bytes).
    [ ${#dir} -le 90 ] || die "$name: directory path too long for a socket: $dir"

    local pid
    if pid=$(running_pid "$dir"); then
        die "$name: a server is already running in $dir (pid $pid)"
    fi
    rm -f "$dir/mysqld.pid" "$dir/mysqld.sock" "$dir/mysqld.sock.lock"

    local user fresh=0
    user=$(id -un)
    # A temporary directory of its own: servers bootstrapped side by side in a shared
    # /tmp can collide on temporary table names.
    mkdir -p "$dir/tmp"
    # DIR/seeded is written last: data without it is a start that failed half-way.
    if [ ! -f "$dir/seeded" ]; then
        fresh=1
        rm -rf "${dir:?}/data"
        if ! mariadb-install-db --no-defaults --auth-root-authentication-method=normal \
            --skip-test-db --skip-name-resolve --datadir="$dir/data" --user="$user" \
            --tmpdir="$dir/tmp" \
            --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
            >"$dir/install.log" 2>&1; then
            grep -E 'ERROR|Error|error' "$dir/install.log" | head -n 10 >&2 || true
            die "$name: mariadb-install-db failed (log: $dir/install.log)"
        fi
    fi

    mariadbd --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
        --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" \
        --log-error="$dir/error.log" --tmpdir="$dir/tmp" --user="$user" --skip-name-resolve \
        --innodb-buffer-pool-size=32M --max-connections=1000 --innodb-log-file-size=16M \
        --skip-log-bin --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        --performance-schema=OFF --loose-feedback=OFF ${MARIADB_TEST_ARGS:-} \
        </dev/null >/dev/null 2>&1 &
    pid=$!

    # Bounded wait: the server answers on its socket, or dies, or the time runs out.
    local tries=$((WAIT_SECONDS * 10)) i
    for ((i = 0; i < tries; i++)); do
        if ! alive "$pid"; then
            show_error_log
            die "$name: mariadbd exited during start-up (port $port)"
        fi
        if mariadb-admin --no-defaults --user=root --socket="$dir/mysqld.sock" \
            --connect-timeout=2 ping >/dev/null 2>&1; then
            break
        fi
        sleep 0.1
    done
    if ((i == tries)); then
        show_error_log
        kill -KILL "$pid" 2>/dev/null || true
        die "$name: mariadbd did not answer within ${WAIT_SECONDS}s (port $port)"
    fi

    if [ "$fresh" -eq 1 ]; then
        if ! client <<'SQL'; then
CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-secret';
CREATE USER 'app'@'localhost' IDENTIFIED BY 'app-secret';
GRANT ALL PRIVILEGES ON *.* TO 'app'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'app'@'localhost' WITH GRANT OPTION;
SQL
            kill -TERM "$pid" 2>/dev/null || true
            die "$name: could not create the backend account"
        fi
        if ! client <"$seed"; then
            kill -TERM "$pid" 2>/dev/null || true
            die "$name: loading $seed failed"
        fi
        echo "$name port=$port seed=$seed" >"$dir/seeded"
    fi
    echo "$pid"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    dir=$1
    local pid i
    pid=$(running_pid "$dir") || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < WAIT_SECONDS * 20; i++)); do
        alive "$pid" || return 0
        sleep 0.05
    done
    echo "mariadb-test: server in $dir (pid $pid) ignored SIGTERM for ${WAIT_SECONDS}s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    die "server in $dir (pid $pid) survived SIGKILL"
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
*) usage ;;
esac
