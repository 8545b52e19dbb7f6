"""Session commands answered by the proxy: KILL, CONNECTION_ID(), COM_CHANGE_USER, and the
statements that describe the proxy rather than a backend."""

import ssl
import threading
import time

import MySQLdb
import pymysql
import pytest


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_connection_id_is_the_handshake_id(proxy):
    conn = proxy.connect()
    assert one(conn, "SELECT CONNECTION_ID()") == ((conn.thread_id(),),)
    assert one(conn, "select connection_id() AS id;") == ((conn.thread_id(),),)
    conn.close()


def test_kill_query_stops_only_the_statement(proxy):
    a = proxy.connect()
    b = proxy.connect()
    result = {}

    def run():
        start = time.monotonic()
        try:
            one(b, "SELECT SLEEP(10)")
            result["error"] = None
        except pymysql.err.MySQLError as e:
            result["error"] = e.args[0]
        result["took"] = time.monotonic() - start

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    one(a, f"KILL QUERY {b.thread_id()}")
    t.join(10)
    assert result["error"] == 1317 and result["took"] < 5
    assert one(b, "SELECT 'b still works'") == (("b still works",),)
    a.close()
    b.close()


def test_kill_connection(proxy):
    a = proxy.connect()
    b = proxy.connect()
    one(a, f"KILL {b.thread_id()}")
    with pytest.raises(pymysql.err.OperationalError):
        one(b, "SELECT 1")
    b2 = proxy.connect()
    one(a, f"KILL CONNECTION {b2.thread_id()}")
    with pytest.raises(pymysql.err.OperationalError):
        one(b2, "SELECT 1")
    assert one(a, "SELECT 1") == ((1,),)
    a.close()


def test_kill_of_another_account_or_unknown_id(proxy):
    alice = proxy.connect()
    bob = proxy.connect(user="bob", password="bob-pw")
    with pytest.raises(pymysql.err.MySQLError) as e:
        one(alice, f"KILL {bob.thread_id()}")
    assert e.value.args[0] == 1095
    with pytest.raises(pymysql.err.MySQLError) as e:
        one(alice, "KILL QUERY 4000000000")
    assert e.value.args[0] == 1094
    assert one(bob, "SELECT 1") == ((1,),)
    # KILL is about proxy sessions: it works in a read-only environment too.
    prod = proxy.connect(database="shop@prod")
    victim = proxy.connect()
    one(prod, f"KILL {victim.thread_id()}")
    alice.close()
    bob.close()
    prod.close()


def test_com_process_kill(proxy):
    a = proxy.connect()
    b = proxy.connect()
    a.kill(b.thread_id())
    with pytest.raises(pymysql.err.OperationalError):
        one(b, "SELECT 1")
    a.close()


def test_version_comment_names_the_proxy(proxy):
    conn = proxy.connect()
    got = one(conn, "SELECT @@version_comment LIMIT 1")
    assert "envproxy" in got[0][0]
    conn.close()


def test_ssl_status_describes_the_client_connection(proxy):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = proxy.connect(ssl=ctx)
    status = dict(one(conn, "SHOW STATUS LIKE 'Ssl%'"))
    assert status["Ssl_cipher"] and status["Ssl_version"].startswith("TLS")
    conn.close()
    plain = proxy.connect()
    assert dict(one(plain, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")) == {"Ssl_cipher": ""}
    plain.close()


def test_change_user_reauthenticates_and_resets(proxy, servers):
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice", passwd="alice-pw")
    cur = conn.cursor()
    cur.execute("SET @x = 1")
    cur.execute("SELECT @@port")
    assert cur.fetchall() == ((servers.dev.port,),)
    conn.change_user("bob", "bob-pw")  # bob starts in prod
    cur = conn.cursor()
    cur.execute("SELECT @@port, @x")
    assert cur.fetchall() == ((servers.prod.port, None),)
    conn.change_user("alice", "alice-pw", "shop@prod")
    cur = conn.cursor()
    cur.execute("SELECT @@port, DATABASE()")
    assert cur.fetchall() == ((servers.prod.port, "shop"),)
    with pytest.raises(MySQLdb.OperationalError) as e:
        conn.change_user("alice", "wrong")
    assert e.value.args[0] == 1045
    # The proxy goes on serving others.
    assert proxy.query("SELECT 1") == [(1,)]


def test_session_variables_follow_the_client_to_other_environments(proxy, servers):
    conn = proxy.connect()
    one(conn, "SET time_zone = '+05:00'")
    one(conn, "SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_TRANS_TABLES'")
    one(conn, "SET NAMES latin1")
    want = ("+05:00", "ANSI_QUOTES,STRICT_TRANS_TABLES", "latin1")
    q = "SELECT @@time_zone, @@sql_mode, @@character_set_client"
    assert one(conn, q)[0] == want
    assert one(conn, "/* env=prod */ " + q)[0] == want
    one(conn, "USE shop@prod")
    assert one(conn, q)[0] == want
    # The read-only wall is not carried: prod stays read-only whatever dev was told.
    one(conn, "USE shop@dev")
    one(conn, "SET SESSION TRANSACTION READ WRITE")
    one(conn, "USE shop@prod")
    assert one(conn, "SELECT @@tx_read_only") == ((1,),)
    conn.close()


def test_reset_connection_forgets_session_variables(proxy):
    conn = proxy.connect()
    one(conn, "SET time_zone = '+03:00'")
    conn._execute_command(0x1F, b"")  # COM_RESET_CONNECTION
    conn._read_ok_packet()
    assert one(conn, "SELECT @@time_zone")[0][0] != "+03:00"
    conn.close()


def test_unsafe_charset_set_in_dev_does_not_reach_prod(proxy):
    conn = proxy.connect(autocommit=None)
    one(conn, "SET NAMES gbk")  # allowed in writable dev
    with pytest.raises(pymysql.err.MySQLError) as e:
        one(conn, "/* env=prod */ SELECT 1")
    assert e.value.args[0] == 1290 and "gbk" in e.value.args[1]
    conn.close()
