"""__envs and __compare as ordinary result sets; fan-out and compare hints (SPEC 5 and 7)."""

import time

import pymysql
import pytest

from harness import mariadb_cli


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall(), [d[0] for d in cur.description or []], cur.description


def wait_up(proxy, env, seconds=30):
    """Waits (bounded) until the proxy's health check sees env up: a test before may have
    stopped and restarted its server, and the module's proxy notices within its interval."""
    deadline = time.monotonic() + seconds
    conn = proxy.connect(autocommit=None)
    try:
        while True:
            got, _, _ = rows(conn, "SELECT status FROM __envs.environments "
                                   f"WHERE name = '{env}'")
            if got and got[0][0] == "up":
                return
            assert time.monotonic() < deadline, f"{env} not up again within {seconds} s"
            time.sleep(0.3)
    finally:
        conn.close()


def test_show_databases_lists_the_virtual_schemas(proxy):
    conn = proxy.connect()
    got, _, _ = rows(conn, "SHOW DATABASES")
    names = [r[0] for r in got]
    assert "__envs" in names and "__compare" in names and "shop" in names
    got, _, _ = rows(conn, "SHOW DATABASES LIKE '\\_\\_e%'")
    assert [r[0] for r in got] == ["__envs"]
    conn.close()


def test_envs_tables_and_describe(proxy):
    conn = proxy.connect()
    got, _, _ = rows(conn, "SHOW TABLES FROM __envs")
    assert [r[0] for r in got] == ["databases", "environments", "session"]
    got, _, _ = rows(conn, "DESCRIBE __envs.environments")
    assert [r[0] for r in got] == ["name", "description", "status", "access", "server_version",
                                   "latency_ms", "pool_in_use", "pool_idle", "pool_max",
                                   "last_error", "checked_at", "backend_writable",
                                   "backend_privileges"]
    conn.close()


def test_environments_from_live_state(proxy):
    time.sleep(1.5)  # a first health check
    conn = proxy.connect()
    got, cols, desc = rows(conn, "SELECT name, status, access, pool_max, server_version, "
                                 "latency_ms FROM __envs.environments ORDER BY name")
    assert [r[:4] for r in got] == [("dev", "up", "write", 10), ("prod", "up", "read", 10)]
    assert all("MariaDB" in r[4] for r in got)
    assert all(isinstance(r[5], float) for r in got)
    # Column types: BIGINT and DOUBLE, so that tools render them as numbers.
    types = {d[0]: d[1] for d in desc}
    assert types["pool_max"] == 8 and types["latency_ms"] == 5
    conn.close()


def test_only_readable_environments_appear(proxy):
    conn = proxy.connect(user="bob", password="bob-pw")
    got, _, _ = rows(conn, "SELECT name FROM __envs.environments")
    assert got == (("prod",),)
    got, _, _ = rows(conn, "SELECT DISTINCT env FROM __envs.databases") if False else \
        rows(conn, "SELECT env FROM __envs.databases")
    assert {r[0] for r in got} == {"prod"}
    with pytest.raises(pymysql.err.OperationalError) as e:
        rows(conn, "/* env=dev,prod */ SELECT 1")
    assert e.value.args[0] == 1044
    conn.close()


def test_databases_of_every_environment(proxy):
    conn = proxy.connect()
    got, cols, _ = rows(conn, "SELECT env, `database` FROM __envs.databases "
                              "WHERE `database` IN ('analytics', 'billing', 'shop') "
                              "ORDER BY env, `database`")
    assert cols == ["env", "database"]
    assert got == (("dev", "analytics"), ("dev", "shop"), ("prod", "billing"), ("prod", "shop"))
    conn.close()


def test_session_table(proxy):
    conn = proxy.connect(database="shop@prod")
    got, cols, _ = rows(conn, "SELECT user, env, `database`, connection_id FROM __envs.session")
    assert got == (("alice", "prod", "shop", conn.thread_id()),)
    conn.close()


def test_where_order_limit_and_errors(proxy):
    conn = proxy.connect()
    got, _, _ = rows(conn, "SELECT name FROM __envs.environments WHERE name LIKE 'p%' OR "
                           "(access = 'write' AND status <> 'down') ORDER BY name DESC LIMIT 5")
    assert got == (("prod",), ("dev",))
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "SELECT name FROM __envs.environments e JOIN __envs.session s")
    assert "supports" in e.value.args[1] or "not supported" in e.value.args[1]
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "DELETE FROM __envs.environments")
    assert e.value.args[0] == 1036
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "SELECT nope FROM __envs.environments")
    assert e.value.args[0] == 1054
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "SELECT * FROM __envs.nothing")
    assert e.value.args[0] == 1146
    conn.close()


def test_use_envs_then_plain_names(proxy):
    conn = proxy.connect()
    rows(conn, "USE __envs")
    got, _, _ = rows(conn, "SELECT name FROM environments ORDER BY name")
    assert got == (("dev",), ("prod",))
    got, _, _ = rows(conn, "SHOW TABLES")
    assert ("environments",) in got
    got, _, _ = rows(conn, "SELECT 1 + 1")  # not about a virtual table: still works
    assert got == ((2,),)
    conn.close()


def test_fan_out(proxy, servers):
    conn = proxy.connect()
    got, cols, _ = rows(conn, "/* env=dev,prod */ SELECT @@port AS port, DATABASE() AS db")
    assert cols == ["_env", "_error", "port", "db"]
    assert sorted(got) == [("dev", None, servers.dev.port, "shop"),
                           ("prod", None, servers.prod.port, "shop")]
    got, _, _ = rows(conn, "/* env=* */ SELECT status FROM orders WHERE id = 3")
    assert sorted(got) == [("dev", None, "pending"), ("prod", None, "shipped")]
    conn.close()


def test_fan_out_reports_failing_environments(proxy):
    conn = proxy.connect()
    got, cols, _ = rows(conn, "/* env=dev,prod */ SELECT discount FROM products LIMIT 1")
    by_env = {r[0]: r for r in got}
    assert by_env["dev"][1] is None
    assert "1054" in by_env["prod"][1]  # prod has no discount column
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "/* env=dev,prod */ DELETE FROM orders")
    assert e.value.args[0] == 1290
    conn.close()


def test_compare_query_with_key(proxy):
    conn = proxy.connect()
    got, cols, _ = rows(conn, "SELECT * FROM __compare.query WHERE envs='dev,prod' AND "
                              "sql='SELECT id, status FROM shop.orders' AND key='id'")
    assert cols == ["_diff", "_env", "id", "status"]
    diffs = {(r[0], r[1], str(r[2])) for r in got}
    assert ("changed", "dev", "3") in diffs and ("changed", "prod", "3") in diffs
    assert ("only_left", "dev", "11") in diffs
    assert ("only_right", "prod", "12") in diffs
    assert all(r[0] != "changed" or str(r[2]) == "3" for r in got)
    # The same through the hint, and a filter on the answer.
    got2, _, _ = rows(conn, "/* compare=dev,prod key=id */ SELECT id, status FROM shop.orders")
    assert sorted(map(str, got2)) == sorted(map(str, got))
    only, _, _ = rows(conn, "SELECT _diff, id FROM __compare.query WHERE envs='dev,prod' AND "
                            "sql='SELECT id, status FROM shop.orders' AND key='id' AND "
                            "_diff = 'only_left'")
    assert [str(r[1]) for r in only] == ["11"]
    conn.close()


def test_compare_query_without_key_is_a_multiset_diff(proxy):
    conn = proxy.connect()
    got, _, _ = rows(conn, "SELECT * FROM __compare.query WHERE envs='dev,prod' AND "
                           "sql='SELECT status FROM shop.orders'")
    assert all(r[0] in ("only_left", "only_right") for r in got)
    assert got  # the status counts differ
    same, _, _ = rows(conn, "SELECT * FROM __compare.query WHERE envs='dev,prod' AND "
                            "sql='SELECT COUNT(*) > 0 FROM shop.customers'")
    assert same == ()
    conn.close()


def test_compare_schema(proxy):
    conn = proxy.connect()
    got, cols, _ = rows(conn, "SELECT * FROM __compare.schema WHERE envs='dev,prod' AND "
                              "db='shop'")
    assert cols == ["database", "table_name", "object_type", "object_name", "_diff",
                    "left_definition", "right_definition"]
    found = {(r[1], r[2], r[3], r[4]) for r in got}
    assert ("products", "column", "discount", "only_left") in found
    assert ("products", "index", "idx_products_name", "only_left") in found
    conn.close()


def test_compare_parameter_errors(proxy):
    conn = proxy.connect()
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "SELECT * FROM __compare.query WHERE envs='dev,prod'")
    assert "sql" in e.value.args[1] and "envs" in e.value.args[1]
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "SELECT * FROM __compare.query WHERE envs='dev,prod' AND "
                   "sql='DELETE FROM shop.orders'")
    assert e.value.args[0] == 1290
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "SELECT * FROM __compare.query WHERE envs='dev,nowhere' AND sql='SELECT 1'")
    assert e.value.args[0] == 1044
    conn.close()


def test_down_environment_shows_as_down_and_does_not_hang(make_proxy, servers):
    p = make_proxy(extra_yaml={"health_interval": "1s"})
    servers.stop("prod")
    try:
        deadline = time.monotonic() + 8
        status = None
        conn = p.connect(autocommit=None)
        while time.monotonic() < deadline:
            got, _, _ = rows(conn, "SELECT status, last_error FROM __envs.environments "
                                   "WHERE name = 'prod'")
            status = got[0][0]
            if status == "down":
                break
            time.sleep(0.3)
        assert status == "down" and got[0][1]
        start = time.monotonic()
        got, _, _ = rows(conn, "SELECT env, `database` FROM __envs.databases")
        assert time.monotonic() - start < 5
        assert ("prod", None) in got
        assert any(r[0] == "dev" and r[1] == "shop" for r in got)
        got, _, _ = rows(conn, "/* env=* */ SELECT 1 AS one")
        by_env = {r[0]: r for r in got}
        assert by_env["dev"][1] is None and by_env["prod"][1]
        # dev is unaffected.
        got, _, _ = rows(conn, "SELECT 1")
        assert got == ((1,),)
        conn.close()
    finally:
        servers.start("prod")


def test_mariadb_cli_browses_envs(proxy):
    rc, out, err = mariadb_cli(proxy, "alice", "alice-pw", "-N",
                               "SELECT name FROM __envs.environments ORDER BY name")
    assert rc == 0, err
    assert out.split() == ["dev", "prod"]


@pytest.mark.parametrize("hint", ["/* env=dev,prod */", "/* compare=dev,prod */"])
def test_fan_out_and_compare_results_are_bounded_in_bytes(make_proxy, hint):
    """Fan-out and compare hold the environments' results in memory: rows of 1 MB each, far
    fewer than max_rows, pass 64 MiB and fail with a clear error (per environment for a
    fan-out), instead of growing the proxy by gigabytes; the proxy keeps serving."""
    p = make_proxy()
    conn = p.connect(database="shop@dev", read_timeout=120)
    rss0 = p.rss_kb()
    sql = f"{hint} SELECT seq, REPEAT('x', 1000000) AS v FROM seq_1_to_200"
    try:
        got, names, _ = rows(conn, sql)
        assert "_error" in names, names
        errs = [r[names.index("_error")] for r in got]
        assert errs and all(e and "64 MiB" in e for e in errs), errs[:3]
    except pymysql.err.MySQLError as e:
        assert "64 MiB" in str(e), e
    assert p.rss_kb() - rss0 < 400 * 1024
    assert rows(conn, "SELECT 1")[0] == ((1,),)
    conn.close()


def test_fan_out_and_compare_keep_binary_columns_as_bytes(proxy, servers):
    """Fan-out and compare send a binary column (VARBINARY, BIT, GEOMETRY, x'..') in the
    binary character set, as the server does: PyMySQL gets bytes equal to the server's, every
    byte value 0..255 included. Before, the column was labelled utf8mb4 text, and the driver
    failed to decode the result (or a lenient one would have replaced the bytes)."""
    wait_up(proxy, "prod")
    every = "SELECT UNHEX('" + bytes(range(256)).hex() + "') AS b, b'101' AS bt, " \
            "POINT(1, 2) AS g, 'text' AS t, 7 AS n"
    direct = servers.prod.connect(binary_prefix=True)
    with direct.cursor() as cur:
        cur.execute(every)
        want = cur.fetchall()[0]
    direct.close()
    assert want[0] == bytes(range(256))
    conn = proxy.connect()
    got, cols, desc = rows(conn, "/* env=* */ " + every)
    assert cols == ["_env", "_error", "b", "bt", "g", "t", "n"]
    assert sorted(r[0] for r in got) == ["dev", "prod"]
    for r in got:
        assert r[1] is None and tuple(r[2:]) == want
    # Compare: a changed binary value is shown as the bytes of each side.
    sql = "SELECT 1 AS id, IF(@@port = %d, x'00ff', x'ff00') AS b" % servers.dev.port
    got, cols, _ = rows(conn, "/* compare=dev,prod key=id */ " + sql)
    assert cols == ["_diff", "_env", "id", "b"]
    assert sorted((r[1], r[3]) for r in got) == [("dev", b"\x00\xff"), ("prod", b"\xff\x00")]
    same, _, _ = rows(conn, "/* compare=dev,prod */ " + every)
    assert same == ()
    conn.close()


def test_compare_schema_covers_views_triggers_routines_and_events(proxy, servers):
    """__compare.schema lists a view, trigger, procedure, function or event whose code
    differs between the environments (or exists in one only), and nothing for identical
    ones. Before, it compared tables, columns, indexes and foreign keys only, and said
    nothing about differing code: a schema "equal" that was not."""
    wait_up(proxy, "prod")
    for env, n in (("dev", 1), ("prod", 2)):
        for stmt in [
            "DROP DATABASE IF EXISTS cmpcode",
            "CREATE DATABASE cmpcode",
            "CREATE TABLE cmpcode.t (id INT PRIMARY KEY)",
            "CREATE VIEW cmpcode.v_same AS SELECT id FROM cmpcode.t",
            f"CREATE VIEW cmpcode.v_diff AS SELECT id + {n} AS x FROM cmpcode.t",
            f"CREATE TRIGGER cmpcode.tr BEFORE INSERT ON cmpcode.t FOR EACH ROW "
            f"SET NEW.id = NEW.id + {n}",
            "CREATE PROCEDURE cmpcode.p_same() SELECT 1",
            f"CREATE PROCEDURE cmpcode.p_diff() SELECT {n}",
            f"CREATE FUNCTION cmpcode.f_diff() RETURNS INT DETERMINISTIC RETURN {n}",
            f"CREATE EVENT cmpcode.e_diff ON SCHEDULE EVERY {n} DAY DO SELECT 1",
        ] + (["CREATE PROCEDURE cmpcode.p_dev_only() SELECT 3"] if env == "dev" else []):
            servers.sql(env, stmt)
    try:
        conn = proxy.connect()
        got, _, _ = rows(conn, "SELECT object_type, object_name, _diff FROM __compare.schema "
                               "WHERE envs='dev,prod' AND db='cmpcode' ORDER BY 1, 2")
        assert sorted(got) == sorted([
            ("event", "e_diff", "changed"), ("function", "f_diff", "changed"),
            ("procedure", "p_dev_only", "only_left"), ("procedure", "p_diff", "changed"),
            ("trigger", "tr", "changed"), ("view", "v_diff", "changed"),
        ]), got
        conn.close()
    finally:
        for env in ("dev", "prod"):
            servers.sql(env, "DROP DATABASE IF EXISTS cmpcode")
