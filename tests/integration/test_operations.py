"""Operations: /health and /metrics, graceful shutdown on SIGTERM."""

import json
import subprocess
import re
import signal
import threading
import time
import urllib.request

import pymysql
import pytest

from harness import free_port


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels)): value}; checks every line's shape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+)(\{([^}]*)\})? ([0-9.e+-]+|\+Inf)', line)
        assert m, f"bad metrics line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


@pytest.fixture
def http_proxy(make_proxy):
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}", "health_interval": "1s"})
    p.http_port = port
    return p


def test_health_endpoint(http_proxy):
    time.sleep(1.5)
    status, ctype, body = http_get(http_proxy.http_port, "/health")
    assert status == 200 and ctype == "application/json"
    doc = json.loads(body)
    assert doc["status"] == "serving"
    assert {e["name"]: e["status"] for e in doc["environments"]} == {"dev": "up", "prod": "up"}


def test_metrics_endpoint_counts_what_happened(http_proxy):
    conn = http_proxy.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT seq FROM seq_1_to_25")
        cur.execute("/* env=prod */ SELECT 1")
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("/* env=prod */ DELETE FROM orders")
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("SELECT * FROM no_such_table")
    with pytest.raises(pymysql.err.OperationalError):
        http_proxy.connect(password="wrong")
    status, ctype, body = http_get(http_proxy.http_port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    m = parse_metrics(body)

    def v(name, **labels):
        return m[(name, frozenset(labels.items()))]

    assert v("envproxy_client_connections") >= 1
    assert v("envproxy_client_connections_total") >= 2
    assert v("envproxy_logins_refused_total") >= 1
    assert v("envproxy_statements_total", env="dev", verdict="allowed") >= 2
    assert v("envproxy_statements_total", env="dev", verdict="error") >= 1
    assert v("envproxy_statements_total", env="prod", verdict="refused") >= 1
    assert v("envproxy_statements_total", env="prod", verdict="allowed") >= 1
    assert v("envproxy_rows_sent_total", env="dev") >= 25
    assert v("envproxy_bytes_sent_total", env="dev") > 0
    count = v("envproxy_statement_duration_seconds_count", env="dev")
    assert count >= 3 and v("envproxy_statement_duration_seconds_bucket", env="dev",
                            le="+Inf") == count
    assert v("envproxy_pool_connections", env="dev", state="in_use") >= 1
    assert v("envproxy_pool_connections", env="prod", state="max") == 10
    assert v("envproxy_environment_up", env="dev") in (0, 1)
    assert ("envproxy_audit_dropped_total", frozenset()) in m
    conn.close()


def test_unknown_path_is_404(http_proxy):
    with pytest.raises(urllib.error.HTTPError) as e:
        http_get(http_proxy.http_port, "/nope")
    assert e.value.code == 404


def test_sigterm_lets_a_running_statement_finish(make_proxy):
    p = make_proxy(extra_yaml={"shutdown_timeout": "10s"})
    conn = p.connect()
    result = {}

    def run():
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT SLEEP(1.5), 'finished'")
                result["rows"] = cur.fetchall()
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.4)
    start = time.monotonic()
    p.signal(signal.SIGTERM)
    p.expect_exit()
    time.sleep(0.2)
    # No new connections while draining.
    with pytest.raises(pymysql.err.OperationalError):
        p.connect(connect_timeout=2)
    t.join(10)
    assert result.get("rows") == ((0, "finished"),), result
    assert p.wait(10) == 0
    assert time.monotonic() - start < 5


def test_sigterm_bounded_by_shutdown_timeout(make_proxy):
    p = make_proxy(extra_yaml={"shutdown_timeout": "1s",
                               "limits": {"statement_timeout": "0"}})
    conn = p.connect()
    conn._execute_command(3, b"SELECT SLEEP(30)")
    time.sleep(0.3)
    start = time.monotonic()
    p.signal(signal.SIGTERM)
    p.expect_exit()
    assert p.wait(10) == 0
    assert time.monotonic() - start < 5


def test_failed_logins_are_throttled_per_address(make_proxy):
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                               "login_throttle": {"max_failures": 3, "window": "30s",
                                                  "block": "2s"}})
    for _ in range(3):
        with pytest.raises(pymysql.err.OperationalError) as e:
            p.connect(password="wrong")
        assert e.value.args[0] == 1045
    # Blocked now, even with the right password.
    with pytest.raises(pymysql.err.OperationalError) as e:
        p.connect()
    assert e.value.args[0] == 1129
    _, _, body = http_get(port, "/metrics")
    assert parse_metrics(body)[("envproxy_logins_throttled_total", frozenset())] >= 1
    time.sleep(2.2)
    conn = p.connect()  # the block is over
    conn.close()


def test_sighup_reloads_the_configuration(make_proxy, servers):
    p = make_proxy(extra_yaml={"limits": {"max_rows": 5}})
    conn = p.connect()
    with conn.cursor() as cur:
        assert cur.execute("SELECT seq FROM seq_1_to_100") == 5
        # A session that keeps running queries while the configuration changes under it.
        p.write_config({"limits": {"max_rows": 7},
                        "environments": {"staging": {
                            "host": "127.0.0.1", "port": servers.prod.port, "user": "app",
                            "password": "${TEST_DB_PASSWORD}", "database": "shop"}}})
        p.cli("user", "grant", "alice", "staging", "read")
        p.reload()
        deadline = time.monotonic() + 5
        while cur.execute("SELECT seq FROM seq_1_to_100") != 7:
            assert time.monotonic() < deadline, "new max_rows not applied"
            time.sleep(0.1)
        cur.execute("/* env=staging */ SELECT @@port")
        assert cur.fetchall() == ((servers.prod.port,),)
    # A bad configuration is reported with its position and the running one is kept.
    p.config_path.write_text(p.config_path.read_text() + "\nbogus_key: 1\n")
    p.reload()
    time.sleep(0.5)
    assert "bogus_key" in p.log_text() and "running configuration is kept" in p.log_text()
    with conn.cursor() as cur:
        assert cur.execute("SELECT seq FROM seq_1_to_100") == 7
    # A removed environment disappears for new statements; the proxy keeps serving.
    p.write_config({"limits": {"max_rows": 7}})
    p.reload()
    deadline = time.monotonic() + 5
    while True:
        with conn.cursor() as cur:
            try:
                cur.execute("/* env=staging */ SELECT 1")
            except pymysql.err.OperationalError as e:
                assert e.args[0] == 1044
                break
        assert time.monotonic() < deadline, "removed environment still reachable"
        time.sleep(0.1)
    assert p.query("SELECT 1") == [(1,)]
    conn.close()


def test_json_log_lines(make_proxy):
    p = make_proxy(start=False)
    r = subprocess.Popen([p.binary, "-c", str(p.config_path), "--log-format", "json", "run"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=p.env, text=True)
    try:
        deadline = time.monotonic() + 10
        first = r.stderr.readline()
        while "ready" not in first and time.monotonic() < deadline:
            first = r.stderr.readline()
        doc = json.loads(first)
        assert doc["level"] == "info" and "ready" in doc["msg"] and doc["ts"].endswith("Z")
    finally:
        r.send_signal(signal.SIGTERM)
        r.wait(15)
    assert r.returncode == 0


def test_make_install_lays_out_binary_unit_and_example(tmp_path):
    from harness import REPO
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-C", str(REPO), "install", f"DESTDIR={dest}",
                        "PREFIX=/opt/envproxy"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (dest / "opt/envproxy/bin/envproxy").stat().st_mode & 0o111
    unit = (dest / "opt/envproxy/lib/systemd/system/envproxy.service").read_text()
    assert "ExecStart=/opt/envproxy/bin/envproxy" in unit and "ExecReload=" in unit
    assert (dest / "opt/envproxy/share/envproxy/proxy.example.yaml").exists()
