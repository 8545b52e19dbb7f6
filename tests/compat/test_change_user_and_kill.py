"""COM_CHANGE_USER through MySQLdb, and KILL [QUERY|CONNECTION] id through PyMySQL.

The ids are those of the proxy's handshakes (conn.thread_id()); SELECT CONNECTION_ID()
gives the same number. An account may kill its own sessions only: another account's
session gets ERR 1095, an id nobody has ERR 1094. Accounts as in tests/integration:
alice (dev write, prod read), bob (prod read, default prod), carol (dev read).
"""

import threading
import time

import MySQLdb
import pymysql
import pytest

from harness import ACCOUNTS, Account


def mysqldb_connect(proxy, user="alice", password="alice-pw", db="shop@dev"):
    return MySQLdb.connect(host="127.0.0.1", port=proxy.port, user=user, passwd=password,
                           db=db, charset="utf8mb4", connect_timeout=5)


def one(conn, sql):
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchone()
    finally:
        cur.close()


def error_code(fn):
    try:
        fn()
    except (MySQLdb.MySQLError, pymysql.err.MySQLError) as e:
        return e.args[0]
    return 0


class Running:
    """Runs one statement on conn in a thread; .wait() gives (rows or error, seconds)."""

    def __init__(self, conn, sql):
        self.result = None
        self.seconds = None
        self._thread = threading.Thread(target=self._run, args=(conn, sql), daemon=True)
        self._thread.start()

    def _run(self, conn, sql):
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                self.result = cur.fetchall()
        except pymysql.err.MySQLError as e:
            self.result = e
        self.seconds = time.monotonic() - start

    def wait(self, timeout=15):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the statement did not end"
        return self.result, self.seconds


def wait_until_running(servers, env, sql, timeout=5):
    """The backend thread id of the session running `sql` on that server, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = servers.sql(env, "SELECT ID FROM information_schema.PROCESSLIST "
                                f"WHERE INFO LIKE '%{sql}%' AND INFO NOT LIKE '%PROCESSLIST%'")
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"{sql!r} never showed up in {env}'s process list")


# ---- COM_CHANGE_USER (MySQLdb)


def test_mysqldb_change_user_moves_the_session_to_bobs_default_env(proxy):
    """conn.change_user('bob', 'bob-pw') on alice's session in dev: the session is now
    bob's, in prod (his default environment) with its default database, alice's user
    variables are gone, and the thread id does not change."""
    conn = mysqldb_connect(proxy)
    try:
        thread_id = conn.thread_id()
        one(conn, "SET @compat_var = 1")
        assert one(conn, "SELECT status FROM orders WHERE id = 3") == ("pending",)
        conn.change_user("bob", "bob-pw")
        assert one(conn, "SELECT DATABASE(), status FROM orders WHERE id = 3") == \
            ("shop", "shipped")
        assert one(conn, "SELECT @compat_var") == (None,)
        assert conn.thread_id() == thread_id
        assert one(conn, "SELECT CONNECTION_ID()") == (thread_id,)
    finally:
        conn.close()


def test_mysqldb_change_user_applies_the_new_accounts_grants(proxy):
    """After change_user to carol (dev read only), a write alice could do in dev gets
    1290, and prod (no grant for carol) gets 1044."""
    conn = mysqldb_connect(proxy)
    try:
        one(conn, "UPDATE products SET stock = stock WHERE id = 1")  # alice may write
        conn.change_user("carol", "carol-pw")
        assert one(conn, "SELECT status FROM orders WHERE id = 3") == ("pending",)
        assert error_code(lambda: one(conn, "UPDATE products SET stock = stock WHERE id = 1")) \
            == 1290
        assert error_code(lambda: one(conn, "USE shop@prod")) == 1044
    finally:
        conn.close()


def test_mysqldb_change_user_with_database_at_env(proxy):
    """change_user('alice', 'alice-pw', 'shop@prod') moves the session to prod's shop."""
    conn = mysqldb_connect(proxy)
    try:
        conn.change_user("alice", "alice-pw", "shop@prod")
        assert one(conn, "SELECT DATABASE(), status FROM orders WHERE id = 3") == \
            ("shop", "shipped")
    finally:
        conn.close()


def test_mysqldb_change_user_with_wrong_password_gets_1045_and_never_becomes_bob(proxy):
    """change_user('bob', 'wrong') fails with 1045. The session does not become bob's:
    either it is closed or it is still alice's, in dev."""
    conn = mysqldb_connect(proxy)
    try:
        with pytest.raises(MySQLdb.OperationalError) as e:
            conn.change_user("bob", "wrong")
        assert e.value.args[0] == 1045
        try:
            row = one(conn, "SELECT status FROM orders WHERE id = 3")
        except MySQLdb.MySQLError:
            return  # closed: fine
        assert row == ("pending",), "after a failed change_user the session moved to prod"
    finally:
        conn.close()


def test_mysqldb_change_user_to_env_without_grant_gets_1044(proxy):
    """change_user('carol', 'carol-pw', '@prod'): right password, but carol has no
    grant for prod: 1044."""
    conn = mysqldb_connect(proxy)
    try:
        with pytest.raises(MySQLdb.OperationalError) as e:
            conn.change_user("carol", "carol-pw", "@prod")
        assert e.value.args[0] == 1044
    finally:
        conn.close()


# ---- thread ids


def test_connection_id_is_the_handshake_thread_id(proxy):
    """SELECT CONNECTION_ID() equals the handshake's thread id (PyMySQL and MySQLdb
    thread_id()), in dev, in prod after USE shop@prod and with an env=prod hint; two
    sessions get two ids."""
    a = proxy.connect(database="shop@dev")
    b = mysqldb_connect(proxy)
    try:
        assert a.thread_id() != b.thread_id()
        with a.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            assert cur.fetchall() == ((a.thread_id(),),)
            cur.execute("/* env=prod */ SELECT CONNECTION_ID()")
            assert cur.fetchall() == ((a.thread_id(),),)
            cur.execute("USE shop@prod")
            cur.execute("SELECT CONNECTION_ID()")
            assert cur.fetchall() == ((a.thread_id(),),)
        assert one(b, "SELECT CONNECTION_ID()") == (b.thread_id(),)
    finally:
        a.close()
        b.close()


# ---- KILL (PyMySQL)


def test_kill_query_interrupts_a_running_query_of_the_same_account(proxy, servers):
    """KILL QUERY <id from SELECT CONNECTION_ID()> from a second connection of alice
    interrupts SELECT SLEEP(10) in dev at once (ERR 1317); both connections stay
    usable."""
    a = proxy.connect(database="shop@dev")
    b = proxy.connect(database="shop@dev")
    try:
        with a.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (victim,), = cur.fetchall()
        assert victim == a.thread_id()
        running = Running(a, "SELECT SLEEP(10)")
        wait_until_running(servers, "dev", "SELECT SLEEP(10)")
        with b.cursor() as cur:
            cur.execute(f"KILL QUERY {victim}")
        result, seconds = running.wait()
        assert seconds < 4, f"SLEEP(10) ran {seconds:.1f}s: {result!r}"
        assert isinstance(result, pymysql.err.OperationalError) and result.args[0] == 1317, \
            result
        with a.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
        with b.cursor() as cur:
            cur.execute("SELECT 2")
            assert cur.fetchall() == ((2,),)
    finally:
        a.close()
        b.close()


def test_kill_query_works_from_a_session_sitting_in_read_only_prod(proxy, servers):
    """KILL QUERY is the proxy's business, not a write: sent from alice's session in
    read-only prod it still interrupts her own query running in dev."""
    a = proxy.connect(database="shop@dev")
    b = proxy.connect(database="shop@prod")
    try:
        running = Running(a, "SELECT SLEEP(9)")
        wait_until_running(servers, "dev", "SELECT SLEEP(9)")
        with b.cursor() as cur:
            cur.execute(f"KILL QUERY {a.thread_id()}")
        result, seconds = running.wait()
        assert seconds < 4, f"SLEEP(9) ran {seconds:.1f}s: {result!r}"
    finally:
        a.close()
        b.close()


def test_kill_connection_ends_the_other_session(proxy):
    """KILL CONNECTION <id> ends alice's other session: its next statement fails, the
    killer's session and new logins work."""
    a = proxy.connect(database="shop@dev")
    b = proxy.connect(database="shop@dev")
    try:
        with b.cursor() as cur:
            cur.execute(f"KILL CONNECTION {a.thread_id()}")
        time.sleep(0.2)
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
            with a.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        with b.cursor() as cur:
            cur.execute("SELECT 2")
            assert cur.fetchall() == ((2,),)
        assert proxy.query("SELECT 3") == [(3,)]
    finally:
        a.close()
        b.close()


def test_pymysql_kill_command_ends_the_other_session(proxy):
    """PyMySQL's conn.kill(id) (the COM_PROCESS_KILL command) ends alice's other
    session like KILL CONNECTION; the killer's session goes on."""
    a = proxy.connect(database="shop@dev")
    b = proxy.connect(database="shop@dev")
    try:
        b.kill(a.thread_id())
        time.sleep(0.2)
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
            with a.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        with b.cursor() as cur:
            cur.execute("SELECT 2")
            assert cur.fetchall() == ((2,),)
    finally:
        a.close()
        b.close()


def test_kill_of_another_accounts_session_gets_1095(proxy):
    """alice may not kill carol's session: KILL and KILL QUERY with carol's thread id
    get ERR 1095 (You are not owner of thread), and carol's session goes on."""
    carol = proxy.connect(user="carol", password="carol-pw", database="shop@dev")
    alice = proxy.connect(database="shop@dev")
    try:
        for sql in (f"KILL QUERY {carol.thread_id()}", f"KILL {carol.thread_id()}"):
            assert error_code(lambda: alice.cursor().execute(sql)) == 1095, sql
        with carol.cursor() as cur:
            cur.execute("SELECT status FROM orders WHERE id = 3")
            assert cur.fetchall() == (("pending",),)
    finally:
        carol.close()
        alice.close()


def test_kill_with_a_backend_thread_id_leaves_other_sessions_alone(make_proxy, servers):
    """KILL takes the proxy's ids only: KILL QUERY with the backend thread id of
    another account's running query does not reach the backend (that query finishes
    normally) and gets an error, unless the number happens to be one of alice's own ids."""
    dave = Account("dave", "dave-pw", "dev", {"dev": "write"})
    p = make_proxy(accounts=ACCOUNTS + [dave])
    d = p.connect(user="dave", password="dave-pw", database="shop@dev")
    a = p.connect(database="shop@dev")
    try:
        running = Running(d, "SELECT SLEEP(2)")
        backend_id = wait_until_running(servers, "dev", "SELECT SLEEP(2)")
        code = error_code(lambda: a.cursor().execute(f"KILL QUERY {backend_id}"))
        result, seconds = running.wait()
        assert result == ((0,),), f"dave's query was interrupted: {result!r}"
        if code == 0:
            assert backend_id == a.thread_id(), "KILL QUERY of a backend id was accepted"
        else:
            assert code in (1094, 1095), code
    finally:
        d.close()
        a.close()


def test_kill_of_an_unknown_thread_id_gets_1094(proxy):
    """KILL QUERY with an id no session has gets ERR 1094 (Unknown thread id)."""
    conn = proxy.connect()
    try:
        assert error_code(lambda: conn.cursor().execute("KILL QUERY 987654321")) == 1094
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
    finally:
        conn.close()
