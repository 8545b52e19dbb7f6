"""Session state that lives only on a backend connection is never lost silently when the
backend is killed (-9) and restarted: every form of it (a transaction opened by a prepared
BEGIN or by a multi-statement packet, a SAVEPOINT, a read-only transaction in a read-write
environment, LOCK TABLES, a temporary table, GET_LOCK, XA) makes the next statement fail
with 2013 naming the environment, never an OK for work that is gone; a fresh client is
served in both environments afterwards. So does a transaction whose connection the proxy
closes because the backend did not answer a statement_timeout's kill: the 3024 ends the
statement only, and the COMMIT after it gets 2013. The HTTP front door holds no state between
requests, so it has nothing to lose.

Servers are killed only by the PID the harness started them with, and started again."""

import json

import pymysql
import pytest
from pymysql.constants import CLIENT

from test_faults import FAST, eventually_serves, kill_and_restart, stopped


@pytest.fixture(scope="module", autouse=True)
def state_table(servers):
    servers.sql("dev", "CREATE DATABASE IF NOT EXISTS faults2")
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS faults2.t (v VARCHAR(20)) ENGINE=InnoDB")
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS faults2.t2 (v VARCHAR(20)) ENGINE=InnoDB")
    yield
    if not servers["dev"].running():
        servers["dev"].start()
    servers.sql("dev", "DROP DATABASE IF EXISTS faults2")


def both_served(p):
    eventually_serves(p)
    eventually_serves(p, env_db="shop@prod")


def commit_fails_for_the_lost_dev_transaction(cur):
    """COMMIT of a transaction the proxy lost gets 2013 naming dev and the transaction,
    never OK."""
    with pytest.raises(pymysql.err.OperationalError) as e:
        cur.execute("COMMIT")
    code, msg = e.value.args
    assert code == 2013 and "'dev'" in msg and "transaction" in msg, e.value.args


def rows(servers):
    return sorted(r[0] for r in servers.sql("dev", "SELECT v FROM faults2.t"))


# (statements before the restart, the statement after it, what the 2013 names as lost)
FORMS = {
    "multi_statement_begin": (["BEGIN; INSERT INTO t VALUES ('lost')"], "COMMIT",
                              "transaction"),
    "savepoint": (["BEGIN", "INSERT INTO t VALUES ('lost')", "SAVEPOINT s1"],
                  "ROLLBACK TO SAVEPOINT s1", "transaction"),
    "read_only_transaction": (["START TRANSACTION", "SELECT COUNT(*) FROM t"], "COMMIT",
                              "transaction"),
    "start_transaction_read_only": (["START TRANSACTION READ ONLY", "SELECT COUNT(*) FROM t"],
                                    "COMMIT", "transaction"),
    "lock_tables": (["LOCK TABLES t2 WRITE", "INSERT INTO t2 VALUES ('locked')"],
                    "UNLOCK TABLES", "LOCK"),
    "temporary_table": (["CREATE TEMPORARY TABLE tmp (x INT)", "INSERT INTO tmp VALUES (1)"],
                        "SELECT x FROM tmp", "TEMPORARY"),
    "get_lock": (["SELECT GET_LOCK('faults2-lock', 5)"],
                 "SELECT RELEASE_LOCK('faults2-lock')", "GET_LOCK"),
    "xa": (["XA START 'x1'", "INSERT INTO t VALUES ('lost')"], "XA END 'x1'", "transaction"),
}


def test_state_is_not_lost_silently_after_a_restart(make_proxy, servers):
    """One client per form runs the form's statements; one restart of the backend; then
    each runs the statement that relies on what its form left in the backend session: 2013
    naming the environment and the kind of state that was lost; each session then starts
    clean, nothing of the uncommitted work is in the table, and both environments serve
    fresh clients."""
    servers.sql("dev", "DELETE FROM faults2.t")
    p = make_proxy(extra_yaml=FAST)
    conns = {}
    try:
        for form, (before, _, _) in sorted(FORMS.items()):
            conn = conns[form] = p.connect(database="faults2", autocommit=True,
                                           read_timeout=20,
                                           client_flag=CLIENT.MULTI_STATEMENTS)
            with conn.cursor() as cur:
                for sql in before:
                    cur.execute(sql)
                    while cur.nextset():
                        pass
        kill_and_restart(servers["dev"])
        for form, (_, after, what) in sorted(FORMS.items()):
            with conns[form].cursor() as cur:
                with pytest.raises(pymysql.err.OperationalError) as e:
                    cur.execute(after)
                code, msg = e.value.args
                assert code == 2013, (form, e.value.args)
                assert "'dev'" in msg and what in msg, (form, msg)
                cur.execute("SELECT @@autocommit, @@in_transaction")
                assert cur.fetchall() == ((1, 0),), form
        assert rows(servers) == [], rows(servers)
    finally:
        for conn in conns.values():
            conn.close()
    both_served(p)


def test_prepared_begin_is_not_lost_silently(make_proxy, servers):
    """A transaction opened by a prepared BEGIN (COM_STMT_EXECUTE) and a prepared INSERT:
    after a restart, the COMMIT (prepared too) gets an error instead of OK, and the row is
    not in the table."""
    from harness import StmtDriver
    servers.sql("dev", "DELETE FROM faults2.t")
    p = make_proxy(extra_yaml=FAST)
    d = StmtDriver(p, db="faults2")
    try:
        assert d.cmd("prepare BEGIN")[0] == "OK"
        assert d.cmd("exec")[0] in ("OK", "AFFECTED")
        assert d.cmd("prepare INSERT INTO t VALUES (?)")[0] == "OK"
        assert d.cmd("exec s:lost")[0] in ("OK", "AFFECTED")
        kill_and_restart(servers["dev"])
        assert d.cmd("prepare COMMIT")[0] in ("OK", "ERR")
        answer = d.cmd("exec")
        # Connector/C 3.3 reports a client-range code sent by a server as 2027.
        assert answer[0] == "ERR" and answer[1] in ("2013", "2027"), answer
        assert "lost with session state (a transaction" in p.log_text()
        assert rows(servers) == []
    finally:
        d.close()
    both_served(p)


def test_backend_killed_mid_row_closes_the_client_instead_of_hanging_it(make_proxy, servers):
    """kill -9 of the backend while a result streams, so that the backend's last bytes end
    in the middle of a row: half a packet already went to the client, no error can follow
    it cleanly, so the proxy closes that client at once (a lost connection, as from a server
    that dies) instead of leaving it waiting for the rest of the row; both environments
    serve fresh clients afterwards."""
    import time
    from test_faults import Raw
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "30s", "max_rows": 0}})
    raw = Raw(p.port)
    try:
        raw.query("SELECT seq, REPEAT('x', 200) AS v FROM seq_1_to_400000 /* cut row */ "
                  "WHERE SLEEP(0.00002) = 0")
        raw.packet()
        kill_and_restart(servers["dev"])
        start = time.monotonic()
        closed, err = False, None
        try:
            for _ in range(500000):
                _, body = raw.packet()
                if body[:1] == b"\xff":
                    err = body  # the backend's bytes happened to end between two rows
                    break
        except ConnectionError:
            closed = True
        assert time.monotonic() - start < 5
        if closed:
            assert "half a packet had gone to the client" in p.log_text()
        else:
            assert err and b"'dev'" in err, err
    finally:
        raw.close()
    both_served(p)


def test_transaction_closed_by_a_timeout_fails_the_commit(make_proxy, servers):
    """BEGIN; INSERT; the backend stops answering (kill -STOP), so the statement_timeout's
    kill is not answered and the proxy closes the connection: the statement gets 3024, a
    code that ends only a statement, and the client goes on to COMMIT, which was answered
    OK on a new connection although the row was gone. Now the COMMIT gets 2013 naming the
    environment and the transaction, the row is not in the table, and the session goes on
    clean."""
    servers.sql("dev", "DELETE FROM faults2.t")
    p = make_proxy(extra_yaml=FAST)
    conn = p.connect(database="faults2", autocommit=True, read_timeout=20)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO t VALUES ('lost')")
            with stopped(servers["dev"]):
                with pytest.raises(pymysql.err.MySQLError) as e:
                    cur.execute("SELECT 1")
            assert e.value.args[0] == 3024 and "closed" in e.value.args[1], e.value.args
            commit_fails_for_the_lost_dev_transaction(cur)
            cur.execute("SELECT @@autocommit, @@in_transaction")
            assert cur.fetchall() == ((1, 0),)
        assert rows(servers) == []
    finally:
        conn.close()
    both_served(p)


def test_state_in_two_environments_is_reset_everywhere_when_one_is_lost(make_proxy, servers):
    """A transaction in dev and a user variable in prod; prod is restarted. The next prod
    statement gets 2013 saying the session was reset; the dev transaction is rolled back with
    it, as in a new server session. A client told of prod only may go on to COMMIT in dev:
    that COMMIT was answered OK (and, before, USE shop@prod was refused with 1179 for the
    transaction that no longer existed). Now the COMMIT gets 2013 naming dev and the
    transaction, and the session then moves freely."""
    servers.sql("dev", "DELETE FROM faults2.t")
    p = make_proxy(extra_yaml=FAST)
    conn = p.connect(database="faults2", autocommit=True, read_timeout=20)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO t VALUES ('lost')")
            cur.execute("/* env=prod db=shop */ SELECT @x := 1")
            kill_and_restart(servers["prod"])
            with pytest.raises(pymysql.err.OperationalError) as e:
                cur.execute("/* env=prod db=shop */ SELECT @x")
            code, msg = e.value.args
            assert code == 2013 and "'prod'" in msg and "reset" in msg, e.value.args
            commit_fails_for_the_lost_dev_transaction(cur)
            cur.execute("USE shop@prod")
            cur.execute("SELECT @@in_transaction, @x")
            assert cur.fetchall() == ((0, None),)
        assert rows(servers) == []
    finally:
        conn.close()
    both_served(p)
