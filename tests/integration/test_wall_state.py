"""The read-only wall against state a session keeps between its statements.

The backend account `app` has ALL PRIVILEGES: only envproxy stands between a read-only
session and a change. Each test compares the server's whole state (harness.server_state)
before and after the attack.

- a prepared statement keeps the environment it was prepared in, but not the right to write
  it had then: once the account or the environment is read-only, its EXECUTE is checked
  again as a read-only statement;
"""

import time

import pytest

from harness import StmtDriver, server_state, state_diff


def wait_refused(p, user, password, sql):
    """Polls (15 s at most) until a plain statement of user's is refused (1290): a reload
    has been applied."""
    deadline = time.monotonic() + 15
    while True:
        conn = p.connect(user=user, password=password, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        except Exception as e:  # noqa: BLE001 - the refusal is what we wait for
            if getattr(e, "args", (None,))[0] == 1290:
                return
        finally:
            conn.close()
        assert time.monotonic() < deadline, "the reload was not applied"
        time.sleep(0.1)


WRITES = ["SET GLOBAL net_read_timeout = 41",  # not stopped by a READ ONLY session
          "UPDATE orders SET note = 'changed' WHERE id = 1"]


@pytest.mark.parametrize("demote", ["grant", "environment"])
def test_prepared_write_is_checked_again_once_read_only(make_proxy, servers, demote):
    """alice prepares an UPDATE and a SET GLOBAL while dev is writable for her; then her
    grant on dev (or dev itself) becomes read-only. The statements she still holds are
    refused at EXECUTE (1290) and dev is unchanged; a read-only statement still runs."""
    p = make_proxy()
    drivers = []
    try:
        for sql in WRITES:
            d = StmtDriver(p, db="shop")
            drivers.append(d)
            assert d.cmd("prepare " + sql)[0] == "OK"
            assert d.cmd("exec")[0] == "AFFECTED", sql  # writable now
        servers.sql("dev", "UPDATE shop.orders SET note = NULL WHERE id = 1")
        servers.sql("dev", "SET GLOBAL net_read_timeout = DEFAULT")
        before = server_state(servers.dev)
        if demote == "grant":
            p.cli("user", "grant", "alice", "dev", "read")
        else:
            p.write_config({"environments": {"dev": {"access": "read_only"}}})
        p.reload()
        # The probe is a write the policy refuses once the reload is in, but one that changes
        # nothing when it still runs before (the state comparison must see only EXECUTE).
        wait_refused(p, "alice", "alice-pw", "UPDATE shop.orders SET note = 'x' WHERE 1 = 0")
        for d, sql in zip(drivers, WRITES):
            for _ in range(2):
                err = d.cmd("exec")
                assert err[0] == "ERR" and err[1] == "1290", (sql, err)
        diff = state_diff(before, server_state(servers.dev))
        assert not diff, f"dev changed: {diff}"
        assert drivers[0].cmd("prepare SELECT note FROM orders WHERE id = 1")[0] == "OK"
        assert drivers[0].cmd("exec")[0] == "ROWS"
    finally:
        for d in drivers:
            d.close()
        servers.sql("dev", "SET GLOBAL net_read_timeout = DEFAULT")


MONITORS = [
    "/* env=* */ SHOW FULL PROCESSLIST",
    "/* env=* */ SHOW PROCESSLIST",
    "SELECT INFO FROM information_schema.PROCESSLIST",
    "SELECT * FROM `information_schema` . `processlist` WHERE id > 0",
    "SELECT trx_query FROM information_schema.INNODB_TRX",
    "SHOW ENGINE INNODB STATUS",
    "SELECT argument FROM mysql.general_log",
    "/* env=prod */ SELECT info FROM information_schema.processlist",
    "/* env=* */ SELECT info FROM information_schema.processlist",
]


def test_other_sessions_statements_stay_hidden(make_proxy, servers):
    """Every envproxy account shares prod's backend account, which sees all its own threads:
    bob must not read alice's running statement (and the literal in it) through the
    processlist, InnoDB's transaction list or its status, in any spelling, nor through
    information_schema as the current database (COM_INIT_DB, or USE in a multi-statement
    packet). Refused (1290) without the literal."""
    import threading

    import pymysql
    p = make_proxy()
    alice = p.connect(database="shop@prod", autocommit=True)
    bob = p.connect(user="bob", password="bob-pw", autocommit=True)
    secret = "secret-literal-4711"
    # A read that runs a second or so (SLEEP is refused in prod).
    t = threading.Thread(target=lambda: alice.cursor().execute(
        f"SELECT COUNT(*) FROM seq_1_to_20000000 WHERE '{secret}' <> ''"), daemon=True)
    t.start()
    try:
        time.sleep(0.3)  # alice's statement is running
        for sql in MONITORS:
            try:
                with bob.cursor() as cur:
                    cur.execute(sql)
                    got = cur.fetchall()
            except pymysql.MySQLError as e:
                got = e.args
            assert got[0] == 1290, (sql, str(got)[:300])
            assert secret not in str(got), sql
        from pymysql.constants import CLIENT
        multi = p.connect(user="bob", password="bob-pw", client_flag=CLIENT.MULTI_STATEMENTS)
        with pytest.raises(pymysql.MySQLError) as e:
            with multi.cursor() as cur:
                cur.execute("SELECT 1; USE information_schema; SELECT info FROM processlist")
                while cur.nextset():
                    pass
        assert e.value.args[0] == 1290
        multi.close()
        bob.select_db("information_schema")
        with pytest.raises(pymysql.MySQLError) as e:
            with bob.cursor() as cur:
                cur.execute("SELECT info FROM processlist")
        assert e.value.args[0] == 1290
    finally:
        t.join(10)
        alice.close()
        bob.close()


@pytest.mark.parametrize("held", ["transaction", "temporary table"])
def test_state_held_when_the_account_is_demoted_is_not_dropped_silently(make_proxy, servers,
                                                                       held):
    """alice holds state on her dev connection (an open transaction with an INSERT, or a
    temporary table); then her grant on dev becomes read-only and the proxy reloads. Her
    next statement must not find that state silently gone: it gets 1213 naming dev and what
    was lost, the INSERT is not committed, and the statement after it runs as read-only."""
    import pymysql
    p = make_proxy()
    conn = p.connect(database="shop@dev", autocommit=True)
    servers.sql("dev", "DELETE FROM shop.orders WHERE id = 990")
    try:
        with conn.cursor() as cur:
            if held == "transaction":
                cur.execute("BEGIN")
                cur.execute("INSERT INTO orders (id, customer_id, status, total, created_at) VALUES (990, 1, 'x', 1, NOW())")
            else:
                cur.execute("CREATE TEMPORARY TABLE scratch (a INT)")
                cur.execute("INSERT INTO scratch VALUES (1)")
        p.cli("user", "grant", "alice", "dev", "read")
        p.reload()
        wait_refused(p, "alice", "alice-pw", "UPDATE shop.orders SET note = 'x' WHERE 1 = 0")
        with pytest.raises(pymysql.err.OperationalError) as e:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM orders")
        code, msg = e.value.args
        assert code == 1213, e.value.args
        assert "'dev'" in msg and "read-only" in msg and "gone" in msg, msg
        with conn.cursor() as cur:
            cur.execute("SELECT @@in_transaction")
            assert cur.fetchone() == (0,)
            with pytest.raises(pymysql.err.MySQLError) as e2:
                cur.execute("INSERT INTO orders (id, customer_id, status, total, created_at) VALUES (991, 1, 'x', 1, NOW())")
            assert e2.value.args[0] == 1290
        assert servers.sql("dev", "SELECT COUNT(*) FROM shop.orders WHERE id IN (990, 991)") \
            in ([(0,)], [[0]], [("0",)], [["0"]], 0, "0"), "the INSERT was committed"
    finally:
        conn.close()
        p.cli("user", "grant", "alice", "dev", "write")
        servers.sql("dev", "DELETE FROM shop.orders WHERE id IN (990, 991)")


def test_transaction_of_a_revoked_grant_is_rolled_back_and_said(make_proxy, servers):
    """alice holds a row lock in an open dev transaction; her grant on dev is revoked and
    the proxy reloads. Every statement of hers for dev was refused with 1044, ROLLBACK too,
    while the transaction stayed open with its lock until she disconnected. Now the first
    refusal also says that the transaction there is gone: the lock is released at once (an
    UPDATE of the row by root does not wait) and the change is not committed."""
    import pymysql
    servers.sql("dev", "UPDATE shop.orders SET note = NULL WHERE id = 1")
    p = make_proxy()
    conn = p.connect(database="shop", autocommit=True)
    root = servers.dev.connect(database="shop", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE orders SET note = 'revoked' WHERE id = 1")
        p.cli("user", "revoke", "alice", "dev")
        p.reload()
        deadline = time.monotonic() + 15
        while True:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            except pymysql.err.MySQLError as e:
                code, msg = e.args
                break
            assert time.monotonic() < deadline, "the reload was not applied"
            time.sleep(0.1)
        assert code == 1044 and "'dev'" in msg and "transaction" in msg and "gone" in msg, msg
        with root.cursor() as rc:
            rc.execute("SET SESSION innodb_lock_wait_timeout = 3")
            rc.execute("UPDATE orders SET note = 'root' WHERE id = 1")
        assert servers.sql("dev", "SELECT note FROM shop.orders WHERE id = 1") == [("root",)]
    finally:
        conn.close()
        root.close()
        p.cli("user", "grant", "alice", "dev", "write")
        servers.sql("dev", "UPDATE shop.orders SET note = NULL WHERE id = 1")


def wait_exec_refused(d, code, what):
    """Polls (15 s at most) an EXECUTE of driver d's read-only statement until it is refused
    with code: the reload has been applied. Returns the error."""
    deadline = time.monotonic() + 15
    while True:
        r = d.cmd("exec")
        if r[0] == "ERR" and r[1] == code:
            return r
        assert time.monotonic() < deadline, f"the reload was not applied ({what}): {r}"
        time.sleep(0.1)


def test_prepared_statement_loses_a_revoked_grant(make_proxy, servers):
    """alice prepares an UPDATE and a SELECT in dev and runs both (the proxy now knows her
    grant for them). Her grant on dev is revoked and the proxy reloads: both EXECUTEs are
    refused (1044) from then on and dev is unchanged. Granted again, they run again: what
    the proxy kept of the grant follows the account store both ways."""
    p = make_proxy()
    upd = StmtDriver(p, db="shop")
    sel = StmtDriver(p, db="shop")
    try:
        assert upd.cmd("prepare UPDATE orders SET note = 'changed' WHERE id = 1")[0] == "OK"
        assert sel.cmd("prepare SELECT note FROM orders WHERE id = 1")[0] == "OK"
        for _ in range(2):
            assert upd.cmd("exec")[0] == "AFFECTED"
            assert sel.cmd("exec")[0] == "ROWS"
        servers.sql("dev", "UPDATE shop.orders SET note = NULL WHERE id = 1")
        before = server_state(servers.dev)
        p.cli("user", "revoke", "alice", "dev")
        p.reload()
        wait_exec_refused(sel, "1044", "revoke")
        for _ in range(2):
            err = upd.cmd("exec")
            assert err[0] == "ERR" and err[1] == "1044", err
        diff = state_diff(before, server_state(servers.dev))
        assert not diff, f"dev changed: {diff}"
        p.cli("user", "grant", "alice", "dev", "write")
        p.reload()
        deadline = time.monotonic() + 15
        while sel.cmd("exec")[0] != "ROWS":
            assert time.monotonic() < deadline, "the grant did not come back"
            time.sleep(0.1)
        assert upd.cmd("exec")[0] == "AFFECTED"
    finally:
        upd.close()
        sel.close()
        servers.sql("dev", "UPDATE shop.orders SET note = NULL WHERE id = 1")


def test_prepared_statement_of_a_removed_environment(make_proxy, servers):
    """alice, whose session is in prod, prepares a write routed to dev and runs it. dev is
    removed from the configuration and the proxy reloads: the statement is refused at every
    EXECUTE from then on and dev is unchanged (the grant the proxy kept for it belonged to
    the configuration that had dev)."""
    p = make_proxy()
    d = StmtDriver(p, db="shop@prod")
    probe = StmtDriver(p, db="shop@prod")
    try:
        assert d.cmd("prepare /* env=dev */ UPDATE shop.orders SET note = 'changed' "
                     "WHERE id = 1")[0] == "OK"
        assert probe.cmd("prepare /* env=dev */ SELECT 1")[0] == "OK"
        assert d.cmd("exec")[0] == "AFFECTED"
        assert probe.cmd("exec")[0] == "ROWS"
        servers.sql("dev", "UPDATE shop.orders SET note = NULL WHERE id = 1")
        before = server_state(servers.dev)
        p.write_config({"default_environment": "prod", "environments": {"dev": None}})
        p.reload()
        deadline = time.monotonic() + 15
        while probe.cmd("exec")[0] != "ERR":
            assert time.monotonic() < deadline, "the reload was not applied"
            time.sleep(0.1)
        for _ in range(2):
            err = d.cmd("exec")
            assert err[0] == "ERR", err
        diff = state_diff(before, server_state(servers.dev))
        assert not diff, f"dev changed: {diff}"
    finally:
        d.close()
        probe.close()
        servers.sql("dev", "UPDATE shop.orders SET note = NULL WHERE id = 1")
