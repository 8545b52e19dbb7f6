"""Server-side prepared statements (COM_STMT_*) as Connector/C clients use them."""

import pytest

from harness import StmtDriver as Driver


@pytest.fixture
def drv(proxy):
    made = []

    def make(**kw):
        d = Driver(proxy, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def test_prepare_execute_with_parameters(drv):
    d = drv(db="shop")
    assert d.cmd("prepare SELECT id, name, ? FROM customers WHERE id <= ? ORDER BY id") == \
        ("OK", "2", "3")
    kind, rows = d.cmd("exec s:héllo 2")
    assert kind == "ROWS"
    assert [r[0] for r in rows] == ["1", "2"] and rows[0][2] == "h\\xC3\\xA9llo"  # the driver escapes non-ASCII bytes
    # Executed again with new values and no types (the client binds once).
    kind, rows = d.cmd("exec s:x 3")
    assert len(rows) == 3 and rows[2][2] == "x"
    kind, rows = d.cmd("exec null 1")
    assert rows == [["1", rows[0][1], "NULL"]]


def test_every_column_type_in_the_binary_protocol(drv, proxy):
    d = drv(db="shop")
    assert d.cmd("prepare SELECT * FROM types WHERE id = ?")[0] == "OK"
    kind, rows = d.cmd("exec 1")
    text = proxy.query("SELECT * FROM types WHERE id = 1", database="shop")[0]
    assert kind == "ROWS" and len(rows) == 1
    assert len(rows[0]) == len(text)
    # The same values as the text protocol gives, column by column (as strings).
    d.cmd("query SELECT 1")
    q = d.cmd("query SELECT * FROM types WHERE id = 1")
    assert q[0] == "ROWS" and len(q[1][0]) == len(rows[0])
    for i, (b, t) in enumerate(zip(rows[0], q[1][0])):
        if not t.startswith(("0.", "1.")) and "e" not in t:  # FLOAT/DOUBLE print differently
            assert b[:400] == t[:400], (i, b[:60], t[:60])  # the driver keeps 512 bytes
    kind, rows = d.cmd("exec 2")  # the all-NULL row
    assert rows and all(v == "NULL" for v in rows[0][1:])


def test_writes_and_affected_rows_in_dev(drv):
    d = drv(db="shop")
    d.cmd("query CREATE TABLE IF NOT EXISTS ps_scratch (id INT PRIMARY KEY, v TEXT)")
    d.cmd("query DELETE FROM ps_scratch")
    assert d.cmd("prepare INSERT INTO ps_scratch VALUES (?, ?)") == ("OK", "2", "0")
    assert d.cmd("exec 1 s:a") == ("AFFECTED", "1")
    assert d.cmd("exec 2 s:b") == ("AFFECTED", "1")
    assert d.cmd("query SELECT COUNT(*) FROM ps_scratch") == ("ROWS", [["2"]])
    d.cmd("query DROP TABLE ps_scratch")


def test_policy_is_checked_at_prepare(drv):
    d = drv(db="shop@prod")
    err = d.cmd("prepare DELETE FROM orders WHERE id = ?")
    assert err[0] == "ERR" and err[1] == "1290"
    assert "read-only" in err[2]
    assert d.cmd("prepare SELECT COUNT(*) FROM orders WHERE id > ?")[0] == "OK"
    kind, rows = d.cmd("exec 0")
    assert kind == "ROWS" and int(rows[0][0]) > 0


def test_statement_runs_where_it_was_prepared(drv, servers):
    d = drv(db="shop@prod")
    assert d.cmd("prepare SELECT @@port")[0] == "OK"
    d.cmd("query USE shop@dev")
    assert d.cmd("exec") == ("ROWS", [[str(servers.prod.port)]])
    assert d.cmd("prepare /* env=prod */ SELECT @@port, ?")[0] == "OK"
    assert d.cmd("exec 5") == ("ROWS", [[str(servers.prod.port), "5"]])


def test_reprepared_transparently_after_the_backend_connection_died(drv, servers):
    d = drv(db="shop")
    assert d.cmd("prepare SELECT ? + 1, CONNECTION_ID()")[0] == "OK"
    kind, rows = d.cmd("exec 41")
    assert rows[0][0] == "42"
    backend_thread = rows[0][1]
    servers.sql("dev", f"KILL {backend_thread}")
    # The next execute sends no parameter types: the proxy prepares again on a new
    # connection and supplies the types it remembered.
    kind, rows = d.cmd("exec 99")
    assert kind == "ROWS", (kind, rows)
    assert rows[0][0] == "100" and rows[0][1] != backend_thread


def test_unknown_statement_id_gets_1243(proxy):
    conn = proxy.connect()
    conn._execute_command(0x17, b"\x99\x00\x00\x00\x00\x01\x00\x00\x00")  # EXECUTE id 153
    import pymysql
    with pytest.raises(pymysql.err.MySQLError) as e:
        conn._read_packet()
    assert e.value.args[0] == 1243
    conn.close()


def test_backend_statements_are_shared_and_bounded(drv, servers):
    """The same text prepared again runs as the statement already on the backend connection;
    distinct texts stay at most 100 per connection (the oldest closed on the server)."""
    d = drv(db="shop")

    def prepared_on_server():
        return int(servers.sql("dev", "SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")[0][1])

    before = prepared_on_server()
    for _ in range(30):
        assert d.cmd("prepare SELECT 1")[0] == "OK"
        assert d.cmd("exec") == ("ROWS", [["1"]])
        assert d.cmd("close") == ("OK",)
    assert prepared_on_server() <= before + 1
    keep = drv(db="shop")
    assert keep.cmd("prepare SELECT ? * 2")[0] == "OK"
    assert keep.cmd("exec 21") == ("ROWS", [["42"]])
    for i in range(150):
        assert d.cmd(f"prepare SELECT {i} + 0")[0] == "OK"
        assert d.cmd("exec") == ("ROWS", [[str(i)]])
        assert d.cmd("close") == ("OK",)
    # The pool's connections (at most 20) hold at most 100 statements each.
    assert prepared_on_server() - before <= 100 * 20
    # keep's statement was closed on the server long ago: prepared again, with its types.
    assert keep.cmd("exec 50") == ("ROWS", [["100"]])


def test_long_data_and_reset(drv):
    d = drv(db="shop")
    assert d.cmd("prepare SELECT LENGTH(?), ?")[0] == "OK"
    assert d.cmd("exec s:ab s:cd") == ("ROWS", [["2", "cd"]])  # binds the parameters
    assert d.cmd("longdata 0 abcdef") == ("OK",)
    kind, rows = d.cmd("exec s:x s:y")
    assert rows == [["6", "y"]]
    assert d.cmd("reset") == ("OK",)


def test_max_rows_applies_to_binary_results(make_proxy):
    p = make_proxy(extra_yaml={"limits": {"max_rows": 4}})
    d = Driver(p, db="shop")
    try:
        assert d.cmd("prepare SELECT seq FROM seq_1_to_100 WHERE seq > ?")[0] == "OK"
        kind, rows = d.cmd("exec 0")
        assert len(rows) == 4
    finally:
        d.close()


def test_preparing_a_sql_mode_change_does_not_change_how_text_is_read(drv):
    """PREPARE of a SET sql_mode runs nothing: the session reads SQL as before until the
    statement executes (then the policy follows the new mode)."""
    d = drv(db="shop@prod")
    assert d.cmd("prepare SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")[0] == "OK"
    # One string under the default mode: allowed, and it is a plain string to the server.
    assert d.cmd("query SELECT 'a\\', shop_fn() -- '") == ("ROWS", [["a', shop_fn() -- "]])
    assert d.cmd("exec") == ("AFFECTED", "0")
    err = d.cmd("query SELECT 'a\\', shop_fn() -- '")
    assert err[0] == "ERR" and err[1] == "1290", err


def test_prepared_use_gets_1295_as_from_the_server(drv, proxy, servers):
    """USE cannot be prepared on the server (1295 "not supported in the prepared statement
    protocol"); drivers (DBD::mysql, DBD::MariaDB) take that code as the signal to send it as
    a plain query. The proxy answers the same for USE with a routing target (which the
    server would read as a syntax error) and for plain USE, and the session stays where it
    was."""
    d = drv(db="shop")
    for text in ("USE shop@prod", "USE `shop@prod`", "/* env=prod */ USE shop", "use shop"):
        r = d.cmd(f"prepare {text}")
        assert r[0] == "ERR" and r[1] == "1295", (text, r)
    # Still in dev, shop: the same as the server gives for a plain USE.
    assert servers.sql("dev", "SELECT 1")  # the server is up
    kind, rows = d.cmd("query SELECT DATABASE(), @@port")
    assert kind == "ROWS" and rows[0] == ["shop", str(servers.dev.port)]
    # The plain query a driver falls back to works.
    assert d.cmd("query USE shop@prod") == ("AFFECTED", "0")
    kind, rows = d.cmd("query SELECT @@port")
    assert rows[0] == [str(servers.prod.port)]


def _prepare(conn, sql):
    """A raw COM_STMT_PREPARE; returns the statement id, or the error code."""
    import pymysql
    conn._execute_command(0x16, sql)
    try:
        data = conn._read_packet().get_all_data()
    except pymysql.err.MySQLError as e:
        return ("ERR", e.args[0])
    n_cols = int.from_bytes(data[5:7], "little")
    n_params = int.from_bytes(data[7:9], "little")
    for n in (n_params, n_cols):
        if n:
            for _ in range(n + 1):  # definitions, then EOF
                conn._read_packet()
    return int.from_bytes(data[1:5], "little")


def test_prepared_statements_of_a_session_are_bounded(proxy):
    """A client that prepares statements and never closes them cannot make the proxy hold
    them without bound: past 64 MiB of statement text (or 16382 statements) a PREPARE gets
    ERR 1461, the session goes on, closing statements makes room again, and the proxy's
    memory stays bounded."""
    conn = proxy.connect(database="shop@dev", max_allowed_packet=64 << 20, read_timeout=60)
    pad = "x" * (1 << 20)
    rss0 = proxy.rss_kb()
    ids, refused = [], None
    for i in range(80):  # 80 MiB of text: more than the bound
        r = _prepare(conn, f"SELECT {i} + ? /* {pad} */")
        if isinstance(r, tuple):
            refused = (i, r[1])
            break
        ids.append(r)
    assert refused and refused[1] == 1461 and 50 <= refused[0] <= 64, refused
    assert proxy.rss_kb() - rss0 < 400 * 1024  # room for ASan's quarantine
    with conn.cursor() as cur:  # the session goes on
        cur.execute("SELECT 7")
        assert cur.fetchall() == ((7,),)
    for sid in ids[:10]:  # COM_STMT_CLOSE: no answer
        conn._execute_command(0x19, sid.to_bytes(4, "little"))
    assert not isinstance(_prepare(conn, f"SELECT 1 + ? /* {pad} */"), tuple)
    conn.close()
