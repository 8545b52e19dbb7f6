#!/usr/bin/env bash
# The demo behind `make demo` / `make demo-stop`: two MariaDB servers playing dev
# (127.0.0.1:3316) and prod (127.0.0.1:3317) with sample data, and envproxy on
# 127.0.0.1:3307 with the account demo / demo. State lives in ./demo/ (git-ignored);
# the data survives a stop, so a second start is quick and keeps your changes.
#
#   scripts/demo.sh start | stop
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=$ROOT/demo
BIN=${ENVPROXY_BIN:-$ROOT/build/envproxy}
CONFIG=$STATE/proxy.yaml
PROXY_PID=$STATE/envproxy.pid
PROXY_LOG=$STATE/envproxy.log
PROXY_PORT=3307
DEV_PORT=3316
PROD_PORT=3317
HTTP_PORT=9307

say() { echo "demo: $*"; }
die() {
    echo "demo: $*" >&2
    exit 1
}

alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -e 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "${state%% *}" != Z ]
}

pid_from() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    alive "$pid" || return 1
    echo "$pid"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_server() {
    local name=$1 port=$2 pid
    if pid=$(pid_from "$STATE/$name/mysqld.pid"); then
        say "$name server already running (pid $pid, port $port)"
        return 0
    fi
    if port_open "$port"; then
        die "port $port is taken by another program; the $name server needs it"
    fi
    pid=$("$ROOT/scripts/mariadb-test.sh" start "$STATE/$name" "$port" "$name" \
        "$ROOT/tests/fixtures/seed-$name.sql")
    say "$name server started (pid $pid, port $port)"
}

write_config() {
    cat >"$CONFIG" <<EOF
# Written by scripts/demo.sh on every start.
listen: 127.0.0.1:$PROXY_PORT
http: 127.0.0.1:$HTTP_PORT
accounts: $STATE/envproxy.db
default_environment: dev
environments:
  dev:
    description: Development (demo)
    host: 127.0.0.1
    port: $DEV_PORT
    user: app
    password: \${DEMO_DB_PASSWORD}
    database: shop
    access: read_write
  prod:
    description: Production (demo)
    host: 127.0.0.1
    port: $PROD_PORT
    user: envproxy_reader
    password: \${DEMO_READER_PASSWORD}
    database: shop
    access: read_only
EOF
}

# prod's backend account may only read (docs/policy.md): even a statement that got past
# envproxy's check could not change prod. SELECT on mysql.proc (routine definitions, no
# credentials) lets a backup take stored routines. Run on every start, so that older demo
# state gets the account too.
create_reader() {
    local host
    for host in 127.0.0.1 localhost; do
        printf "CREATE USER IF NOT EXISTS 'envproxy_reader'@'%s' IDENTIFIED BY 'reader-secret';
GRANT SELECT, SHOW VIEW ON shop.* TO 'envproxy_reader'@'%s';
GRANT SELECT, SHOW VIEW ON billing.* TO 'envproxy_reader'@'%s';
GRANT SELECT ON mysql.proc TO 'envproxy_reader'@'%s';\n" "$host" "$host" "$host" "$host"
    done | mariadb --no-defaults --user=root --socket="$STATE/prod/mysqld.sock" ||
        die "could not create prod's SELECT-only account envproxy_reader"
}

create_account() {
    [ -e "$STATE/envproxy.db" ] && return 0
    # Removed again if any step fails, so that the next start tries afresh.
    if ! { printf 'demo\n' | "$BIN" -c "$CONFIG" user add demo --password-stdin --default-env dev &&
        "$BIN" -c "$CONFIG" user grant demo dev write &&
        "$BIN" -c "$CONFIG" user grant demo prod read; } >/dev/null; then
        rm -f "$STATE/envproxy.db"
        die "could not create the account demo"
    fi
    say "account demo created (password demo)"
}

start_proxy() {
    local pid i
    if pid=$(pid_from "$PROXY_PID"); then
        say "envproxy already running (pid $pid)"
        return 0
    fi
    if port_open "$PROXY_PORT"; then
        die "port $PROXY_PORT is taken by another program; envproxy needs it"
    fi
    if port_open "$HTTP_PORT"; then
        die "port $HTTP_PORT is taken by another program; envproxy's web console needs it"
    fi
    echo "--- $(date '+%F %T') start" >>"$PROXY_LOG"
    DEMO_DB_PASSWORD=app-secret DEMO_READER_PASSWORD=reader-secret nohup "$BIN" -c "$CONFIG" run \
        </dev/null >>"$PROXY_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PROXY_PID"
    for ((i = 0; i < 200; i++)); do
        if ! alive "$pid"; then
            echo "demo: envproxy exited during start-up; end of $PROXY_LOG:" >&2
            tail -n 20 "$PROXY_LOG" >&2
            rm -f "$PROXY_PID"
            exit 1
        fi
        port_open "$PROXY_PORT" && break
        sleep 0.05
    done
    if ((i == 200)); then
        echo "demo: envproxy did not listen on 127.0.0.1:$PROXY_PORT within 10s; end of $PROXY_LOG:" >&2
        tail -n 20 "$PROXY_LOG" >&2
        stop_proxy
        exit 1
    fi
    say "envproxy started (pid $pid), log in demo/envproxy.log"
}

stop_proxy() {
    local pid i
    pid=$(pid_from "$PROXY_PID") || {
        rm -f "$PROXY_PID"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "demo: envproxy (pid $pid) still running 10s after SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PROXY_PID"
    say "envproxy stopped"
}

cmd_start() {
    [ -x "$BIN" ] || die "$BIN not found: run make first"
    command -v mariadbd >/dev/null || die "mariadbd not found: run scripts/install-deps.sh"
    mkdir -p "$STATE"
    start_server dev "$DEV_PORT"
    start_server prod "$PROD_PORT"
    create_reader
    write_config
    create_account
    start_proxy
    cat <<EOF

envproxy is listening on 127.0.0.1:$PROXY_PORT (dev and prod behind it). Connect with:

    mariadb -h127.0.0.1 -P$PROXY_PORT -udemo -pdemo -D shop@prod

(add --comments to send /* env=... */ hints: the client strips comments otherwise)
and try:

    SHOW DATABASES;
    SELECT id, status, total FROM orders;                 -- prod is read-only:
    DELETE FROM orders WHERE id = 1;                      --   this is refused
    USE shop@dev;                                         -- switch to dev
    UPDATE products SET stock = stock - 1 WHERE id = 1;   -- allowed in dev
    /* env=prod */ SELECT status FROM orders WHERE id = 3; -- one statement in prod
    SELECT name, status, access FROM __envs.environments;
    /* env=dev,prod */ SELECT COUNT(*) FROM shop.orders;  -- both at once
    SELECT * FROM __compare.query WHERE envs='dev,prod'
        AND sql='SELECT id, status FROM shop.orders' AND key='id';
    SELECT * FROM __compare.schema WHERE envs='dev,prod' AND db='shop';

The web console (log in as demo, password demo): http://127.0.0.1:$HTTP_PORT/
The HTTP API: curl -s -X POST http://127.0.0.1:$HTTP_PORT/api/v1/session \\
    -d '{"user":"demo","password":"demo"}'

Stop everything with: make demo-stop
EOF
}

cmd_stop() {
    stop_proxy
    local name
    for name in dev prod; do
        if pid_from "$STATE/$name/mysqld.pid" >/dev/null; then
            "$ROOT/scripts/mariadb-test.sh" stop "$STATE/$name"
            say "$name server stopped"
        fi
    done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
