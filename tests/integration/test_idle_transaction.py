"""limits.idle_transaction_timeout: an open transaction in a read-only environment cannot
hold its locks for as long as the client likes."""

import threading
import time

import pymysql
import pytest


def test_idle_read_transaction_does_not_block_a_migration(make_proxy, servers):
    """A read-only session reads a table inside START TRANSACTION READ ONLY and idles: its
    metadata lock would block ALTER TABLE forever. With idle_transaction_timeout 2s the
    ALTER by root completes about 2 s later, the client's next statement gets an error
    naming the environment and the timeout (not a silent COMMIT), and the statement after
    that works."""
    servers.sql("prod", "DROP TABLE IF EXISTS shop.itt_a")
    servers.sql("prod", "CREATE TABLE shop.itt_a (id INT PRIMARY KEY, v INT)")
    servers.sql("prod", "INSERT INTO shop.itt_a VALUES (1, 1)")
    p = make_proxy(extra_yaml={"environments": {"prod": {"limits": {
        "idle_transaction_timeout": "2s"}}}})
    conn = p.connect(user="bob", password="bob-pw", database="shop@prod", read_timeout=30,
                     autocommit=True)
    root = servers.prod.connect(database="shop", read_timeout=30)
    done = {}
    try:
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY")
            cur.execute("SELECT * FROM itt_a")
            assert cur.fetchall() == ((1, 1),)

        def alter():
            t0 = time.monotonic()
            try:
                with root.cursor() as rc:
                    rc.execute("SET SESSION lock_wait_timeout = 20")
                    rc.execute("ALTER TABLE itt_a ADD COLUMN w INT")
                done["ok"] = time.monotonic() - t0
            except pymysql.MySQLError as e:
                done["error"] = e

        th = threading.Thread(target=alter)
        th.start()
        th.join(15)
        assert not th.is_alive(), "ALTER TABLE still blocked after 15 s"
        assert "error" not in done, done.get("error")
        assert 1.0 <= done["ok"] <= 6.0, done

        with conn.cursor() as cur:
            with pytest.raises(pymysql.MySQLError) as ei:
                cur.execute("COMMIT")
            code, msg = ei.value.args
            assert code == 1213
            assert "'prod'" in msg and "idle_transaction_timeout" in msg and "rolled back" in msg
            # Only once: the session goes on, outside any transaction.
            cur.execute("SELECT COUNT(*) FROM itt_a")
            assert cur.fetchall() == ((1,),)
            cur.execute("SELECT @@in_transaction")
            assert cur.fetchall() == ((0,),)
        assert "idle_transaction_timeout" in p.log_text()
    finally:
        conn.close()
        root.close()
        servers.sql("prod", "DROP TABLE IF EXISTS shop.itt_a")


def test_autocommit_off_read_is_rolled_back_too(make_proxy, servers):
    """With autocommit=0 a plain SELECT opens the transaction: the same timeout applies (a
    top-level value reaches prod too; 1s here), so the metadata lock taken that way ends and
    a DROP INDEX by root, which needs it, completes; the client is told once."""
    servers.sql("prod", "DROP TABLE IF EXISTS shop.itt_b")
    servers.sql("prod", "CREATE TABLE shop.itt_b (id INT PRIMARY KEY, v INT, KEY kv (v))")
    p = make_proxy(extra_yaml={"limits": {"idle_transaction_timeout": "1s"}})
    conn = p.connect(user="bob", password="bob-pw", database="shop@prod", read_timeout=30,
                     autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET autocommit = 0")
            cur.execute("SELECT * FROM itt_b")
            cur.fetchall()
            cur.execute("SELECT @@in_transaction")
            assert cur.fetchall() == ((1,),)
        root = servers.prod.connect(database="shop", read_timeout=30)
        try:
            with root.cursor() as rc:
                rc.execute("SET SESSION lock_wait_timeout = 8")
                t0 = time.monotonic()
                rc.execute("ALTER TABLE itt_b DROP INDEX kv")
                assert time.monotonic() - t0 < 6
        finally:
            root.close()
        with conn.cursor() as cur:
            with pytest.raises(pymysql.MySQLError) as ei:
                cur.execute("SELECT 1")
            assert ei.value.args[0] == 1213
            cur.execute("SELECT 2")
            assert cur.fetchall() == ((2,),)
            cur.execute("SELECT @@autocommit")  # the session's settings are carried on
            assert cur.fetchall() == ((0,),)
    finally:
        conn.close()
        servers.sql("prod", "DROP TABLE IF EXISTS shop.itt_b")


def test_no_timeout_outside_transactions_or_where_off(make_proxy, servers):
    """A session idle outside a transaction is left alone, and so is a transaction in a
    read_write environment, where the timeout is off unless set."""
    p = make_proxy(extra_yaml={"environments": {"prod": {"limits": {
        "idle_transaction_timeout": "1s"}}}})
    conn = p.connect(user="alice", password="alice-pw", database="shop@dev", read_timeout=30)
    ro = p.connect(user="bob", password="bob-pw", database="shop@prod", read_timeout=30,
                     autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT COUNT(*) FROM customers")
            cur.fetchall()
        with ro.cursor() as cur:
            cur.execute("SELECT 1")
        time.sleep(2.5)
        with conn.cursor() as cur:
            cur.execute("SELECT @@in_transaction")
            assert cur.fetchall() == ((1,),)
            cur.execute("COMMIT")
        with ro.cursor() as cur:
            cur.execute("SELECT 3")
            assert cur.fetchall() == ((3,),)
    finally:
        conn.close()
        ro.close()


def test_prepared_statements_survive_the_rollback(make_proxy, servers):
    """Through the binary protocol (Connector/C's prepared-statement API): a transaction
    that executed a prepared SELECT and idled is rolled back; the next EXECUTE gets the
    error, and the one after that runs again (the statement is prepared anew on the new
    backend connection)."""
    from harness import StmtDriver
    p = make_proxy(extra_yaml={"environments": {"prod": {"limits": {
        "idle_transaction_timeout": "1s"}}}})
    d = StmtDriver(p, user="bob", password="bob-pw", db="shop@prod")
    try:
        assert d.cmd("query START TRANSACTION READ ONLY")[0] == "AFFECTED"
        assert d.cmd("prepare SELECT id FROM customers WHERE id = ?")[0] == "OK"
        assert d.cmd("exec 1") == ("ROWS", [["1"]])
        time.sleep(2)
        err = d.cmd("exec 2")
        assert err[0] == "ERR" and err[1] == "1213" and "'prod'" in err[2], err
        assert d.cmd("exec 2") == ("ROWS", [["2"]])
        assert d.cmd("query SELECT @@in_transaction") == ("ROWS", [["0"]])
    finally:
        d.close()
