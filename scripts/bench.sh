#!/usr/bin/env bash
# Measures envproxy beside a direct MariaDB connection and HAProxy in TCP mode, on this
# machine, and prints one Markdown table of absolute figures and ratios on stdout
# (progress goes to stderr). envproxy runs twice: bare (no audit log, no statement timeout)
# and as production configurations run it (audit_log on, statement_timeout 30s). It starts everything it measures on free 127.0.0.1 ports in a
# temporary directory and stops it all on exit, Ctrl-C included. It is not part of
# `make test`, and it never fails on a number: it exits non-zero only when something
# could not be set up.
#
#   scripts/bench.sh
#
# BENCH_SECONDS      length of each sysbench run, in seconds (default 10)
# BENCH_CONN_SECONDS length of each connection-rate loop, in seconds (default 5)
# BENCH_IDLE         idle clients opened for the memory figure (default 10000; fewer through
#                    HAProxy when the file limit is short: it needs two descriptors a client)
# BENCH_CALLGRIND    0 skips the instructions-per-query figures, which run the proxies under
#                    valgrind's callgrind (default 1); "only" measures nothing else
# BENCH_QUERIES      point selects counted under callgrind (default 20000); with
#                    BENCH_CG_WORKLOAD=oltp_read_only, transactions (16 queries each)
# BENCH_CG_WORKLOAD  the sysbench workload run under callgrind: oltp_point_select (default) or
#                    oltp_read_only (ranges, ORDER BY, DISTINCT, SUM: the relay's per-row cost
#                    and BEGIN/COMMIT); the figure is per query either way
# BENCH_CG_THREADS   sysbench threads of the run under callgrind (default 1): what the count
#                    of instructions does with many sessions at once
# BENCH_TABLES, BENCH_TABLE_SIZE   sysbench data set (default 4 tables of 100000 rows)
# Beside each sysbench rate, the CPU time (user + system, all threads) each proxy used per
# query during that run is printed: it says where a rate gap comes from when the CPUs are
# shared by the client, the server and the proxy.
# BENCH_THREADS      sysbench thread counts, in quotes (default "1 8 64")
# BENCH_KEEP=1       keep the temporary directory (logs, configurations) afterwards
# BENCH_ONLY=http    only the HTTP front door's rows (no HAProxy, sysbench or callgrind): point
#                    selects through POST /api/v1/query beside the MySQL port, and a
#                    100,000-row JSON answer with the proxy's peak RSS
# ENVPROXY_BIN       the binary to measure (default build/envproxy, made with `make` if missing)
#
# Missing tools (haproxy, sysbench, valgrind) are installed with apt-get; MariaDB and
# PyMySQL come from scripts/install-deps.sh.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATH=$PATH:/usr/sbin:/sbin
PY=/usr/bin/python3
BIN=${ENVPROXY_BIN:-$ROOT/build/envproxy}
SECONDS_RUN=${BENCH_SECONDS:-10}
CONN_SECONDS=${BENCH_CONN_SECONDS:-5}
IDLE=${BENCH_IDLE:-10000}
CALLGRIND=${BENCH_CALLGRIND:-1}
CG_QUERIES=${BENCH_QUERIES:-20000}
CG_WORKLOAD=${BENCH_CG_WORKLOAD:-oltp_point_select}
CG_THREADS=${BENCH_CG_THREADS:-1}
TABLES=${BENCH_TABLES:-4}
TABLE_SIZE=${BENCH_TABLE_SIZE:-100000}
STREAM_ROWS=1000000
HTTP_ROWS=100000
ONLY=${BENCH_ONLY:-}
case "$ONLY" in
'' | http) ;;
*) echo "bench: BENCH_ONLY must be empty or http, got '$ONLY'" >&2 && exit 1 ;;
esac
read -r -a THREAD_COUNTS <<<"${BENCH_THREADS:-1 8 64}"
for n in "${THREAD_COUNTS[@]}"; do
    case "$n" in
    '' | *[!0-9]* | 0*) echo "bench: BENCH_THREADS must be positive whole numbers, got '$n'" >&2 && exit 1 ;;
    esac
done
WORKLOADS=(oltp_point_select oltp_read_only)

DB_USER=app
DB_PASSWORD=app-secret
PX_USER=bench
PX_PASSWORD=bench-pw

# Messages go to fd 9, the script's stderr: a trap can run inside a function whose
# output is redirected to a log.
exec 9>&2
say() { echo "bench: $*" >&9; }
die() {
    echo "bench: $*" >&9
    exit 1
}

case "$CG_WORKLOAD" in
oltp_point_select) CG_WHAT="point select" ;;
oltp_read_only) CG_WHAT="read_only query" ;;
*) die "BENCH_CG_WORKLOAD must be oltp_point_select or oltp_read_only, got '$CG_WORKLOAD'" ;;
esac
case "$CG_THREADS" in
'' | *[!0-9]* | 0) die "BENCH_CG_THREADS must be a positive number, got '$CG_THREADS'" ;;
esac
case "$CALLGRIND" in
0 | 1 | only) ;;
*) die "BENCH_CALLGRIND must be 0, 1 or only, got '$CALLGRIND'" ;;
esac
for v in BENCH_SECONDS:SECONDS_RUN BENCH_CONN_SECONDS:CONN_SECONDS BENCH_IDLE:IDLE \
    BENCH_QUERIES:CG_QUERIES BENCH_TABLES:TABLES BENCH_TABLE_SIZE:TABLE_SIZE; do
    name=${v#*:}
    value=${!name}
    case "$value" in
    '' | *[!0-9]* | 0) die "${v%%:*} must be a whole number above 0, got '$value'" ;;
    esac
done

# ---------------------------------------------------------------------------------------
# Processes this script started, stopped on exit

T=
DB_DIR=
HAPROXY_PID=
PROXY_PID=
AUDIT_PID=
CG_PID=
CHILD=

alive() {
    local state
    [ -n "$1" ] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -e 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "${state%% *}" != Z ]
}

# Stops process $1 (SIGTERM, SIGKILL after 10 s) and reaps it if it is our child.
stop_pid() {
    local pid=$1 i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

# shellcheck disable=SC2317 # called by the traps below
cleanup() {
    trap - EXIT INT TERM
    [ -n "$CHILD" ] && stop_pid "$CHILD"
    stop_pid "$CG_PID"
    stop_pid "$PROXY_PID"
    stop_pid "$AUDIT_PID"
    stop_pid "$HAPROXY_PID"
    if [ -n "$DB_DIR" ]; then
        "$ROOT/scripts/mariadb-test.sh" stop "$DB_DIR" >/dev/null 2>&1 ||
            say "could not stop the MariaDB server in $DB_DIR"
    fi
    if [ -n "$T" ] && [ -d "$T" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            say "kept $T"
        else
            rm -rf "$T"
        fi
    fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# Runs a command in the background and waits for it, so that Ctrl-C is handled at once
# (the cleanup stops it); returns its exit status.
run() {
    local rc
    "$@" &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=
    return $rc
}

# ---------------------------------------------------------------------------------------
# Tools

install_packages() {
    local sudo=() policy=/usr/sbin/policy-rc.d added=0 rc=0 log
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install $* as root"
        sudo=(sudo)
    fi
    say "installing $*"
    # Keep the packages from starting system-wide services (HAProxy on its default config).
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added=1
    fi
    log=$(mktemp)
    if ! {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y update &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
                --no-install-recommends install "$@"
    } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rc=1
    fi
    rm -f "$log"
    [ "$added" -eq 1 ] && "${sudo[@]}" rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get could not install $*"
}

need=()
if [ -z "$ONLY" ]; then
    command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
    command -v sysbench >/dev/null 2>&1 || need+=(sysbench)
    if [ "$CALLGRIND" != 0 ] && ! command -v valgrind >/dev/null 2>&1; then
        need+=(valgrind)
    fi
fi
if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb >/dev/null 2>&1 ||
    ! "$PY" -c 'import pymysql' 2>/dev/null; then
    "$ROOT/scripts/install-deps.sh" || die "scripts/install-deps.sh failed"
fi
[ ${#need[@]} -eq 0 ] || install_packages "${need[@]}"
[ -n "$ONLY" ] || command -v haproxy >/dev/null 2>&1 || die "haproxy not found after installing it"

if [ -z "${ENVPROXY_BIN:-}" ] && [ ! -x "$BIN" ]; then
    say "building envproxy"
    make -C "$ROOT" >&2 || die "make failed"
fi
[ -x "$BIN" ] || die "$BIN not found or not executable"

# File descriptors: each idle client needs one in the client process and one in envproxy;
# HAProxy holds two per client (one towards MariaDB), plus a few of its own. Each process
# has its own limit: raised here, inherited by all.
want_fds=$((IDLE * 2 + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
    if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want_fds" ]; then
        ulimit -Hn "$want_fds" 2>/dev/null || true
    fi
    ulimit -Sn "$want_fds" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
fi
fds=$(ulimit -n)
[ "$fds" != unlimited ] || fds=1048576
declare -A IDLE_N=([envproxy]=$IDLE [haproxy]=$IDLE)
if [ "$IDLE" -gt $((fds - 1024)) ]; then
    IDLE_N[envproxy]=$((fds - 1024))
    [ "${IDLE_N[envproxy]}" -ge 1 ] || die "ulimit -n is only $fds"
    say "ulimit -n is $fds: opening ${IDLE_N[envproxy]} idle clients through envproxy"
fi
if [ "$IDLE" -gt $(((fds - 1024) / 2)) ]; then
    IDLE_N[haproxy]=$(((fds - 1024) / 2))
    say "ulimit -n is $fds: opening ${IDLE_N[haproxy]} idle clients through HAProxy (two descriptors each)"
fi

T=$(mktemp -d /tmp/envproxy-bench.XXXXXX) || die "mktemp failed"
DB_DIR_PATH=$T/db

read -r DB_PORT HA_PORT PX_PORT CG_PX_PORT CG_HA_PORT PA_PORT CG_PA_PORT HTTP_PORT < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(8):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
[ -n "${HTTP_PORT:-}" ] || die "could not find free loopback ports"

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits up to $3 seconds for port $2 while process $1 lives.
wait_port() {
    local pid=$1 port=$2 secs=$3 i
    for ((i = 0; i < secs * 20; i++)); do
        alive "$pid" || return 1
        port_open "$port" && return 0
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------------------------------
# MariaDB, HAProxy and envproxy

say "starting MariaDB on 127.0.0.1:$DB_PORT (data in $DB_DIR_PATH)"
echo "CREATE DATABASE sbtest;" >"$T/seed.sql"
max_conn=$((IDLE + 500))
[ "$max_conn" -ge 1000 ] || max_conn=1000
open_files=$((max_conn + 2048))
[ "$open_files" -le "$fds" ] || open_files=$fds
DB_DIR=$DB_DIR_PATH
MARIADB_TEST_ARGS="--max-connections=$max_conn --innodb-buffer-pool-size=512M \
--max-prepared-stmt-count=100000 --open-files-limit=$open_files" \
    "$ROOT/scripts/mariadb-test.sh" start "$DB_DIR" "$DB_PORT" bench "$T/seed.sql" \
    >/dev/null || die "MariaDB did not start"

cat >"$T/haproxy.cfg" <<EOF
global
    maxconn $((IDLE_N[haproxy] + 100))
    nbthread 2

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend mysql
    bind 127.0.0.1:$HA_PORT
    default_backend mariadb

backend mariadb
    server db 127.0.0.1:$DB_PORT
EOF
sed -e "s/:$HA_PORT\$/:$CG_HA_PORT/" "$T/haproxy.cfg" >"$T/haproxy-callgrind.cfg"

start_haproxy() {
    say "starting HAProxy on 127.0.0.1:$HA_PORT"
    haproxy -f "$T/haproxy.cfg" -db </dev/null >>"$T/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    wait_port "$HAPROXY_PID" "$HA_PORT" 10 || {
        tail -n 20 "$T/haproxy.log" >&2
        die "HAProxy did not start"
    }
}

# write_proxy_config FILE PORT [AUDIT_FILE [HTTP_PORT]]: with AUDIT_FILE, the audit log is on
# and statements have a timeout, as in a production configuration; with HTTP_PORT, an http
# listener there.
write_proxy_config() {
    local audit="" timeout=0
    if [ -n "${3:-}" ]; then
        audit="audit_log: $3"
        timeout=30s
    fi
    cat >"$1" <<EOF
listen: 127.0.0.1:$2
${4:+http: 127.0.0.1:$4}
threads: 2
accounts: $T/envproxy.db
default_environment: bench
log_level: warn
$audit
environments:
  bench:
    host: 127.0.0.1
    port: $DB_PORT
    user: $DB_USER
    password: \${BENCH_DB_PASSWORD}
    database: sbtest
    access: read_write
    limits: { max_rows: 0, statement_timeout: $timeout }
    # Twice the largest client count: each worker keeps the idle connections it parked, so
    # a pool exactly as large as the number of clients holding transactions makes sessions
    # wait for connections handed between the workers (docs/performance.md, "The pool").
    pool: { max: 128 }
    tls: { mode: disabled }
EOF
}
export BENCH_DB_PASSWORD=$DB_PASSWORD
write_proxy_config "$T/proxy.yaml" "$PX_PORT" "" "$HTTP_PORT"
write_proxy_config "$T/proxy-callgrind.yaml" "$CG_PX_PORT"
write_proxy_config "$T/proxy-audit.yaml" "$PA_PORT" "$T/audit.jsonl"
write_proxy_config "$T/proxy-audit-callgrind.yaml" "$CG_PA_PORT" "$T/audit-callgrind.jsonl"
"$BIN" -c "$T/proxy.yaml" check >/dev/null 2>&1 || {
    "$BIN" -c "$T/proxy.yaml" check >&2
    die "envproxy rejected the generated configuration"
}
{ printf '%s\n' "$PX_PASSWORD" | "$BIN" -c "$T/proxy.yaml" user add "$PX_USER" \
    --password-stdin --default-env bench &&
    "$BIN" -c "$T/proxy.yaml" user grant "$PX_USER" bench write; } >"$T/user.log" 2>&1 || {
    cat "$T/user.log" >&2
    die "could not create the envproxy account"
}

start_proxy() {
    say "starting envproxy on 127.0.0.1:$PX_PORT, and with the audit log on 127.0.0.1:$PA_PORT"
    "$BIN" -c "$T/proxy.yaml" run </dev/null >>"$T/envproxy.log" 2>&1 &
    PROXY_PID=$!
    "$BIN" -c "$T/proxy-audit.yaml" run </dev/null >>"$T/envproxy-audit.log" 2>&1 &
    AUDIT_PID=$!
    wait_port "$PROXY_PID" "$PX_PORT" 10 || {
        tail -n 20 "$T/envproxy.log" >&2
        die "envproxy did not start"
    }
    wait_port "$AUDIT_PID" "$PA_PORT" 10 || {
        tail -n 20 "$T/envproxy-audit.log" >&2
        die "envproxy (audit log on) did not start"
    }
}

# Target name -> port, user, password, and the process whose memory is read. "audit" is
# envproxy with the audit log on and a statement timeout.
declare -A T_PORT=([direct]=$DB_PORT [haproxy]=$HA_PORT [envproxy]=$PX_PORT [audit]=$PA_PORT)
declare -A T_USER=([direct]=$DB_USER [haproxy]=$DB_USER [envproxy]=$PX_USER [audit]=$PX_USER)
declare -A T_PASS=([direct]=$DB_PASSWORD [haproxy]=$DB_PASSWORD [envproxy]=$PX_PASSWORD
    [audit]=$PX_PASSWORD)
TARGETS=(direct haproxy envproxy audit)
[ -z "$ONLY" ] || TARGETS=(direct envproxy)
target_pid() {
    case "$1" in
    haproxy) echo "$HAPROXY_PID" ;;
    envproxy) echo "$PROXY_PID" ;;
    audit) echo "$AUDIT_PID" ;;
    *) echo "" ;;
    esac
}


cli() {
    local t=$1
    shift
    mariadb --no-defaults --skip-ssl -h127.0.0.1 -P"${T_PORT[$t]}" -u"${T_USER[$t]}" \
        -p"${T_PASS[$t]}" -D sbtest --connect-timeout=10 --batch --skip-column-names "$@"
}

if [ "$CALLGRIND" != only ]; then
    [ -n "$ONLY" ] || start_haproxy
    start_proxy
    for t in "${TARGETS[@]}"; do
        got=$(cli "$t" -e 'SELECT 1' 2>&1) || die "cannot query MariaDB through $t: $got"
    done
fi
if [ -n "$ONLY" ]; then
    # The point selects' table, as sysbench would make it (no sysbench in this mode).
    cli direct -e "CREATE TABLE sbtest1 (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120),
        pad CHAR(60)) SELECT seq AS id, seq AS k, REPEAT('c', 120) AS c, REPEAT('p', 60) AS pad
        FROM seq_1_to_$TABLE_SIZE" || die "could not create sbtest1"
fi

# ---------------------------------------------------------------------------------------
# Machine and versions

cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
v_mariadb=$(cli direct -e 'SELECT VERSION()' 2>/dev/null)
v_haproxy=$(haproxy -v 2>/dev/null | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p')
v_sysbench=$(sysbench --version 2>/dev/null | awk '{ print $2 }')
v_envproxy=$("$BIN" --version 2>/dev/null | awk '{ print $2 }')

# ---------------------------------------------------------------------------------------
# Results: R[key,target] holds a number, "failed" or nothing.

declare -A R

kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status" 2>/dev/null; }

cat >"$T/idle.py" <<'EOF'
"""Opens N logged-in clients that then send nothing; prints: opened rss_before rss_after.

No database is named at login, so that no backend work is part of the figure (through
HAProxy every client holds a MariaDB connection all the same)."""
import sys
import time

import pymysql

port, user, password, n, pid, limit = sys.argv[1:7]
port, n, limit = int(port), int(n), float(limit)


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


# One client first, so that what is done once per process is not counted.
pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                autocommit=None, connect_timeout=10).close()
time.sleep(0.5)
before = rss_kib()
conns = []
deadline = time.monotonic() + limit
try:
    for _ in range(n):
        if time.monotonic() > deadline:
            print(f"stopped after {limit:.0f}s", file=sys.stderr)
            break
        conns.append(pymysql.connect(host="127.0.0.1", port=port, user=user,
                                     password=password, autocommit=None,
                                     connect_timeout=10))
except Exception as e:  # report what was reached
    print(f"client {len(conns) + 1}: {e}", file=sys.stderr)
time.sleep(1)
after = rss_kib()
print(len(conns), before, after)
for c in conns:
    c.close()
EOF

cat >"$T/connrate.py" <<'EOF'
"""Connect, log in, SELECT 1, quit, in a loop for SECONDS; prints connections per second."""
import sys
import time

import pymysql

port, user, password, seconds = sys.argv[1:5]
port, seconds = int(port), float(seconds)
n = 0
start = time.monotonic()
deadline = start + seconds
while n < 10_000_000:
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                        database="sbtest", autocommit=True, connect_timeout=10,
                        read_timeout=10)
    with c.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchall()
    c.close()
    n += 1
    if time.monotonic() >= deadline:
        break
print(f"{n / (time.monotonic() - start):.0f}")
EOF

# Memory of idle clients, first: before the other measurements grow the proxies' heaps.
if [ -z "$ONLY" ]; then
idle_run() {
    local t=$1 pid out opened before after n=${IDLE_N[$1]}
    pid=$(target_pid "$t")
    say "idle clients: $n through $t"
    if ! run "$PY" "$T/idle.py" "${T_PORT[$t]}" "${T_USER[$t]}" "${T_PASS[$t]}" \
        "$n" "$pid" 300 >"$T/idle-$t.out" 2>>"$T/idle.log"; then
        tail -n 5 "$T/idle.log" >&2
        R[idle,$t]=failed
        return
    fi
    read -r opened before after <"$T/idle-$t.out"
    if [ "${opened:-0}" -lt 1 ] || [ "${before:--1}" -lt 0 ]; then
        tail -n 5 "$T/idle.log" >&2
        R[idle,$t]=failed
        return
    fi
    [ "$opened" -lt "$n" ] && say "only $opened of $n idle clients could log in through $t"
    R[idle,$t]=$(awk -v a="$after" -v b="$before" -v n="$opened" \
        'BEGIN { printf "%.2f", (a - b) / n * 1000 / 1024 }')
    R[idle_n,$t]=$opened
    sleep 1
}
MEASURE=1
[ "$CALLGRIND" = only ] && MEASURE=0
if [ "$MEASURE" = 1 ]; then
    idle_run haproxy
    idle_run envproxy
fi

# CPU time (user + system, clock ticks, every thread) a process has used so far; empty for
# no process (direct connections).
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {
    [ -n "$1" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null
}

# sysbench
sb() {
    sysbench "$1" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$2" \
        --mysql-user="$3" --mysql-password="$4" --mysql-db=sbtest \
        --tables="$TABLES" --table-size="$TABLE_SIZE" "${@:5}"
}

say "preparing sysbench data: $TABLES tables of $TABLE_SIZE rows"
run sb oltp_read_only "$DB_PORT" "$DB_USER" "$DB_PASSWORD" --threads="$(nproc)" prepare \
    >"$T/prepare.log" 2>&1 || {
    tail -n 20 "$T/prepare.log" >&2
    die "sysbench prepare failed"
}
say "warming up the buffer pool"
run sb oltp_read_only "$DB_PORT" "$DB_USER" "$DB_PASSWORD" --threads=2 --time=5 run \
    >>"$T/prepare.log" 2>&1 || say "warm-up run failed (continuing)"

if [ "$MEASURE" = 1 ]; then
    for w in "${WORKLOADS[@]}"; do
        for n in "${THREAD_COUNTS[@]}"; do
            for t in "${TARGETS[@]}"; do
                say "$w, $n thread(s), $t (${SECONDS_RUN}s)"
                log=$T/sysbench-$w-$n-$t.log
                pid=$(target_pid "$t")
                c0=$(cpu_ticks "$pid")
                if run sb "$w" "${T_PORT[$t]}" "${T_USER[$t]}" "${T_PASS[$t]}" \
                    --threads="$n" --time="$SECONDS_RUN" --report-interval=0 run \
                    >"$log" 2>&1; then
                    R[$w-$n,$t]=$(awk '$1 == "queries:" { gsub(/[(]/, "", $3); printf "%.0f", $3 }' "$log")
                    c1=$(cpu_ticks "$pid")
                    total=$(awk '$1 == "queries:" { print $2 }' "$log")
                    if [ -n "$c0" ] && [ -n "$c1" ] && [ "${total:-0}" -gt 0 ]; then
                        R[cpu-$w-$n,$t]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v q="$total" \
                            'BEGIN { printf "%.1f", d / hz * 1e6 / q }')
                    fi
                fi
                if [ -z "${R[$w-$n,$t]:-}" ]; then
                    R[$w-$n,$t]=failed
                    say "sysbench failed, end of $log:"
                    tail -n 8 "$log" >&2
                fi
            done
        done
    done

    # One large result, best of three interleaved rounds; the proxies' peak RSS is reset
    # first (clear_refs 5) so that it covers these rounds only.
    STREAM_SQL="SELECT seq, REPEAT('x', 30) FROM seq_1_to_$STREAM_ROWS"
    for t in haproxy envproxy audit; do
        pid=$(target_pid "$t")
        rss=$(kib "$pid" VmRSS)
        [ -n "$rss" ] && R[stream_rss0,$t]=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null ||
            say "could not reset the peak RSS of $t: its figure covers its whole life"
    done
    for round in 1 2 3; do
        for t in "${TARGETS[@]}"; do
            say "streaming $STREAM_ROWS rows through $t (round $round of 3)"
            t0=$(date +%s%N)
            rows=$(cli "$t" --quick -e "$STREAM_SQL" 2>>"$T/stream.log" | wc -l)
            t1=$(date +%s%N)
            if [ "$rows" -ne "$STREAM_ROWS" ]; then
                say "got $rows rows of $STREAM_ROWS through $t"
                tail -n 3 "$T/stream.log" >&2
                [ -n "${R[stream,$t]:-}" ] || R[stream,$t]=failed
                continue
            fi
            rate=$(awk -v n="$rows" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
            if [ -z "${R[stream,$t]:-}" ] || [ "${R[stream,$t]}" = failed ] ||
                [ "$rate" -gt "${R[stream,$t]}" ]; then
                R[stream,$t]=$rate
            fi
        done
    done
    for t in haproxy envproxy audit; do
        pid=$(target_pid "$t")
        hwm=$(kib "$pid" VmHWM)
        [ -n "$hwm" ] && R[stream_hwm,$t]=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
    done

    # Connection setup rate
    for t in "${TARGETS[@]}"; do
        say "connect + SELECT 1 + quit through $t (${CONN_SECONDS}s)"
        if run "$PY" "$T/connrate.py" "${T_PORT[$t]}" "${T_USER[$t]}" "${T_PASS[$t]}" \
            "$CONN_SECONDS" >"$T/connrate-$t.out" 2>>"$T/connrate.log"; then
            R[conn,$t]=$(cat "$T/connrate-$t.out")
        else
            tail -n 3 "$T/connrate.log" >&2
            R[conn,$t]=failed
        fi
    done
fi

# Instructions per statement: the proxy under callgrind, counters zeroed before one sysbench
# client runs a fixed number of events of BENCH_CG_WORKLOAD and dumped after.
cg_measure() {
    local t=$1 port=$2 out dump ir
    shift 2
    rm -f "$T"/callgrind."$t".*
    valgrind --tool=callgrind --callgrind-out-file="$T/callgrind.$t.%p" "$@" \
        </dev/null >>"$T/callgrind-$t.log" 2>&1 &
    CG_PID=$!
    if ! wait_port "$CG_PID" "$port" 120; then
        tail -n 10 "$T/callgrind-$t.log" >&2
        stop_pid "$CG_PID"
        CG_PID=
        R[instr,$t]=failed
        return
    fi
    # A first client, uncounted: lazy start-up work and the pool's first connection.
    sb "$CG_WORKLOAD" "$port" "${T_USER[$t]}" "${T_PASS[$t]}" --threads=1 \
        --events=200 --time=0 run >"$T/callgrind-$t-warm.log" 2>&1
    if ! callgrind_control -z "$CG_PID" >>"$T/callgrind-$t.log" 2>&1; then
        say "callgrind_control could not reach $t"
        stop_pid "$CG_PID"
        CG_PID=
        R[instr,$t]=failed
        return
    fi
    out=$T/callgrind-$t-run.log
    if run sb "$CG_WORKLOAD" "$port" "${T_USER[$t]}" "${T_PASS[$t]}" --threads="$CG_THREADS" \
        --events="$CG_QUERIES" --time=0 --report-interval=0 run >"$out" 2>&1 &&
        callgrind_control -d "$CG_PID" >>"$T/callgrind-$t.log" 2>&1; then
        dump=$T/callgrind.$t.$CG_PID.1
        queries=$(awk '$1 == "queries:" { print $2 }' "$out")
        ir=$(awk '$1 == "summary:" { print $2; exit }' "$dump" 2>/dev/null)
        if [ -n "$ir" ] && [ -n "$queries" ] && [ "$queries" -gt 0 ]; then
            R[instr,$t]=$(awk -v i="$ir" -v q="$queries" 'BEGIN { printf "%.0f", i / q }')
        fi
    fi
    [ -n "${R[instr,$t]:-}" ] || {
        R[instr,$t]=failed
        tail -n 5 "$out" "$T/callgrind-$t.log" >&2
    }
    stop_pid "$CG_PID"
    CG_PID=
}
if [ "$CALLGRIND" != 0 ]; then
    say "instructions per $CG_WHAT under callgrind: HAProxy ($CG_QUERIES events)"
    cg_measure haproxy "$CG_HA_PORT" haproxy -f "$T/haproxy-callgrind.cfg" -db
    say "instructions per $CG_WHAT under callgrind: envproxy ($CG_QUERIES events)"
    cg_measure envproxy "$CG_PX_PORT" "$BIN" -c "$T/proxy-callgrind.yaml" run
    say "instructions per $CG_WHAT under callgrind: envproxy, audit log on ($CG_QUERIES events)"
    cg_measure audit "$CG_PA_PORT" "$BIN" -c "$T/proxy-audit-callgrind.yaml" run
fi
fi # BENCH_ONLY

# ---------------------------------------------------------------------------------------
# The HTTP front door: one Python client with keep-alive, point selects with a bound
# parameter through POST /api/v1/query beside the same through the MySQL port (PyMySQL,
# the same client language, so the difference is the door), and one large JSON answer.

cat >"$T/door.py" <<'EOF'
"""qps-mysql PORT | qps-http PORT: point selects per second for SECONDS, one client;
rows-http PORT: rows per second of one ROWS-row JSON answer (checked whole)."""
import http.client
import json
import sys
import time

import pymysql

mode, port, user, password, arg = sys.argv[1:6]
port = int(port)
SQL = "SELECT c FROM sbtest1 WHERE id = "


def http_session():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/api/v1/session", body=json.dumps({"user": user, "password": password}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    tok = json.loads(r.read())["token"]
    return c, {"Content-Type": "application/json", "Authorization": "Bearer " + tok}


def post(c, h, body):
    c.request("POST", "/api/v1/query", body=json.dumps(body), headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"HTTP {r.status}: {data[:200]!r}")
    return data


if mode == "qps-mysql":
    conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                           database="sbtest", autocommit=True, connect_timeout=10)
    cur = conn.cursor()
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < float(arg) and n < 10_000_000:
        cur.execute(SQL + "%s", (n % 1000 + 1,))
        cur.fetchall()
        n += 1
    print(f"{n / (time.monotonic() - t0):.0f}")
elif mode == "qps-http":
    c, h = http_session()
    q = {"env": "bench", "database": "sbtest", "sql": SQL + "?", "params": [1]}
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < float(arg) and n < 10_000_000:
        q["params"][0] = n % 1000 + 1
        post(c, h, q)
        n += 1
    print(f"{n / (time.monotonic() - t0):.0f}")
else:
    c, h = http_session()
    rows = int(arg)
    q = {"env": "bench", "sql": "SELECT seq, seq * 2 AS twice, CONCAT('row-', seq) AS label "
                                f"FROM seq_1_to_{rows}"}
    t0 = time.monotonic()
    got = len(json.loads(post(c, h, q))["rows"])
    dt = time.monotonic() - t0
    if got != rows:
        raise SystemExit(f"got {got} rows of {rows}")
    print(f"{rows / dt:.0f}")
EOF

# ratio A B: A / B with two decimals, or "–" when either is not a number.
ratio() {
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) { print "–"; exit }
        printf "%.2f", a / b }'
}

if [ "$CALLGRIND" != only ]; then # the HTTP rows need the running proxies
    for t in "${TARGETS[@]}"; do
        say "point selects through the MySQL port of $t, one PyMySQL client (${CONN_SECONDS}s)"
        if run "$PY" "$T/door.py" qps-mysql "${T_PORT[$t]}" "${T_USER[$t]}" "${T_PASS[$t]}" \
            "$CONN_SECONDS" >"$T/qps-$t.out" 2>>"$T/http.log"; then
            R[pyqps,$t]=$(cat "$T/qps-$t.out")
        else
            tail -n 3 "$T/http.log" >&2
            R[pyqps,$t]=failed
        fi
    done
    say "point selects through POST /api/v1/query, one client with keep-alive (${CONN_SECONDS}s)"
    if run "$PY" "$T/door.py" qps-http "$HTTP_PORT" "$PX_USER" "$PX_PASSWORD" "$CONN_SECONDS" \
        >"$T/qps-http.out" 2>>"$T/http.log"; then
        R[httpqps,envproxy]=$(cat "$T/qps-http.out")
    else
        tail -n 3 "$T/http.log" >&2
        R[httpqps,envproxy]=failed
    fi
    R[httpratio,envproxy]=$(ratio "${R[httpqps,envproxy]:-}" "${R[pyqps,envproxy]:-}")
    rss=$(kib "$PROXY_PID" VmRSS)
    [ -n "$rss" ] && R[http_rss0,envproxy]=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
    echo 5 >"/proc/$PROXY_PID/clear_refs" 2>/dev/null ||
        say "could not reset the peak RSS of envproxy: its figure covers its whole life"
    for round in 1 2 3; do
        say "a $HTTP_ROWS-row JSON answer over HTTP (round $round of 3)"
        if run "$PY" "$T/door.py" rows-http "$HTTP_PORT" "$PX_USER" "$PX_PASSWORD" "$HTTP_ROWS" \
            >"$T/rows-http.out" 2>>"$T/http.log"; then
            rate=$(cat "$T/rows-http.out")
            if [ -z "${R[httprows,envproxy]:-}" ] || [ "$rate" -gt "${R[httprows,envproxy]}" ]; then
                R[httprows,envproxy]=$rate
            fi
        else
            tail -n 3 "$T/http.log" >&2
        fi
    done
    [ -n "${R[httprows,envproxy]:-}" ] || R[httprows,envproxy]=failed
    hwm=$(kib "$PROXY_PID" VmHWM)
    [ -n "$hwm" ] && R[http_hwm,envproxy]=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
fi

# ---------------------------------------------------------------------------------------
# The table

cell() { echo "${1:-–}"; }
# One line of the table: the four figures, then envproxy (bare) / HAProxy, envproxy (audit
# on) / HAProxy, audit on / bare, and envproxy (bare) / direct.
row() {
    local label=$1 key=$2 d h e a
    d=${R[$key,direct]:-}
    h=${R[$key,haproxy]:-}
    e=${R[$key,envproxy]:-}
    a=${R[$key,audit]:-}
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(cell "$d")" \
        "$(cell "$h")" "$(cell "$e")" "$(cell "$a")" "$(ratio "$e" "$h")" "$(ratio "$a" "$h")" \
        "$(ratio "$a" "$e")" "$(ratio "$e" "$d")"
}

idle_label="RSS growth per 1,000 idle clients, MiB (opened: HAProxy ${R[idle_n,haproxy]:-0}, envproxy ${R[idle_n,envproxy]:-0})"

{
    echo "Machine: $(nproc) CPUs ($cpu_model), $mem_gib GiB RAM; client, MariaDB and proxy share them."
    echo "Versions: MariaDB $v_mariadb, HAProxy $v_haproxy, sysbench $v_sysbench, envproxy $v_envproxy."
    if [ -z "$ONLY" ]; then
        echo "sysbench: $TABLES tables x $TABLE_SIZE rows, ${SECONDS_RUN}s per run, prepared statements; envproxy: 2 threads, pool max 128, log_level warn;"
        echo "\"envproxy\": no audit log, no statement timeout; \"+ audit\": audit_log on, statement_timeout 30s."
    fi
    echo "HTTP: one Python client each (http.client with keep-alive; PyMySQL on the MySQL port), ${CONN_SECONDS}s per point-select run."
    [ -z "$ONLY" ] || echo "BENCH_ONLY=http: HAProxy, sysbench and callgrind skipped."
    echo
    echo "| measure | direct | HAProxy | envproxy | envproxy + audit | envproxy/HAProxy | + audit/HAProxy | audit on/off | envproxy/direct |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if [ -z "$ONLY" ] && [ "$MEASURE" = 1 ]; then
        for w in "${WORKLOADS[@]}"; do
            for n in "${THREAD_COUNTS[@]}"; do
                row "${w#oltp_}, $n thread$([ "$n" -gt 1 ] && echo s), queries/s" "$w-$n"
            done
        done
        for w in "${WORKLOADS[@]}"; do
            for n in "${THREAD_COUNTS[@]}"; do
                row "${w#oltp_}, $n thread$([ "$n" -gt 1 ] && echo s), CPU µs per query in the proxy" "cpu-$w-$n"
            done
        done
        row "$STREAM_ROWS-row result, rows/s (best of 3)" stream
        row "RSS just before streaming it, MiB" stream_rss0
        row "peak RSS while streaming it, MiB" stream_hwm
        row "connect + login + SELECT 1 + quit, per s" conn
        row "$idle_label" idle
    fi
    if [ -z "$ONLY" ] && [ "$CALLGRIND" != 0 ]; then
        row "instructions per $CG_WHAT in the proxy (callgrind)" instr
    fi
    row "point selects/s, one PyMySQL client, MySQL port" pyqps
    row "point selects/s, one HTTP client, POST /api/v1/query (keep-alive, bound parameter)" httpqps
    row "HTTP / MySQL port through envproxy, point selects" httpratio
    row "$HTTP_ROWS-row JSON answer over HTTP, rows/s (best of 3)" httprows
    row "RSS just before the JSON answers, MiB" http_rss0
    row "peak RSS while answering them, MiB" http_hwm
} >"$T/table.md"

say "done"
cat "$T/table.md"
exit 0
