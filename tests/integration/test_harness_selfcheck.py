"""Checks of the test harness itself: the MariaDB servers, their seed data, stop/start.

These need no proxy, so they tell a broken harness apart from a broken proxy.
"""

import pymysql
import pytest

from harness import (BACKEND_PASSWORD, BACKEND_USER, HarnessError, merge_config, port_open,
                     to_yaml)


def backend_connect(server, **kw):
    """The backend account over TCP, as the proxy connects."""
    return pymysql.connect(host="127.0.0.1", port=server.port, user=BACKEND_USER,
                           password=BACKEND_PASSWORD, charset="utf8mb4", connect_timeout=5,
                           **kw)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_server_answers_as_root_and_as_backend_account(servers, env):
    server = servers[env]
    (version,), = servers.sql(env, "SELECT VERSION()")
    assert "MariaDB" in version
    assert server.datadir.is_dir()
    conn = backend_connect(server, database="shop")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), @@character_set_server, COUNT(*) FROM customers")
            user, charset, count = cur.fetchone()
    finally:
        conn.close()
    assert user == "app@127.0.0.1"
    assert charset == "utf8mb4"
    assert count == 8


def test_servers_are_bound_to_loopback_only(servers):
    for server in servers.all():
        (bind,), = server.sql("SELECT @@bind_address")
        assert bind == "127.0.0.1"
    assert servers.dev.port != servers.prod.port


def test_dev_and_prod_data_differ_as_designed(servers):
    def databases(env):
        return {r[0] for r in servers.sql(env, "SHOW DATABASES")}

    assert "analytics" in databases("dev") and "analytics" not in databases("prod")
    assert "billing" in databases("prod") and "billing" not in databases("dev")

    def columns(env, table):
        return [r[0] for r in servers.sql(env, f"SHOW COLUMNS FROM shop.{table}")]

    assert columns("dev", "products") == columns("prod", "products") + ["discount"]
    assert columns("dev", "orders") == columns("prod", "orders")

    def indexes(env):
        return {r[2] for r in servers.sql(env, "SHOW INDEX FROM shop.products")}

    assert indexes("dev") - indexes("prod") == {"idx_products_name"}

    def orders(env):
        return {r[0]: r[1:] for r in servers.sql(env, "SELECT id, status, note FROM shop.orders")}

    dev, prod = orders("dev"), orders("prod")
    assert set(dev) - set(prod) == {11}
    assert set(prod) - set(dev) == {12}
    changed = {k for k in set(dev) & set(prod) if dev[k] != prod[k]}
    assert changed == {3}
    assert dev[3][0] == "pending" and prod[3][0] == "shipped"
    assert dev[3][1] == prod[3][1] == "Zoë: gift wrap please 🎁"
    assert dev[1][1] is None

    names = {r[0] for r in servers.sql("prod", "SELECT name FROM shop.customers")}
    assert {"Zoë Ångström", "東京 Trading"} <= names


def test_types_table_is_the_same_in_both(servers):
    rows = {env: servers.sql(env, "SELECT * FROM shop.types ORDER BY id")
            for env in ("dev", "prod")}
    assert rows["dev"] == rows["prod"]
    assert [r[0] for r in rows["dev"]] == [1, 2, 3]
    all_null = rows["dev"][1]
    assert all(v is None for v in all_null[1:])
    values = rows["dev"][0]
    assert None not in values
    (bigint_u, varchar, json_text), = servers.sql(
        "dev", "SELECT c_bigint_u, c_varchar, c_json FROM shop.types WHERE id = 1")
    assert bigint_u == 18446744073709551615
    assert varchar == "Zoë 東京 🚀"
    assert "東京" in json_text


def test_stop_and_start_one_server_keeps_port_and_data(servers):
    prod = servers.prod
    port, datadir = prod.port, prod.datadir
    servers.sql("prod", "CREATE DATABASE harness_selfcheck")
    try:
        servers.sql("prod", "CREATE TABLE harness_selfcheck.t (v INT)")
        servers.sql("prod", "INSERT INTO harness_selfcheck.t VALUES (42)")

        servers.stop("prod")
        assert not prod.running()
        assert not port_open(port)
        with pytest.raises(pymysql.err.OperationalError):
            backend_connect(prod)
        # The other server is not affected.
        assert servers.sql("dev", "SELECT 1") == [(1,)]

        servers.start("prod")
        assert prod.running()
        assert prod.port == port and prod.datadir == datadir
        assert port_open(port)
        # Not seeded again: what was written before the stop is still there.
        assert servers.sql("prod", "SELECT v FROM harness_selfcheck.t") == [(42,)]
    finally:
        if prod.running():
            servers.sql("prod", "DROP DATABASE IF EXISTS harness_selfcheck")


def test_second_start_of_a_running_server_is_refused(servers):
    with pytest.raises(HarnessError, match="already running"):
        servers.dev.start()
    assert servers.sql("dev", "SELECT 1") == [(1,)]


def test_config_rendering():
    config = {
        "listen": "127.0.0.1:3307",
        "threads": 2,
        "environments": {"dev": {"password": "${TEST_DB_PASSWORD}", "access": "read_write",
                                 "pool": {"max": 10, "connect_timeout": "2s"}}},
        "tls": {"require": False},
    }
    merge_config(config, {"tls": None, "limits": {"max_rows": 5},
                          "environments": {"dev": {"pool": {"max": 3}}}})
    assert to_yaml(config) == "\n".join([
        "listen: 127.0.0.1:3307",
        "threads: 2",
        "environments:",
        "  dev:",
        "    password: ${TEST_DB_PASSWORD}",
        "    access: read_write",
        "    pool:",
        "      max: 3",
        "      connect_timeout: 2s",
        "limits:",
        "  max_rows: 5",
    ])
    assert to_yaml({"a": ["x y", "on", "007", {"k": "v", "n": None}]}) == "\n".join([
        "a:",
        '  - "x y"',
        '  - "on"',
        '  - "007"',
        "  - k: v",
        "    n: null",
    ])
