"""The client timer kept lazily: statement_timeout and client_idle_timeout share one timer that
is not deleted when a statement or an idle spell ends; a firing checks the deadline of the
state it finds and re-adds itself for what is left. These tests pin the edges where a timer
left over from an earlier deadline could kill too early, too late, or touch freed memory."""

import struct
import time

import pymysql
import pytest
from pymysql.constants import CLIENT

from rawmysql import Raw, err_of

COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
TIMEOUT_MSG = "Query execution was interrupted, maximum statement execution time exceeded"


def timed_error(cur, sql):
    """Runs sql expecting an error: (the error's args, seconds it took)."""
    start = time.monotonic()
    with pytest.raises(pymysql.err.MySQLError) as e:
        cur.execute(sql)
    return e.value.args, time.monotonic() - start


def sleeping(servers, marker):
    return servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                              f"WHERE INFO LIKE '%{marker}%' AND INFO NOT LIKE '%PROCESSLIST%'")[0][0]


def test_next_statement_gets_its_own_full_timeout(make_proxy):
    """A statement that starts right after another one ended just before its deadline runs
    for its own whole statement_timeout: the timer still added for the first deadline only
    re-adds itself. Killed at the first statement's deadline, the second would fail after
    ~0.3 s instead of succeeding, and the third would be cut short."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "2s"}})
    conn = p.connect(read_timeout=30)
    with conn.cursor() as cur:
        cur.execute("SELECT SLEEP(1.7)")  # ends ~0.3 s before its deadline
        assert cur.fetchall() == ((0,),)
        start = time.monotonic()
        cur.execute("SELECT SLEEP(1.2)")  # runs across the first statement's deadline
        assert cur.fetchall() == ((0,),)
        assert time.monotonic() - start >= 1.1
        cur.execute("SELECT SLEEP(1.7)")
        assert cur.fetchall() == ((0,),)
        args, took = timed_error(cur, "SELECT SLEEP(20)")
        assert args == (3024, TIMEOUT_MSG)
        assert 1.8 <= took < 5, took  # its own 2 s, not what was left of the one before
        cur.execute("SELECT 'usable'")
        assert cur.fetchall() == (("usable",),)
    conn.close()


def test_long_idle_session_still_times_out(make_proxy):
    """A session that idled long past its last statement's deadline (the left-over timer
    fired while it was idle and was dropped) gets a timer again for its next statement."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "1s"}})
    conn = p.connect(read_timeout=30)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        time.sleep(2.5)
        args, took = timed_error(cur, "SELECT SLEEP(20)")
        assert args == (3024, TIMEOUT_MSG)
        assert 0.8 <= took < 4, took
        # And again after a statement that ended with the timer added.
        cur.execute("SELECT SLEEP(0.5)")
        time.sleep(1.5)
        args, took = timed_error(cur, "SELECT SLEEP(20)")
        assert args == (3024, TIMEOUT_MSG)
        assert 0.8 <= took < 4, took
    conn.close()


def test_client_leaving_with_the_timer_added(make_proxy, servers):
    """Clients that leave while the timer is added (after a statement, mid-statement, by
    COM_QUIT or by closing the socket) free it with them: the proxy lives on past every
    deadline they had (under the ASan build a firing on freed memory aborts it) and the
    leaving statement does not keep running on the server."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "1s"},
                               "client_idle_timeout": "1500ms"})
    for i in range(4):
        conn = p.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT SLEEP(0.2)")
        if i % 2:
            conn.close()  # COM_QUIT
        else:
            conn._sock.close()
    conn = p.connect(read_timeout=10)
    conn._execute_command(3, b"SELECT SLEEP(30) /* timer_leaving */")
    time.sleep(0.3)
    conn._sock.close()
    time.sleep(2.5)  # past every deadline the clients had
    assert p.alive()
    deadline = time.monotonic() + 3
    while sleeping(servers, "timer_leaving") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleeping(servers, "timer_leaving") == 0
    conn = p.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 'alive'")
        assert cur.fetchall() == (("alive",),)
    conn.close()
    assert p.alive()


def test_reload_changes_statement_timeout_between_statements(make_proxy):
    """A reload that shortens statement_timeout applies to the next statement even though
    the timer is still added for the longer deadline of the one before; one that lengthens
    it lets the next statement run past the shorter deadline left added."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "6s"}})
    conn = p.connect(read_timeout=30)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")  # timer added for +6 s
        p.write_config({"limits": {"statement_timeout": "1s"}})
        p.reload()
        deadline = time.monotonic() + 5
        while True:
            cur.execute("SELECT statement_timeout_ms FROM __envs.session")
            if cur.fetchall() == ((1000,),):
                break
            assert time.monotonic() < deadline, "statement_timeout 1s not applied"
            time.sleep(0.1)
        args, took = timed_error(cur, "SELECT SLEEP(20)")
        assert args == (3024, TIMEOUT_MSG)
        assert took < 3, took  # not at the 6 s deadline of the statement before
        cur.execute("SELECT 1")  # timer added for +1 s
        p.write_config({"limits": {"statement_timeout": "5s"}})
        p.reload()
        deadline = time.monotonic() + 5
        while True:
            cur.execute("SELECT statement_timeout_ms FROM __envs.session")
            if cur.fetchall() == ((5000,),):
                break
            assert time.monotonic() < deadline, "statement_timeout 5s not applied"
            time.sleep(0.1)
        cur.execute("SELECT SLEEP(2)")
        assert cur.fetchall() == ((0,),)
    conn.close()


def _idle_close_after(r):
    """Seconds until the proxy's ERR 4031 arrives on r (a logged-in Raw), asserting it."""
    start = time.monotonic()
    r.sock.settimeout(10)
    code, msg = err_of(r.recv_packet())
    took = time.monotonic() - start
    assert code == 4031 and "client_idle_timeout" in msg, (code, msg)
    assert r.expect_closed() in ("fin", "reset")
    return took


def test_idle_timeout_with_statement_timeout(make_proxy):
    """client_idle_timeout counts from the end of the last command whatever statement
    deadline the timer was last added for: a statement longer than the idle timeout is not
    cut by it, and the session is closed one idle timeout after its last statement, not at
    the (later) statement deadline nor while it works."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "6s"},
                               "client_idle_timeout": "1s"})
    r = Raw(p.port)
    busy = Raw(p.port)
    try:
        assert r.login("alice", "alice-pw")[:1] == b"\x00"
        # Longer than the idle timeout, shorter than statement_timeout: it completes.
        rows = r.query_rows("SELECT SLEEP(1.5)")
        assert len(rows) == 1
        took = _idle_close_after(r)  # the timer is added for the statement's +6 s
        assert 0.7 <= took < 2.5, took
        assert busy.login("alice", "alice-pw")[:1] == b"\x00"
        for _ in range(8):  # a working session is not closed
            time.sleep(0.3)
            assert busy.query_rows("SELECT 1")
        took = _idle_close_after(busy)
        assert 0.7 <= took < 2.5, took
    finally:
        r.close()
        busy.close()


def test_idle_timeout_shorter_than_the_statement_timer(make_proxy):
    """With statement_timeout shorter than client_idle_timeout, the statement's timer fires
    while the session idles and is re-added for the rest of the idle timeout."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "500ms"},
                               "client_idle_timeout": "2s"})
    r = Raw(p.port)
    try:
        assert r.login("alice", "alice-pw")[:1] == b"\x00"
        time.sleep(1.2)
        assert r.query_rows("SELECT 1")  # idle deadline now 2 s from here
        took = _idle_close_after(r)
        assert 1.7 <= took < 3.5, took
    finally:
        r.close()


def test_prepared_statement_times_out(make_proxy):
    """An EXECUTE of a prepared statement gets its own statement_timeout, also right after a
    PREPARE and a statement whose timer is still added."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "1s"}})
    r = Raw(p.port)
    try:
        assert r.login("alice", "alice-pw", db="shop")[:1] == b"\x00"
        assert r.query_rows("SELECT SLEEP(0.7)")
        r.send_packet(bytes([COM_STMT_PREPARE]) + b"SELECT SLEEP(20)", seq=0)
        ok = r.recv_packet()
        assert ok[:1] == b"\x00", err_of(ok)
        stmt_id, ncols, nparams = struct.unpack("<IHH", ok[1:9])
        assert (ncols, nparams) == (1, 0)
        for _ in range(ncols + 1):  # column definition, EOF
            r.recv_packet()
        start = time.monotonic()
        r.send_packet(bytes([COM_STMT_EXECUTE]) + struct.pack("<IBI", stmt_id, 0, 1), seq=0)
        err = None
        for _ in range(10):
            pkt = r.recv_packet()
            if pkt[:1] == b"\xff":
                err = err_of(pkt)
                break
        took = time.monotonic() - start
        assert err == (3024, TIMEOUT_MSG), err
        assert 0.8 <= took < 4, took
        assert r.query_rows("SELECT 'usable'")
    finally:
        r.close()


def test_multi_statement_times_out(make_proxy):
    """A multi-statement's whole run has one statement_timeout: the sleeping statement after
    a quick one is interrupted on time, and the session goes on."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "1s"}})
    conn = p.connect(client_flag=CLIENT.MULTI_STATEMENTS, read_timeout=30)
    with conn.cursor() as cur:
        cur.execute("SELECT SLEEP(0.5)")
        start = time.monotonic()
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT 1; SELECT SLEEP(20); SELECT 2")
            while cur.nextset():
                pass
        took = time.monotonic() - start
        assert e.value.args == (3024, TIMEOUT_MSG)
        assert 0.8 <= took < 4, took
        cur.execute("SELECT 'usable'")
        assert cur.fetchall() == (("usable",),)
    conn.close()
