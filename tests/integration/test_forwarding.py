"""What a client sees of forwarded statements: values, errors, results of any size, commands."""

import socket
import struct
import threading

import MySQLdb
import pymysql
import pymysql.cursors
import pytest
from pymysql.constants import CLIENT, COMMAND

from harness import is_sanitizer_build, mariadb_cli


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_every_column_type_matches_a_direct_connection(proxy, servers):
    # The same query through the proxy and straight to the server: same values, same types.
    direct = pymysql.connect(host="127.0.0.1", port=servers.dev.port, user="app",
                             password="app-secret", database="shop", charset="utf8mb4")
    via = proxy.connect()
    try:
        q = "SELECT * FROM types ORDER BY id"
        with direct.cursor() as d, via.cursor() as v:
            d.execute(q)
            v.execute(q)
            assert v.fetchall() == d.fetchall()
            assert [c[:2] for c in v.description] == [c[:2] for c in d.description]
    finally:
        direct.close()
        via.close()


def test_unicode_and_nulls(proxy):
    conn = proxy.connect()
    got = rows(conn, "SELECT 'Zoë', '東京', '🚀', NULL, '', CAST(NULL AS CHAR)")
    assert got == (("Zoë", "東京", "🚀", None, "", None),)
    got = rows(conn, "SELECT name FROM customers WHERE name LIKE 'Zo%'")
    assert got and got[0][0].startswith("Zoë")
    conn.close()


def test_backend_error_passes_through_unchanged(proxy, servers):
    direct = pymysql.connect(host="127.0.0.1", port=servers.dev.port, user="app",
                             password="app-secret", database="shop")
    via = proxy.connect()
    for q in ["SELECT * FROM no_such_table", "SELEKT 1", "SELECT no_such_column FROM orders"]:
        with pytest.raises(pymysql.err.MySQLError) as want:
            rows(direct, q)
        with pytest.raises(pymysql.err.MySQLError) as got:
            rows(via, q)
        assert got.value.args == want.value.args
        assert type(got.value) is type(want.value)
    assert rows(via, "SELECT 1") == ((1,),)
    direct.close()
    via.close()


def test_sqlstate_reaches_mysqldb(proxy):
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice", passwd="alice-pw")
    cur = conn.cursor()
    with pytest.raises(MySQLdb.ProgrammingError) as e:
        cur.execute("SELECT * FROM no_such_table")
    assert e.value.args[0] == 1146
    conn.close()


def test_writes_in_a_writable_environment(proxy, servers):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS fw_scratch (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("DELETE FROM fw_scratch")
        n = cur.execute("INSERT INTO fw_scratch VALUES (1, 'a'), (2, 'b')")
        assert n == 2
        conn.commit()
        cur.execute("UPDATE fw_scratch SET v = 'c' WHERE id = 2")
        assert cur.rowcount == 1
    conn.close()
    # Connector/C reads the OK packet's message (the "info") length-encoded.
    my = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice", passwd="alice-pw",
                         db="shop")
    cur = my.cursor()
    assert cur.execute("UPDATE fw_scratch SET v = 'd'") == 2
    assert my.info() == b"Rows matched: 2  Changed: 2  Warnings: 0" or \
        my.info() == "Rows matched: 2  Changed: 2  Warnings: 0"
    cur.execute("DROP TABLE fw_scratch")
    my.close()


def test_multi_statements_and_multi_results(proxy):
    conn = proxy.connect(client_flag=CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute("SELECT 1; SELECT 'two', 2; DO 1; SELECT 3")
        assert cur.fetchall() == ((1,),)
        assert cur.nextset()
        assert cur.fetchall() == (("two", 2),)
        assert cur.nextset()
        assert cur.nextset()
        assert cur.fetchall() == ((3,),)
        assert not cur.nextset()
        cur.execute("SELECT 'after'")
        assert cur.fetchall() == (("after",),)
    conn.close()


def test_multi_statements_off_unless_the_client_asks(proxy):
    conn = proxy.connect(client_flag=0)
    with pytest.raises(pymysql.err.ProgrammingError):
        rows(conn, "SELECT 1; SELECT 2")
    assert rows(conn, "SELECT 1") == ((1,),)
    conn.close()


def test_stored_procedure_results(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("DROP PROCEDURE IF EXISTS fw_two")
        cur.execute("CREATE PROCEDURE fw_two() BEGIN SELECT 1; SELECT 2; END")
        cur.execute("CALL fw_two()")
        assert cur.fetchall() == ((1,),)
        assert cur.nextset()
        assert cur.fetchall() == ((2,),)
        while cur.nextset():
            pass
        cur.execute("DROP PROCEDURE fw_two")
    conn.close()


UNCAPPED = {"limits": {"max_rows": 0}}


def test_million_rows_stream_with_bounded_memory(make_proxy):
    proxy = make_proxy(extra_yaml=UNCAPPED)
    conn = proxy.connect(cursorclass=pymysql.cursors.SSCursor, read_timeout=120)
    n = 0
    total = 0
    with conn.cursor() as cur:
        cur.execute("SELECT seq, REPEAT('x', 20) FROM seq_1_to_1000000")
        for row in cur.fetchall_unbuffered():
            n += 1
            total += row[0]
    conn.close()
    assert n == 1000000
    assert total == 1000000 * 1000001 // 2
    peak_mib = proxy.peak_rss_kb() / 1024
    # The sanitizer build's shadow memory and quarantine are not the proxy's: give it room.
    limit = 256 if is_sanitizer_build(proxy.binary) else 64
    assert peak_mib < limit, f"peak RSS {peak_mib:.1f} MiB"


def test_slow_reader_does_not_grow_the_proxy(make_proxy):
    proxy = make_proxy(extra_yaml=UNCAPPED)
    # A client that reads slowly: the proxy stops reading from the backend instead of
    # buffering the result.
    s = socket.create_connection(("127.0.0.1", proxy.port))
    conn = proxy.connect(cursorclass=pymysql.cursors.SSCursor, read_timeout=120)
    before = proxy.rss_kb()
    with conn.cursor() as cur:
        cur.execute("SELECT REPEAT('y', 1000) FROM seq_1_to_200000")
        import time
        time.sleep(1.0)  # ~200 MB waiting on the backend side
        grown = proxy.rss_kb() - before
        count = sum(1 for _ in cur.fetchall_unbuffered())
    conn.close()
    s.close()
    assert count == 200000
    limit_kb = (96 if is_sanitizer_build(proxy.binary) else 16) * 1024
    assert grown < limit_kb, f"RSS grew by {grown} KiB while the client did not read"


def test_packets_over_16_mib(make_proxy, servers):
    for env in ("dev", "prod"):
        servers.sql(env, "SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    p = make_proxy()
    conn = p.connect(read_timeout=120, write_timeout=120, max_allowed_packet=64 * 1024 * 1024)
    big = 17 * 1024 * 1024 + 123
    with conn.cursor() as cur:
        # A result row over 16 MiB (continued packets from the backend).
        cur.execute(f"SELECT REPEAT('a', {big}), 'end'")
        value, end = cur.fetchall()[0]
        assert len(value) == big and value == "a" * big and end == "end"
        # A statement over 16 MiB (continued packets from the client).
        payload = "b" * big
        cur.execute("SELECT LENGTH(%s), RIGHT(%s, 3)", (payload, payload + "xyz"))
        assert cur.fetchall() == ((big, "xyz"),)
        # Exactly 16 MiB - 1 bytes of payload around the boundary.
        cur.execute("SELECT LENGTH(REPEAT('c', 16777215 - 10))")
        assert cur.fetchall() == ((16777205,),)
    conn.close()


def test_packet_over_max_packet_size_closes_that_client(make_proxy):
    p = make_proxy(extra_yaml={"max_packet_size": "64k"})
    conn = p.connect()
    other = p.connect()
    with pytest.raises(pymysql.err.MySQLError) as e:
        rows(conn, "SELECT '" + "z" * 70000 + "'")
    assert e.value.args[0] in (1153, 2013)
    assert rows(other, "SELECT 'still here'") == (("still here",),)
    other.close()


def test_ping_statistics_and_field_list(proxy):
    conn = proxy.connect()
    conn.ping(reconnect=False)
    conn._execute_command(COMMAND.COM_STATISTICS, b"")
    stats = conn._read_packet().read_all()
    assert b"Uptime" in stats
    conn._execute_command(COMMAND.COM_FIELD_LIST, b"customers\0")
    names = []
    while True:
        pkt = conn._read_packet()
        if pkt.is_eof_packet():
            break
        f = pkt.read_length_coded_string
        for _ in range(4):
            f()
        names.append(f().decode())
    assert names[:2] == ["id", "name"]
    assert rows(conn, "SELECT 'ok'") == (("ok",),)
    conn.close()


def test_field_list_with_deprecate_eof_client(proxy):
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice", passwd="alice-pw",
                           db="shop")
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchall() == ((1,),)
    conn.ping()
    assert "Uptime" in conn.stat()
    conn.close()


def test_set_option_toggles_multi_statements(proxy):
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice", passwd="alice-pw",
                           client_flag=0)
    from MySQLdb.constants import CLIENT as MCLIENT  # noqa: F401
    cur = conn.cursor()
    with pytest.raises(MySQLdb.ProgrammingError):
        cur.execute("SELECT 1; SELECT 2")
    conn.set_server_option(0)  # MYSQL_OPTION_MULTI_STATEMENTS_ON
    cur.execute("SELECT 1; SELECT 2")
    assert cur.fetchall() == ((1,),)
    assert cur.nextset()
    assert cur.fetchall() == ((2,),)
    conn.close()


def test_reset_connection_returns_to_the_default_position(proxy, servers):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("USE shop@prod")
    conn._execute_command(0x1F, b"")  # COM_RESET_CONNECTION
    conn._read_ok_packet()
    with conn.cursor() as cur:
        cur.execute("SELECT @@port, DATABASE()")
        assert cur.fetchall() == ((servers.dev.port, "shop"),)
    conn.close()


def test_unknown_command_gets_1047(proxy):
    conn = proxy.connect()
    conn._execute_command(0x0A, b"")  # COM_PROCESS_INFO
    with pytest.raises(pymysql.err.MySQLError) as e:
        conn._read_packet()
    assert e.value.args[0] == 1047
    assert rows(conn, "SELECT 1") == ((1,),)
    conn.close()


def test_statement_close_of_an_unknown_id_gets_no_reply(proxy):
    conn = proxy.connect()
    conn._execute_command(COMMAND.COM_STMT_CLOSE, struct.pack("<I", 12345))  # no reply
    assert rows(conn, "SELECT 1") == ((1,),)
    conn._execute_command(0x1C, struct.pack("<II", 1, 1))  # COM_STMT_FETCH, unknown id
    with pytest.raises(pymysql.err.MySQLError) as e:
        conn._read_packet()
    assert e.value.args[0] == 1243
    conn.close()


def test_pipelined_commands_run_in_order(proxy):
    conn = proxy.connect()
    sock = conn._sock
    payload = b""
    for i in range(20):
        q = f"SELECT {i}".encode()
        payload += struct.pack("<I", len(q) + 1)[:3] + b"\0" + bytes([COMMAND.COM_QUERY]) + q
    sock.sendall(payload)
    for i in range(20):
        conn._next_seq_id = 1
        r = pymysql.connections.MySQLResult(conn)
        r.read()
        assert r.rows == ((i,),)
    conn.close()


def test_malformed_packets_close_only_that_client(proxy):
    other = proxy.connect()
    # Garbage instead of a handshake response.
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    s.recv(4096)
    s.sendall(b"\x05\x00\x00\x01hello")
    assert _closed(s)
    # A command with a wrong sequence id after login.
    conn = proxy.connect()
    conn._sock.sendall(b"\x09\x00\x00\x07\x03SELECT 1")
    assert _closed(conn._sock)
    # A truncated header then EOF.
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    s.recv(4096)
    s.sendall(b"\xff\xff")
    s.close()
    # A handshake response with lengths pointing past the end.
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    s.recv(4096)
    body = struct.pack("<IIB23x", 0x00A8A20F, 1 << 24, 45) + b"alice\0" + b"\xfc\xff\xff"
    s.sendall(struct.pack("<I", len(body))[:3] + b"\x01" + body)
    assert _closed(s)
    assert rows(other, "SELECT 'alive'") == (("alive",),)
    other.close()


def test_many_clients_at_once(make_proxy):
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 20,
                                                                  "wait_timeout": "20s"}}}})
    errors = []

    def client(i):
        try:
            conn = p.connect(read_timeout=60)
            with conn.cursor() as cur:
                for j in range(5):
                    cur.execute("SELECT %s + %s", (i, j))
                    assert cur.fetchall() == ((i + j,),)
            conn.close()
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]


def _closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_mariadb_cli_tour(proxy, servers):
    rc, out, err = mariadb_cli(proxy, "alice", "alice-pw", "-D", "shop@prod",
                               "SHOW DATABASES; SELECT COUNT(*) AS n FROM orders")
    assert rc == 0, err
    assert "billing" in out and "analytics" not in out
