"""Backend pools: waiting, exhaustion, unreachable and failing environments."""

import threading
import time

import pymysql
import pytest

from harness import free_port


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_pool_exhausted_waits_then_gets_1040(make_proxy):
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1,
                                                                  "wait_timeout": "1s"}}}})
    holder = p.connect()
    assert rows(holder, "SELECT 1") == ((1,),)  # holds dev's only connection
    other = p.connect(autocommit=None)  # no statement at connect time
    start = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as e:
        rows(other, "SELECT 2")
    waited = time.monotonic() - start
    assert e.value.args[0] == 1040
    assert "'dev'" in e.value.args[1]
    assert 0.8 < waited < 5
    # prod is a different pool: unaffected.
    assert rows(other, "/* env=prod */ SELECT 3") == ((3,),)
    # Once the holder leaves, the waiting side gets the connection.
    holder.close()
    assert rows(other, "SELECT 4") == ((4,),)
    other.close()


def test_waiter_gets_a_connection_released_by_another_client(make_proxy):
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1,
                                                                  "wait_timeout": "10s"}}}})
    holder = p.connect()
    rows(holder, "SELECT 1")
    result = {}

    def waiter():
        conn = p.connect()
        result["rows"] = rows(conn, "SELECT 'waited'")
        conn.close()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    assert "rows" not in result
    holder.close()
    t.join(10)
    assert result.get("rows") == (("waited",),)


def test_unreachable_environment_fails_within_connect_timeout(make_proxy):
    dead = free_port()
    p = make_proxy(extra_yaml={"environments": {"staging": {
        "host": "127.0.0.1", "port": dead, "user": "app", "password": "x",
        "database": "shop", "pool": {"connect_timeout": "1s"}}}})
    p.add_user("erin", "erin-pw", "dev", {"dev": "read", "staging": "read"})
    time.sleep(1.2)  # the account store is watched once a second
    conn = p.connect(user="erin", password="erin-pw")
    start = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as e:
        rows(conn, "/* env=staging */ SELECT 1")
    assert time.monotonic() - start < 3
    assert e.value.args[0] == 2003
    assert "'staging'" in e.value.args[1] and "unreachable" in e.value.args[1]
    assert "x" not in e.value.args[1].split("unreachable")[0].replace("envproxy", "")
    assert rows(conn, "SELECT 'dev works'") == (("dev works",),)
    conn.close()


def test_backend_stopped_mid_session(make_proxy, servers):
    p = make_proxy()
    conn = p.connect()
    assert rows(conn, "/* env=prod */ SELECT @@port") == ((servers.prod.port,),)
    servers.stop("prod")
    try:
        with pytest.raises(pymysql.err.OperationalError) as e:
            rows(conn, "/* env=prod */ SELECT 1")
        assert e.value.args[0] in (2003, 2013)
        assert "'prod'" in e.value.args[1]
        # The client and the other environment keep working.
        assert rows(conn, "SELECT @@port") == ((servers.dev.port,),)
        fresh = p.connect(user="bob", password="bob-pw", autocommit=None)
        with pytest.raises(pymysql.err.OperationalError) as e:
            rows(fresh, "SELECT 1")
        assert e.value.args[0] == 2003
        fresh.close()
    finally:
        servers.start("prod")
    # Back again: the same session reaches prod once more (statements for a down
    # environment fail fast, but one a second tries for real).
    deadline = time.monotonic() + 5
    while True:
        try:
            assert rows(conn, "/* env=prod */ SELECT @@port") == ((servers.prod.port,),)
            break
        except pymysql.err.OperationalError as e:
            assert "'prod'" in e.args[1]
            assert time.monotonic() < deadline
            time.sleep(0.3)
    conn.close()


def test_backend_killed_connection_is_replaced(proxy, servers):
    conn = proxy.connect()
    # The backend's own thread id (SELECT CONNECTION_ID() alone is answered by the proxy).
    tid = rows(conn, "SELECT CONNECTION_ID() + 0")[0][0]
    servers.sql("dev", f"KILL {tid}")
    time.sleep(0.2)
    assert rows(conn, "SELECT 'again'") == (("again",),)
    conn.close()


def test_idle_connections_are_closed_after_idle_timeout(make_proxy, servers):
    p = make_proxy(extra_yaml={"environments": {"prod": {"pool": {"idle_timeout": "1s"}}}})

    def app_connections():
        return servers.sql("prod", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                   "WHERE USER = 'app' AND DB IS NOT NULL")[0][0]

    base = app_connections()
    conn = p.connect(user="bob", password="bob-pw")
    rows(conn, "SELECT 1")
    conn.close()
    assert app_connections() >= base + 1
    deadline = time.monotonic() + 8
    while app_connections() > base and time.monotonic() < deadline:
        time.sleep(0.3)
    assert app_connections() == base


def test_pool_keeps_min_connections_open(make_proxy, servers):
    def app_connections():
        return servers.sql("prod", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                   "WHERE USER = 'app' AND DB IS NOT NULL")[0][0]

    base = app_connections()
    p = make_proxy(extra_yaml={"environments": {"prod": {"pool": {"min": 2}}}})
    deadline = time.monotonic() + 5
    while app_connections() < base + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert app_connections() == base + 2
    # They serve clients.
    assert p.query("SELECT 1", user="bob", password="bob-pw") == [(1,)]
    p.stop()
    deadline = time.monotonic() + 5
    while app_connections() > base and time.monotonic() < deadline:
        time.sleep(0.2)
    assert app_connections() == base
