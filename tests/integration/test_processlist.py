"""SHOW [FULL] PROCESSLIST is answered by envproxy with its own sessions.

Every envproxy account shares the backend account, so the server's process list would show
other accounts' statements (it stays refused when forwarded: test_wall_state). The proxy
answers it instead: one row per live envproxy session of the same account, with the
server's columns, the proxy's connection ids (the ones KILL takes), the envproxy account,
the client's address, `db@env`, Sleep/Query, the running statement in Info (cut at 100
characters unless FULL).
"""

import threading
import time

import pymysql
import pytest

from harness import StmtDriver, mariadb_cli


def rows_of(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.description, list(cur.fetchall())


def conn_id(conn):
    return rows_of(conn, "SELECT CONNECTION_ID()")[1][0][0]


def start_sleep(conn, marker, seconds):
    """Runs SELECT SLEEP(seconds) with marker in a comment, in a thread."""
    sql = f"SELECT SLEEP({seconds}) /* {marker} {'x' * 120} */"
    result = {}

    def run():
        try:
            result["rows"] = rows_of(conn, sql)[1]
        except pymysql.MySQLError as e:
            result["err"] = e.args
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, sql, result


def wait_row(conn, sql, pred, timeout=10):
    """Polls sql on conn (10 s at most) until some row satisfies pred; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        rows = rows_of(conn, sql)[1]
        for r in rows:
            if pred(r):
                return r
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


def test_each_account_sees_its_own_sessions(make_proxy, servers):
    """alice and bob each see only their own sessions, with the server's columns (names
    and order as MariaDB's SHOW PROCESSLIST). alice's running SLEEP shows in her Info (cut
    at 100 characters, whole with FULL) with Command Query and db shop@dev; bob sees no
    trace of it; an idle session is Sleep with Info NULL."""
    p = make_proxy()
    a1 = p.connect(database="shop@dev", autocommit=True)
    a2 = p.connect(database="shop@dev", autocommit=True)
    b1 = p.connect(user="bob", password="bob-pw", database="shop@prod", autocommit=True)
    marker = "marker-ps-8812"
    t = None
    try:
        ids_a = {conn_id(a1), conn_id(a2)}
        id_b = conn_id(b1)
        direct = pymysql.connect(host="127.0.0.1", port=servers.dev.port, user="app",
                                 password="app-secret", connect_timeout=5)
        try:
            server_desc, _ = rows_of(direct, "SHOW PROCESSLIST")
        finally:
            direct.close()
        desc, rows = rows_of(a1, "SHOW PROCESSLIST")
        assert [d[0] for d in desc] == [d[0] for d in server_desc]
        assert [d[0] for d in desc][:9] == ["Id", "User", "Host", "db", "Command", "Time",
                                           "State", "Info", "Progress"]
        assert {r[0] for r in rows} == ids_a, rows
        assert all(r[1] == "alice" for r in rows), rows
        own = [r for r in rows if r[0] == conn_id(a1)]
        assert own[0][4] == "Query" and own[0][7] == "SHOW PROCESSLIST", own
        port = a1.host_info  # noqa: F841 - the row's Host is the client's address:port
        local = a1._sock.getsockname()
        assert own[0][2] == f"{local[0]}:{local[1]}", own
        assert own[0][3] == "shop@dev", own

        t, sql, result = start_sleep(a2, marker, 3)
        row = wait_row(a1, "SHOW FULL PROCESSLIST",
                       lambda r: r[7] is not None and marker in r[7])
        assert row[7] == sql and row[4] == "Query" and row[1] == "alice", row
        short = wait_row(a1, "show   processlist ;",
                         lambda r: r[7] is not None and marker in r[7])
        assert short[7] == sql[:100], short

        _, brows = rows_of(b1, "SHOW FULL PROCESSLIST")
        assert {r[0] for r in brows} == {id_b}, brows
        assert marker not in str(brows)
        assert brows[0][1] == "bob" and brows[0][3] == "shop@prod", brows
        t.join(10)
        assert "rows" in result, result
        idle = wait_row(a1, "SHOW FULL PROCESSLIST", lambda r: r[0] == conn_id(a2))
        assert idle[4] == "Sleep" and idle[7] is None, idle
    finally:
        if t:
            t.join(10)
        for c in (a1, a2, b1):
            c.close()


def test_kill_an_id_from_the_list(make_proxy):
    """The Id of a running statement in the list is the one KILL QUERY takes: the SLEEP
    ends at once (interrupted), the session goes on; KILL of that Id ends the session and
    its row leaves the list. bob cannot KILL alice's Id (1095)."""
    p = make_proxy()
    a1 = p.connect(database="shop@dev", autocommit=True)
    a2 = p.connect(database="shop@dev", autocommit=True)
    b1 = p.connect(user="bob", password="bob-pw", autocommit=True)
    marker = "marker-ps-kill-5521"
    t = None
    try:
        t, _, result = start_sleep(a2, marker, 20)
        row = wait_row(a1, "SHOW FULL PROCESSLIST",
                       lambda r: r[7] is not None and marker in r[7])
        with pytest.raises(pymysql.MySQLError) as e:
            rows_of(b1, f"KILL QUERY {row[0]}")
        assert e.value.args[0] == 1095
        start = time.monotonic()
        rows_of(a1, f"KILL QUERY {row[0]}")
        t.join(10)
        assert time.monotonic() - start < 10
        assert not t.is_alive()
        assert rows_of(a2, "SELECT 1")[1] == [(1,)]  # the session goes on
        rows_of(a1, f"KILL {row[0]}")
        wait_row(a1, "SHOW PROCESSLIST", lambda r: True)
        deadline = time.monotonic() + 10
        while row[0] in {r[0] for r in rows_of(a1, "SHOW PROCESSLIST")[1]}:
            assert time.monotonic() < deadline, "the killed session is still listed"
            time.sleep(0.1)
    finally:
        if t:
            t.join(10)
        for c in (a1, a2, b1):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - a2 was killed
                pass


def test_mariadb_cli_full_processlist(make_proxy):
    """The mariadb CLI gets the list too: its own row (Query, SHOW FULL PROCESSLIST with
    the comment as the CLI sends it), db shop@prod, and no row of another account."""
    p = make_proxy()
    other = p.connect(user="bob", password="bob-pw", autocommit=True)
    try:
        rc, out, err = mariadb_cli(p, "alice", "alice-pw", "-D", "shop@prod",
                                   "SHOW FULL PROCESSLIST")
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0].split("\t")[:9] == ["Id", "User", "Host", "db", "Command", "Time",
                                            "State", "Info", "Progress"]
        rows = [line.split("\t") for line in lines[1:]]
        assert len(rows) == 1, out
        assert rows[0][1] == "alice" and rows[0][3] == "shop@prod", rows
        assert rows[0][4] == "Query" and "SHOW FULL PROCESSLIST" in rows[0][7], rows
        rc, out, err = mariadb_cli(p, "bob", "bob-pw", "SHOW PROCESSLIST")
        assert rc == 0, err
        assert len(out.splitlines()) == 3 and "alice" not in out, out  # header + 2 bob rows
    finally:
        other.close()


def test_hint_and_prepared_statement(make_proxy):
    """With a single-environment hint, and as a server-side prepared statement, the list is
    still the proxy's (the account's own sessions); a fan-out hint is refused (1290) as
    the server's list would be."""
    p = make_proxy()
    a1 = p.connect(database="shop@dev", autocommit=True)
    b1 = p.connect(user="bob", password="bob-pw", autocommit=True)
    d = StmtDriver(p, db="shop")
    try:
        ids = {conn_id(a1)}
        rows = rows_of(a1, "/* env=prod */ SHOW FULL PROCESSLIST")[1]
        assert ids <= {r[0] for r in rows} and all(r[1] == "alice" for r in rows), rows
        assert conn_id(b1) not in {r[0] for r in rows}
        assert d.cmd("prepare SHOW FULL PROCESSLIST")[0] == "OK"
        got = d.cmd("exec")
        assert got[0] == "ROWS", got
        assert "alice" in str(got[1]) and "bob" not in str(got[1]), got
        with pytest.raises(pymysql.MySQLError) as e:
            rows_of(a1, "/* env=* */ SHOW PROCESSLIST")
        assert e.value.args[0] == 1290
    finally:
        d.close()
        a1.close()
        b1.close()
