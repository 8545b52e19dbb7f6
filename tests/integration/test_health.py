"""Health checks: the first check before clients are accepted, recovery within one interval,
no trust in a connection from before an outage, a deadline of their own for a stalled
backend, and the backend account's privileges (the second wall) in /health, __envs,
/metrics, the log and `envproxy check`."""

import json
import os
import re
import signal
import time
import urllib.request

import pymysql
import pytest

from harness import free_port


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


def health(port):
    """{env: environment entry} from /health."""
    doc = json.loads(http_get(port, "/health"))
    return {e["name"]: e for e in doc["environments"]}


def metric(port, name, env):
    text = http_get(port, "/metrics")
    m = re.search(r'^%s\{env="%s"\} (-?[0-9.]+)$' % (name, env), text, re.M)
    assert m, f"{name} for {env} missing from /metrics"
    return float(m.group(1))


def envs_rows(p, columns="name, status, backend_writable, backend_privileges"):
    conn = p.connect(user="alice", password="alice-pw")
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {columns} FROM __envs.environments ORDER BY name")
            return {r[0]: r[1:] for r in cur.fetchall()}
    finally:
        conn.close()


def wait_for(pred, timeout, step=0.1):
    """Polls pred until it returns a true value or timeout seconds pass; returns the time
    taken, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def http_proxy(make_proxy, extra=None, **kw):
    """A proxy with /health and /metrics, returned once its first checks are done (the HTTP
    port answers from the start, before clients are accepted)."""
    port = free_port()
    cfg = {"http": f"127.0.0.1:{port}"}
    cfg.update(extra or {})
    p = make_proxy(extra_yaml=cfg, **kw)
    p.http_port = port

    def checked():
        try:
            return all(e["status"] != "unknown" for e in health(port).values())
        except OSError:
            return False  # the HTTP port opens just after the client port

    assert wait_for(checked, 10) is not None
    return p


# ---- the first check -----------------------------------------------------------------


def test_first_check_runs_before_clients_are_accepted(make_proxy, servers):
    """The first client after start-up sees every environment checked: 'up' for a running
    server, 'down' for a stopped one, never 'unknown'."""
    p = make_proxy(extra_yaml={"health_interval": "30s"})
    got = envs_rows(p, "name, status, checked_at")
    assert {k: v[0] for k, v in got.items()} == {"dev": "up", "prod": "up"}
    assert all(v[1] is not None for v in got.values())
    p.stop()
    servers.stop("prod")
    try:
        p2 = make_proxy(extra_yaml={"health_interval": "30s"})
        got = envs_rows(p2, "name, status, last_error")
        assert got["dev"][0] == "up"
        assert got["prod"][0] == "down" and got["prod"][1]
    finally:
        servers.start("prod")


def test_stalled_backend_at_start_does_not_hold_up_the_others(make_proxy, servers):
    """prod is stopped with SIGSTOP when the proxy starts: clients are accepted after the
    first check's deadline (health_timeout 1s), prod shows 'down' with the deadline as its
    error, and dev serves."""
    pid = servers.prod.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        p = make_proxy(extra_yaml={"health_interval": "30s", "health_timeout": "1s"})
        got = envs_rows(p, "name, status, last_error")
        assert time.monotonic() - t0 < 8
        assert got["dev"][0] == "up"
        assert got["prod"][0] == "down" and "health_timeout" in got["prod"][1]
        assert p.query("SELECT 1") == [(1,)]
    finally:
        os.kill(pid, signal.SIGCONT)


# ---- recovery -----------------------------------------------------------------------


def test_recovery_seen_within_one_interval(make_proxy, servers):
    """After prod was stopped for a while (long enough for any back-off to grow), the
    health check sees it back within one interval (1s) plus its deadline, without any
    statement to prod helping."""
    p = http_proxy(make_proxy, {"health_interval": "1s", "health_timeout": "1s"})
    assert wait_for(lambda: health(p.http_port)["prod"]["status"] == "up", 5) is not None
    servers.stop("prod")
    try:
        assert wait_for(lambda: health(p.http_port)["prod"]["status"] == "down", 5) is not None
        time.sleep(18)  # a back-off doubling from 1 s checks at 15 s, then 31 s
    finally:
        servers.start("prod")
    took = wait_for(lambda: health(p.http_port)["prod"]["status"] == "up", 15)
    assert took is not None and took <= 3.0, took
    assert envs_rows(p)["prod"][0] == "up"
    assert p.query("SELECT 1", user="bob", password="bob-pw") == [(1,)]


def test_old_connection_not_trusted_after_a_restart(make_proxy, servers):
    """prod is killed with SIGKILL right after a health check and restarted before the next
    one: the checker's connection from before is dead, and its failure is retried on a new
    connection instead of calling a running server down."""
    interval = 10
    p = http_proxy(make_proxy, {"health_interval": f"{interval}s", "health_timeout": "2s"})
    port = p.http_port
    assert wait_for(lambda: health(port)["prod"]["status"] == "up", 5) is not None
    first = health(port)["prod"]
    # Wait for the next check, then strike at once.
    assert wait_for(lambda: health(port)["prod"]["checked_at"] != first["checked_at"],
                    interval + 3, step=0.05) is not None
    t0 = time.monotonic()
    os.kill(servers.prod.pid, signal.SIGKILL)
    servers.start("prod")
    restart = time.monotonic() - t0
    assert restart < interval - 2, f"restart took {restart:.1f}s: too slow for this test"
    seen = []
    deadline = time.monotonic() + interval + 4
    while time.monotonic() < deadline:
        seen.append(health(port)["prod"]["status"])
        time.sleep(0.2)
    assert "down" not in seen, seen
    assert "env prod: down" not in p.log_text()


def test_stalled_backend_is_down_within_interval_plus_deadline(make_proxy, servers):
    """kill -STOP of prod: /health, __envs and /metrics say 'down' within one interval (1s)
    plus the check's deadline (1s), not after TCP's or the client library's 30 s; after
    kill -CONT it is up again within the same bound."""
    p = http_proxy(make_proxy, {"health_interval": "1s", "health_timeout": "1s"})
    port = p.http_port
    assert wait_for(lambda: health(port)["prod"]["status"] == "up", 5) is not None
    pid = servers.prod.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        took = wait_for(lambda: health(port)["prod"]["status"] == "down", 15)
        assert took is not None and took <= 3.5, took
        assert "health_timeout" in health(port)["prod"]["last_error"]
        assert envs_rows(p)["prod"][0] == "down"
        assert metric(port, "envproxy_environment_up", "prod") == 0
        assert health(port)["dev"]["status"] == "up"
    finally:
        os.kill(pid, signal.SIGCONT)
    took = wait_for(lambda: health(port)["prod"]["status"] == "up", 15)
    assert took is not None and took <= 3.5, took


# ---- the backend account's privileges ---------------------------------------------------


RO_USER, RO_PASSWORD = "envproxy_ro", "ro-secret"


def create_select_only(servers, user=RO_USER, extra=()):
    stmts = []
    for host in ("127.0.0.1", "localhost"):
        stmts += [f"DROP USER IF EXISTS '{user}'@'{host}'",
                  f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{RO_PASSWORD}'",
                  f"GRANT SELECT, SHOW VIEW ON shop.* TO '{user}'@'{host}'"]
        stmts += [s.format(host=host, user=user) for s in extra]
    for s in stmts:
        servers.sql("prod", s)


def drop_user(servers, user=RO_USER):
    for host in ("127.0.0.1", "localhost"):
        servers.sql("prod", f"DROP USER IF EXISTS '{user}'@'{host}'")


def test_all_privileges_backend_is_reported(make_proxy, servers):
    """The harness's backend account has ALL PRIVILEGES: prod (read_only) says so in /health,
    __envs.environments, /metrics and once in the log; dev (read_write) reports it too but
    without a warning."""
    p = http_proxy(make_proxy, {"health_interval": "1s"})
    port = p.http_port
    prod = health(port)["prod"]
    assert prod["backend_writable"] == "yes"
    assert "ALL PRIVILEGES ON *.*" in prod["backend_privileges"]
    assert "GRANT OPTION" in prod["backend_privileges"]
    rows = envs_rows(p)
    assert rows["prod"][1] == "yes" and "ALL PRIVILEGES" in rows["prod"][2]
    assert rows["dev"][1] == "yes"
    assert metric(port, "envproxy_backend_writable", "prod") == 1
    time.sleep(3)  # more checks: the warning is not repeated
    log = p.log_text()
    assert log.count("env prod: the backend account 'app' can change things") == 1
    assert "env dev: the backend account" not in log
    assert "PASSWORD" not in log and "6C7A" not in json.dumps(health(port))


def test_select_only_backend_is_not_reported_and_changes_are_seen(make_proxy, servers):
    """A SELECT-only account (created here as root) is reported as 'no' and not warned
    about; statements still work through it. A privilege granted while the proxy runs is
    seen at the next check and warned about once; revoking it is noted too. A role granted
    to the account (not active by default) counts as well."""
    create_select_only(servers)
    try:
        p = http_proxy(make_proxy, {"health_interval": "1s", "environments": {"prod": {
            "user": RO_USER, "password": RO_PASSWORD}}})
        port = p.http_port
        assert health(port)["prod"]["backend_writable"] == "no"
        assert "backend_privileges" not in health(port)["prod"]
        assert envs_rows(p)["prod"][1:] == ("no", None)
        assert metric(port, "envproxy_backend_writable", "prod") == 0
        assert p.query("SELECT COUNT(*) FROM customers", user="bob", password="bob-pw")[0][0] > 0
        assert not [ln for ln in p.log_text().splitlines()
                    if "env prod" in ln and "can change things" in ln]

        servers.sql("prod", f"GRANT INSERT ON shop.orders TO '{RO_USER}'@'127.0.0.1'")
        assert wait_for(lambda: health(port)["prod"]["backend_writable"] == "yes", 5)
        assert "INSERT ON `shop`.`orders`" in health(port)["prod"]["backend_privileges"]
        servers.sql("prod", f"REVOKE INSERT ON shop.orders FROM '{RO_USER}'@'127.0.0.1'")
        assert wait_for(lambda: health(port)["prod"]["backend_writable"] == "no", 5)
        log = p.log_text()
        assert log.count(f"env prod: the backend account '{RO_USER}' can change things") == 1
        assert f"env prod: the backend account '{RO_USER}' can only read now" in log

        servers.sql("prod", "DROP ROLE IF EXISTS envproxy_writer")
        servers.sql("prod", "CREATE ROLE envproxy_writer")
        servers.sql("prod", "GRANT DELETE ON shop.* TO envproxy_writer")
        servers.sql("prod", f"GRANT envproxy_writer TO '{RO_USER}'@'127.0.0.1'")
        assert wait_for(lambda: health(port)["prod"]["backend_writable"] == "yes", 5)
        assert "DELETE ON `shop`.*" in health(port)["prod"]["backend_privileges"]
    finally:
        servers.sql("prod", "DROP ROLE IF EXISTS envproxy_writer")
        drop_user(servers)


def test_check_command_reports_backend_privileges(make_proxy, servers):
    """`envproxy check` connects to each backend: a writable account in a read_only
    environment is a warning, a SELECT-only one is not, an unreachable backend is a warning;
    the exit code stays 0 (the file is valid). --no-connect skips the backends."""
    create_select_only(servers)
    try:
        p = make_proxy(start=False, extra_yaml={"environments": {
            "stage": {"host": "127.0.0.1", "port": free_port(), "user": "x",
                      "access": "read_only"}}})
        r = p.cli("check")
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert re.search(r"env prod \(read_only\): reachable .*WARNING: the backend account "
                         r"'app' can change things: ALL PRIVILEGES ON \*\.\*", out), out
        assert re.search(r"env dev \(read_write\): reachable .*can change things \(as a "
                         r"read_write environment needs\)", out), out
        assert re.search(r"env stage \(read_only\): WARNING: cannot connect", out), out
        r = p.cli("check", "--no-connect")
        assert r.returncode == 0 and "env " not in r.stdout

        p.write_config({"environments": {"prod": {"user": RO_USER, "password": RO_PASSWORD}}})
        r = p.cli("check")
        assert r.returncode == 0
        assert re.search(r"env prod \(read_only\): reachable .*the backend account "
                         r"'envproxy_ro' can only read$", r.stdout, re.M), r.stdout
        assert "WARNING" not in r.stdout
    finally:
        drop_user(servers)


def test_a_client_response_marks_recovery(make_proxy, servers):
    """prod stalls (kill -STOP) until the checker calls it down, then resumes: the first
    statement a client runs there (on a pooled connection from before) succeeds and marks
    prod up at once, without waiting for the next health check."""
    p = http_proxy(make_proxy, {"health_interval": "3s", "health_timeout": "1s"})
    port = p.http_port
    conn = p.connect(user="bob", password="bob-pw", database="shop@prod", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")  # leaves an idle pooled connection behind
        pid = servers.prod.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            assert wait_for(lambda: health(port)["prod"]["status"] == "down", 10) is not None
        finally:
            os.kill(pid, signal.SIGCONT)
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM customers")
            assert cur.fetchall()[0][0] > 0
        assert health(port)["prod"]["status"] == "up"
    finally:
        conn.close()


def test_reload_to_a_select_only_account_is_seen(make_proxy, servers):
    """SIGHUP that points prod at a SELECT-only account: the checker does not keep asking on
    its connection of the old account, and the pool does not hand out connections of the old
    account either; the next check reports 'no' and statements run as the new account."""
    create_select_only(servers)
    try:
        p = http_proxy(make_proxy, {"health_interval": "1s"})
        port = p.http_port
        assert health(port)["prod"]["backend_writable"] == "yes"
        # The backend account of the connection the statement runs on (envproxy answers
        # CURRENT_USER() with the envproxy account and refuses PROCESSLIST): an account sees
        # its own privileges, and app (ALL PRIVILEGES) everyone's, its own listed first.
        who = ("SELECT SUBSTRING_INDEX(SUBSTRING(GRANTEE, 2), \"'\", 1) FROM "
               "information_schema.USER_PRIVILEGES WHERE GRANTEE LIKE \"'app'@%\" OR "
               f"GRANTEE LIKE \"'{RO_USER}'@%\" ORDER BY GRANTEE LIKE \"'app'@%\" DESC LIMIT 1")
        assert p.query(who, user="bob", password="bob-pw")[0][0] == "app"
        p.write_config({"http": f"127.0.0.1:{port}", "health_interval": "1s",
                        "environments": {"prod": {"user": RO_USER, "password": RO_PASSWORD}}})
        p.reload()
        assert wait_for(lambda: health(port)["prod"]["backend_writable"] == "no", 6) is not None
        assert p.query(who, user="bob", password="bob-pw")[0][0] == RO_USER
        assert p.query("SELECT COUNT(*) FROM customers", user="bob", password="bob-pw")[0][0] > 0
    finally:
        drop_user(servers)
