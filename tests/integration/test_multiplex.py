"""Multiplexing: a session's backend connection goes back to the pool after each statement
unless the session holds state that lives in that connection."""

import threading
import time

import pymysql
import pytest

from harness import StmtDriver


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@pytest.fixture
def small_pool(make_proxy):
    return make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 3,
                                                                     "wait_timeout": "10s"}}}})


@pytest.fixture
def one_worker_pool(make_proxy):
    """One worker thread and a pool of two: a second session takes the connection the first
    one left parked there."""
    return make_proxy(extra_yaml={"threads": 1, "environments": {"dev": {"pool": {"max": 2}}}})


def backend_connections(servers):
    return servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                              "WHERE USER = 'app' AND DB IS NOT NULL")[0][0]


def test_many_sessions_share_a_small_pool(small_pool, servers):
    base = backend_connections(servers)
    conns = [small_pool.connect(autocommit=True) for _ in range(30)]
    for round_ in range(3):
        for i, c in enumerate(conns):
            assert one(c, f"SELECT {i} + {round_}") == ((i + round_,),)
    assert backend_connections(servers) - base <= 3
    errors = []

    def worker(c, i):
        try:
            for _ in range(5):
                assert one(c, f"SELECT {i}, SLEEP(0.01)")[0][0] == i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(c, i)) for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    for c in conns:
        c.close()


def test_user_variables_pin_the_session(small_pool):
    a = small_pool.connect(autocommit=True)
    b = small_pool.connect(autocommit=True)
    one(a, "SET @x = 42")
    for _ in range(5):
        one(b, "SELECT 1")  # other sessions keep using the pool
        assert one(a, "SELECT @x") == ((42,),)
    a.close()
    b.close()


def test_temporary_tables_and_transactions_stay_on_their_connection(small_pool):
    a = small_pool.connect(autocommit=True)
    one(a, "CREATE TEMPORARY TABLE mx_tmp (id INT)")
    one(a, "INSERT INTO mx_tmp VALUES (1), (2)")
    others = [small_pool.connect(autocommit=True) for _ in range(4)]
    for o in others:
        one(o, "SELECT 1")
    assert one(a, "SELECT COUNT(*) FROM mx_tmp") == ((2,),)
    t = small_pool.connect(autocommit=True)
    one(t, "CREATE TABLE IF NOT EXISTS mx_t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
    one(t, "BEGIN")
    one(t, "INSERT INTO mx_t (v) VALUES (7)")
    for o in others:
        one(o, "SELECT 1")
    got = one(t, "SELECT LAST_INSERT_ID(), COUNT(*) FROM mx_t WHERE v = 7")
    assert got[0][0] > 0 and got[0][1] >= 1
    one(t, "ROLLBACK")
    for c in others + [a, t]:
        c.close()


def test_carried_variables_do_not_leak_to_other_sessions(small_pool):
    a = small_pool.connect(autocommit=True)
    one(a, "SET time_zone = '+07:00'")
    others = [small_pool.connect(autocommit=True) for _ in range(5)]
    for o in others:
        assert one(o, "SELECT @@time_zone")[0][0] != "+07:00"
    assert one(a, "SELECT @@time_zone") == (("+07:00",),)
    for c in others + [a]:
        c.close()


def test_database_follows_the_session(small_pool):
    a = small_pool.connect(autocommit=True)
    b = small_pool.connect(autocommit=True)
    one(a, "USE analytics")
    for _ in range(3):
        assert one(b, "SELECT DATABASE()") == (("shop",),)
        assert one(a, "SELECT DATABASE()") == (("analytics",),)
    a.close()
    b.close()


def test_multiplex_can_be_turned_off(make_proxy, servers):
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 2, "multiplex": False,
                                                                  "wait_timeout": "1s"}}}})
    a = p.connect(autocommit=True)
    b = p.connect(autocommit=True)
    one(a, "SELECT 1")
    one(b, "SELECT 1")
    c = p.connect(autocommit=True)
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(c, "SELECT 1")
    assert e.value.args[0] == 1040
    for x in (a, b, c):
        x.close()


@pytest.fixture
def stmt_clients(small_pool):
    made = []

    def make(db="shop"):
        d = StmtDriver(small_pool, db=db)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def prepared_count(servers, env="dev"):
    return int(servers.sql(env, "SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")[0][1])


def test_prepared_statements_do_not_pin(stmt_clients, servers):
    """Ten clients with prepared statements share a pool of 3; each statement runs on
    whichever connection is free, prepared there once for all clients."""
    base_conns = backend_connections(servers)
    base_stmts = prepared_count(servers)
    clients = [stmt_clients() for _ in range(10)]
    for i, d in enumerate(clients):
        assert d.cmd("prepare SELECT ? + 0, CONNECTION_ID() FROM customers WHERE id = 1")[0] \
            == "OK"
    seen = {}
    for round_ in range(6):
        for i, d in enumerate(clients):
            kind, rows = d.cmd(f"exec {i * 100 + round_}")
            assert kind == "ROWS" and rows[0][0] == str(i * 100 + round_), (kind, rows)
            seen.setdefault(i, set()).add(rows[0][1])
    # Ten sessions holding prepared statements ran on at most three connections: had a
    # statement pinned its session, the fourth would have waited and got 1040.
    assert len(set().union(*seen.values())) <= 3, seen
    assert backend_connections(servers) - base_conns <= 3
    # One backend statement per connection for the ten clients' identical text.
    assert prepared_count(servers) - base_stmts <= 3


def test_parameter_types_follow_each_client(make_proxy, servers):
    """Two clients run the same text with different parameter types on one backend
    statement; each execute without types gets its own client's types."""
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1,
                                                                  "wait_timeout": "10s"}}}})
    a = StmtDriver(p, db="shop")
    b = StmtDriver(p, db="shop")
    try:
        assert a.cmd("prepare SELECT ?, CONCAT('<', ?, '>')")[0] == "OK"
        assert b.cmd("prepare SELECT ?, CONCAT('<', ?, '>')")[0] == "OK"
        assert a.cmd("exec 5 6") == ("ROWS", [["5", "<6>"]])
        assert b.cmd("exec s:abc s:de") == ("ROWS", [["abc", "<de>"]])
        for n in range(3):
            assert a.cmd(f"exec {n} {n + 1}") == ("ROWS", [[str(n), f"<{n + 1}>"]])
            assert b.cmd(f"exec s:x{n} s:y") == ("ROWS", [[f"x{n}", "<y>"]])
    finally:
        a.close()
        b.close()


def test_long_data_keeps_the_connection_until_execute(stmt_clients, small_pool):
    a = stmt_clients()
    assert a.cmd("prepare SELECT LENGTH(?), ?")[0] == "OK"
    assert a.cmd("exec s:ab s:cd") == ("ROWS", [["2", "cd"]])
    assert a.cmd("longdata 0 abcdef") == ("OK",)
    # Another session takes the most recently released connection while a executes: were
    # a's connection released after the long data, its EXECUTE would run elsewhere.
    other = small_pool.connect(autocommit=True)
    t = threading.Thread(target=one, args=(other, "SELECT SLEEP(0.5)"))
    t.start()
    time.sleep(0.1)
    assert a.cmd("exec s:x s:y") == ("ROWS", [["6", "y"]])
    t.join(10)
    other.close()


def test_read_only_statement_checked_again_in_a_new_sql_mode(stmt_clients, servers):
    """A read-only statement prepared again under another sql_mode is checked again: text
    that is one string with backslash escapes calls a function without them."""
    d = stmt_clients(db="shop@prod")
    assert d.cmd("prepare SELECT 'a\\', shop_fn() -- '")[0] == "OK"
    assert d.cmd("exec")[0] == "ROWS"
    assert d.cmd("query SET sql_mode = 'NO_BACKSLASH_ESCAPES'") == ("AFFECTED", "0")
    for row in servers.sql("prod", "SELECT ID FROM information_schema.PROCESSLIST "
                                   "WHERE USER = 'app' AND COMMAND = 'Sleep'"):
        servers.sql("prod", f"KILL {row[0]}")
    err = d.cmd("exec")
    assert err[0] == "ERR" and err[1] == "1290" and "SHOP_FN()" in err[2], err


@pytest.fixture
def one_conn_pool(make_proxy):
    return make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1,
                                                                     "wait_timeout": "10s"}}}})


def test_variables_left_by_a_session_are_put_back_for_the_next(one_conn_pool):
    """One backend connection, two sessions: what a has set is back to the server's default
    when b runs, and back to a's values when a runs again."""
    a = one_conn_pool.connect(autocommit=True)
    b = one_conn_pool.connect(autocommit=True)
    defaults = one(b, "SELECT @@time_zone, @@sql_mode, @@group_concat_max_len, "
                      "@@character_set_client, @@character_set_results, "
                      "@@collation_connection")
    one(a, "SET time_zone = '+07:00', sql_mode = 'ANSI_QUOTES', group_concat_max_len = 7")
    one(a, "SET NAMES latin1")
    for _ in range(3):
        assert one(b, "SELECT @@time_zone, @@sql_mode, @@group_concat_max_len, "
                      "@@character_set_client, @@character_set_results, "
                      "@@collation_connection") == defaults
        assert one(a, "SELECT @@time_zone, @@sql_mode, @@group_concat_max_len, "
                      "@@character_set_client, @@character_set_results") == \
            (("+07:00", "ANSI_QUOTES", 7, "latin1", "latin1"),)
    a.close()
    b.close()


def test_sql_mode_put_back_is_the_one_the_policy_reads_with(one_conn_pool):
    """alice sets NO_BACKSLASH_ESCAPES on the only dev connection; carol (read-only in dev)
    then runs text that is one string under the default mode: the proxy reads it so too."""
    a = one_conn_pool.connect(autocommit=True)
    one(a, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
    c = one_conn_pool.connect(user="carol", password="carol-pw", autocommit=True)
    assert one(c, "SELECT 'a\\', shop_fn() -- '") == (("a', shop_fn() -- ",),)
    assert one(a, "SELECT @@sql_mode") == (("NO_BACKSLASH_ESCAPES",),)
    a.close()
    c.close()


def test_sessions_with_the_same_settings_need_no_set_and_keep_statements(one_conn_pool,
                                                                          servers):
    """Sessions that set the same variable (as a driver or an ORM does) share a connection
    without SETs or resets between them: their prepared statements are prepared once."""
    def status(name):
        return int(servers.sql("dev", f"SHOW GLOBAL STATUS LIKE '{name}'")[0][1])

    drivers = [StmtDriver(one_conn_pool, db="shop") for _ in range(3)]
    try:
        for d in drivers:
            assert d.cmd("query SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED") == \
                ("AFFECTED", "0")
            assert d.cmd("prepare SELECT ? + 1, @@tx_isolation")[0] == "OK"
        prepares = status("Com_stmt_prepare")
        sets = status("Com_set_option")
        for round_ in range(5):
            for i, d in enumerate(drivers):
                assert d.cmd(f"exec {i + round_}") == \
                    ("ROWS", [[str(i + round_ + 1), "READ-COMMITTED"]])
        assert status("Com_stmt_prepare") == prepares
        assert status("Com_set_option") == sets
    finally:
        for d in drivers:
            d.close()


def test_a_variable_that_is_not_carried_never_reaches_another_session(one_conn_pool):
    """A SET that is not carried, in a statement with a routing hint (which does not move
    the session): the connection is reset before the next session gets it."""
    a = one_conn_pool.connect(autocommit=True)
    b = one_conn_pool.connect(autocommit=True)
    one(a, "/* env=dev */ SET SESSION foreign_key_checks = 0, SESSION div_precision_increment = 9")
    assert one(b, "SELECT @@foreign_key_checks, @@div_precision_increment") == ((1, 4),)
    a.close()
    b.close()


def test_long_data_of_a_closed_statement_does_not_keep_the_connection(make_proxy):
    """Long data ties the session to its connection until that statement runs, is reset or
    is closed; closing it (or running another statement) lets the connection go."""
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1,
                                                                  "wait_timeout": "1s"}}}})
    a = StmtDriver(p, db="shop")
    other = p.connect(autocommit=True)
    try:
        assert a.cmd("prepare SELECT LENGTH(?)")[0] == "OK"
        assert a.cmd("exec s:ab") == ("ROWS", [["2"]])
        assert a.cmd("longdata 0 abcdef") == ("OK",)
        assert a.cmd("query SELECT 1") == ("ROWS", [["1"]])  # still waiting: kept
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(other, "SELECT 1")
        assert e.value.args[0] == 1040
        assert a.cmd("close") == ("OK",)
        assert a.cmd("query SELECT 2") == ("ROWS", [["2"]])
        assert one(other, "SELECT 3") == ((3,),)
    finally:
        a.close()
        other.close()


@pytest.mark.parametrize("setup, hidden, check", [
    # The session's own sql_mode: the proxy must read in it.
    ("SET sql_mode = 'NO_BACKSLASH_ESCAPES'", "SELECT 'a\\', @x := 5 -- '", "SELECT @x"),
    ("SET sql_mode = 'NO_BACKSLASH_ESCAPES'", "SELECT 'a\\', GET_LOCK('mux', 0) -- '",
     "SELECT RELEASE_LOCK('mux')"),
    ("SET sql_mode = 'ANSI_QUOTES'", "SELECT 1 AS \"a\\\", @x := 5 -- \"", "SELECT @x"),
    # A mode set earlier in the same packet.
    (None, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'a\\', @x := 5 -- '", "SELECT @x"),
    (None, "SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES'); "
           "SELECT 'a\\', 1; CREATE TEMPORARY TABLE tmux (a INT) -- '",
     "SELECT COUNT(*) + 5 FROM tmux"),
])
def test_state_hidden_by_the_sql_mode_still_pins(small_pool, setup, hidden, check):
    """Text that holds session state (a user variable, a user lock, a temporary table) only
    when read in the session's sql_mode, not in the default one: the session keeps its
    connection (its state is not lost), and no other session gets that connection with the
    state on it."""
    from pymysql.constants import CLIENT
    a = small_pool.connect(autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS)
    if setup:
        one(a, setup)
    with a.cursor() as cur:
        cur.execute(hidden)
        while cur.nextset():
            pass
    seen = []
    for _ in range(4):  # one after the other: each takes a connection from the pool
        o = small_pool.connect(autocommit=True)
        # RELEASE_LOCK: 1 only on the connection that holds the lock.
        seen.append(one(o, "SELECT @x, RELEASE_LOCK('mux') = 1"))
        o.close()
    assert all(s in (((None, None),), ((None, 0),)) for s in seen), seen
    assert one(a, check) in (((5,),), ((1,),)), "the session lost its state"
    a.close()


@pytest.mark.parametrize("hidden, check", [
    ("CALL shop.mux_set_var()", "SELECT @mux"),
    ("SELECT mux_fn_var()", "SELECT @mux"),
    ("SELECT `mux_fn_lock`()", "SELECT RELEASE_LOCK('mux')"),
])
def test_state_held_by_stored_routines_pins(servers, make_proxy, hidden, check):
    """A stored procedure or function that sets a user variable or takes a user lock holds
    state the statement's text does not show: CALL and calls of the backend's stored
    functions keep the session on its connection, and no other session gets that state."""
    for sql in ("CREATE OR REPLACE PROCEDURE shop.mux_set_var() SET @mux = 5",
                "CREATE OR REPLACE FUNCTION shop.mux_fn_var() RETURNS INT "
                "BEGIN SET @mux = 5; RETURN 1; END",
                "CREATE OR REPLACE FUNCTION shop.mux_fn_lock() RETURNS INT "
                "RETURN GET_LOCK('mux', 0)"):
        servers.sql("dev", sql)
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 3,
                                                                 "wait_timeout": "10s"}}}})
    a = p.connect(autocommit=True)
    one(a, hidden)
    seen = []
    for _ in range(4):
        o = p.connect(autocommit=True)
        seen.append(one(o, "SELECT @mux, RELEASE_LOCK('mux') = 1"))
        o.close()
    assert all(s in (((None, None),), ((None, 0),)) for s in seen), seen
    assert one(a, check) in (((5,),), ((1,),)), "the session lost its state"
    a.close()


@pytest.mark.parametrize("text, check", [
    ("SELECT @muxp := ?", "SELECT @muxp"),
    ("SET @muxp = ?", "SELECT @muxp"),
    ("SELECT GET_LOCK('mux', ?)", "SELECT RELEASE_LOCK('mux')"),
])
def test_prepared_statements_holding_state_pin(stmt_clients, small_pool, text, check):
    """A prepared statement whose execution leaves a user variable or a user lock on the
    backend session keeps the session on that connection, as the same text does as a query:
    no other session gets that state, and the session does not lose it."""
    d = stmt_clients()
    assert d.cmd(f"prepare {text}")[0] == "OK"
    assert d.cmd("exec 5")[0] in ("ROWS", "OK", "AFFECTED"), text
    seen = []
    for _ in range(4):
        o = small_pool.connect(autocommit=True)
        seen.append(one(o, "SELECT @muxp, RELEASE_LOCK('mux') = 1"))
        o.close()
    assert all(s in (((None, None),), ((None, 0),)) for s in seen), seen
    assert d.cmd(f"query {check}") in (("ROWS", [["5"]]), ("ROWS", [["1"]])), \
        "the session lost its state"


def test_read_only_statement_checked_again_in_a_new_character_set(small_pool, servers):
    """A read-only statement prepared again under another client character set is checked
    again: in latin1 `--` and byte 0xA0 open a comment, in utf8mb4 they do not, and what
    the comment hid is read (and this text refused) before it is prepared there."""
    conn = small_pool.connect(user="bob", password="bob-pw", database="shop@prod",
                              charset="latin1", autocommit=True)
    conn._execute_command(0x16, b"SELECT 1 --\xa0, SLEEP(0)")
    data = conn._read_packet().get_all_data()
    assert data[0] == 0, data
    stmt_id = data[1:5]
    for _ in range(int.from_bytes(data[5:7], "little") + 1):  # column definitions, EOF
        conn._read_packet()
    with conn.cursor() as cur:
        cur.execute("SET NAMES utf8mb4")
    for row in servers.sql("prod", "SELECT ID FROM information_schema.PROCESSLIST "
                                   "WHERE USER = 'app' AND COMMAND = 'Sleep'"):
        servers.sql("prod", f"KILL {row[0]}")
    conn._execute_command(0x17, stmt_id + b"\x00" + (1).to_bytes(4, "little"))
    with pytest.raises(pymysql.err.MySQLError) as e:
        conn._read_packet()
    assert e.value.args[0] == 1290, e.value.args
    conn.close()


def test_one_connection_moves_between_the_workers(one_conn_pool, servers):
    """One backend connection, sessions on both worker threads (accepted connections go to
    the workers in turn): the connection stays registered with the loop of the worker that
    used it last, and a session on the other worker gets it handed over by that worker.
    Taking turns and all at once, every statement runs on that one connection (no second
    one is opened, nobody waits out wait_timeout)."""
    base = backend_connections(servers)
    conns = [one_conn_pool.connect(autocommit=True) for _ in range(4)]
    ids = set()
    started = time.monotonic()
    for _ in range(25):
        for c in conns:
            ids.add(one(c, "SELECT CONNECTION_ID() + 0")[0][0])
    assert len(ids) == 1
    assert time.monotonic() - started < 20  # 100 hand-overs, none waited 10 s
    errors = []

    def hammer(c):
        try:
            for _ in range(40):
                ids.add(one(c, "SELECT CONNECTION_ID() + 0")[0][0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert len(ids) == 1
    assert backend_connections(servers) - base == 1
    for c in conns:
        c.close()


def test_an_idle_connection_parked_on_a_worker_expires(make_proxy, servers):
    """A session that stays connected gives its connection back to the pool after each
    statement, still registered with its worker's loop. When idle_timeout passes, the main
    loop's maintenance has that worker close it (the server sees it go), and the session's
    next statement gets a new one."""
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"idle_timeout": "1s"}}}})
    base = backend_connections(servers)
    conns = [p.connect(autocommit=True) for _ in range(2)]  # one on each worker
    first = {one(c, "SELECT CONNECTION_ID() + 0")[0][0] for c in conns}
    assert backend_connections(servers) > base
    deadline = time.monotonic() + 8
    while backend_connections(servers) > base and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backend_connections(servers) == base
    again = {one(c, "SELECT CONNECTION_ID() + 0")[0][0] for c in conns}
    assert not again & first
    for c in conns:
        c.close()


@pytest.mark.parametrize("take", ["SELECT NEXTVAL(mx_seq)", "SELECT NEXT VALUE FOR mx_seq"])
def test_sequence_values_pin_the_session(one_worker_pool, servers, take):
    """A sequence's last value (LASTVAL, PREVIOUS VALUE FOR) belongs to the backend session
    that took it: the session that took a value keeps its connection, so it reads its own
    value back while another session uses the pool, and the other session, which took
    none, reads NULL rather than the first one's value. One worker thread: the second
    session would take the connection the first one left parked there."""
    servers.sql("dev", "CREATE SEQUENCE IF NOT EXISTS shop.mx_seq")
    p = one_worker_pool
    a = p.connect(database="shop", autocommit=True)
    b = p.connect(database="shop", autocommit=True)
    try:
        taken = one(a, take)[0][0]
        assert one(b, "SELECT LASTVAL(mx_seq), PREVIOUS VALUE FOR mx_seq") == ((None, None),)
        assert one(a, "SELECT LASTVAL(mx_seq), PREVIOUS VALUE FOR mx_seq") == ((taken, taken),)
        assert one(b, "SELECT LASTVAL(mx_seq)") == ((None,),)
    finally:
        a.close()
        b.close()


def test_flush_for_export_keeps_its_locks_on_its_connection(one_worker_pool, servers):
    """FLUSH TABLES t FOR EXPORT holds a read lock until UNLOCK TABLES without the word
    LOCK in its text: the session keeps its connection, so another session is not handed a
    connection under that lock (its INSERT elsewhere failed with 1100, table not locked),
    the lock holds against it until the first session's UNLOCK TABLES, and that UNLOCK runs
    where the lock is."""
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.mx_fx (a INT) ENGINE=InnoDB")
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.mx_other (a INT) ENGINE=InnoDB")
    p = one_worker_pool
    a = p.connect(database="shop", autocommit=True)
    b = p.connect(database="shop", autocommit=True)
    try:
        one(a, "FLUSH TABLES mx_fx FOR EXPORT")
        one(b, "INSERT INTO mx_other VALUES (1)")
        one(b, "SET SESSION lock_wait_timeout = 1")
        with pytest.raises(pymysql.MySQLError) as e:
            one(b, "INSERT INTO mx_fx VALUES (1)")
        assert e.value.args[0] == 1205, e.value.args
        one(a, "UNLOCK TABLES")
        one(b, "INSERT INTO mx_fx VALUES (2)")
    finally:
        a.close()
        b.close()
        servers.sql("dev", "DROP TABLE IF EXISTS shop.mx_fx, shop.mx_other")


def test_warnings_and_errors_stay_with_their_session(one_worker_pool):
    """SHOW WARNINGS reads the backend session's diagnostics area: after a statement with
    warnings or an error, the session keeps its connection until its next statement, so
    that its own SHOW WARNINGS finds them and another session is never handed them (it was:
    the connection went back to the pool, and the next session's SHOW WARNINGS listed the
    first one's messages, with the values they quote). A connection with diagnostics that
    its session no longer reads is reset before another session gets it. One worker thread
    and a pool of two: the other session takes whatever the first one left parked."""
    p = one_worker_pool
    a = p.connect(database="shop", autocommit=True)
    b = p.connect(database="shop", autocommit=True)
    try:
        one(a, "SELECT CAST('secret-of-a' AS INT)")
        assert one(b, "SHOW WARNINGS") == ()
        assert "secret-of-a" in one(a, "SHOW WARNINGS")[0][2]
        assert "secret-of-a" in one(a, "SHOW WARNINGS")[0][2]  # SHOW WARNINGS keeps them
        with pytest.raises(pymysql.MySQLError):
            one(a, "SELECT * FROM no_such_table_of_a")
        assert one(b, "SHOW WARNINGS") == ()
        assert "no_such_table_of_a" in one(a, "SHOW WARNINGS")[0][2]
        # A statement that uses a table clears them, and the connection is free again.
        one(a, "SELECT COUNT(*) FROM customers")
        assert one(a, "SHOW WARNINGS") == ()
        # One that uses none leaves them in the server's session (SELECT 1, DO, SET):
        # the connection is reset before another session gets it.
        for then in ("SELECT 1", "/* env=prod */ SELECT 1"):
            one(a, "SELECT CAST('secret-of-a' AS INT)")
            assert one(a, then) == ((1,),)
            assert one(b, "SHOW WARNINGS") == ()
            assert one(b, "SHOW ERRORS") == ()
        c = p.connect(database="shop", autocommit=True)
        assert one(c, "SHOW WARNINGS") == ()
        c.close()
    finally:
        a.close()
        b.close()


def test_connection_of_a_prepared_xa_transaction_is_not_reused(make_proxy, servers):
    """A client prepares an XA transaction (XA START, INSERT, XA END, XA PREPARE) and
    leaves. The server keeps the prepared transaction for XA COMMIT or XA ROLLBACK from any
    session; but a server session that is reset after XA PREPARE cannot write any more
    (1031), and such a connection went back to the pool: the next session's INSERT failed.
    The connection is closed instead, and the next session writes."""
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.mx_xa (a INT) ENGINE=InnoDB")
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1}}}})
    try:
        a = p.connect(database="shop", autocommit=True)
        for sql in ("XA START 'mx-xa'", "INSERT INTO mx_xa VALUES (1)", "XA END 'mx-xa'",
                    "XA PREPARE 'mx-xa'"):
            one(a, sql)
        a.close()
        b = p.connect(database="shop", autocommit=True)
        deadline = time.monotonic() + 10
        while True:  # the proxy lets go of a's connection once it has seen the client leave
            try:
                one(b, "INSERT INTO mx_xa VALUES (2)")
                break
            except pymysql.err.OperationalError as e:
                assert e.args[0] == 1040 and time.monotonic() < deadline, e.args
        b.close()
        assert [r[3] for r in servers.sql("dev", "XA RECOVER")] == [b"mx-xa"]
    finally:
        try:
            servers.sql("dev", "XA ROLLBACK 'mx-xa'")
        except pymysql.MySQLError:
            pass
        servers.sql("dev", "DROP TABLE IF EXISTS shop.mx_xa")


@pytest.mark.parametrize("sent", ["SET TRANSACTION READ ONLY; SELECT 1",
                                  "/* env=dev */ SET TRANSACTION READ ONLY"])
def test_next_transaction_characteristics_stay_with_their_session(one_worker_pool, servers,
                                                                 sent):
    """SET TRANSACTION without SESSION sets the next transaction's access mode (or isolation
    level) in the backend session; sent to the backend (in a multi-statement packet, or with
    a routing hint), it stayed on a connection that went back to the pool: another session's
    next transaction there was read-only (its INSERT got 1792) and this one's was not. The
    session keeps its connection now. One worker thread and a pool of two: the other session
    takes whatever the first one left parked."""
    from pymysql.constants import CLIENT
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.mx_ro (a INT) ENGINE=InnoDB")
    p = one_worker_pool
    a = p.connect(database="shop", autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS)
    b = p.connect(database="shop", autocommit=True)
    try:
        with a.cursor() as cur:
            cur.execute(sent)
            while cur.nextset():
                pass
        one(b, "BEGIN")
        one(b, "INSERT INTO mx_ro VALUES (1)")
        one(b, "ROLLBACK")
        one(a, "BEGIN")
        with pytest.raises(pymysql.MySQLError) as e:
            one(a, "INSERT INTO mx_ro VALUES (2)")
        assert e.value.args[0] == 1792, e.value.args
        one(a, "ROLLBACK")
    finally:
        a.close()
        b.close()
        servers.sql("dev", "DROP TABLE IF EXISTS shop.mx_ro")


def test_current_role_stays_with_its_session(make_proxy, servers):
    """SET ROLE gives the backend session a role's privileges, which no session tracking
    reports: the connection went back to the pool with it, and another session there ran
    with the role (CURRENT_ROLE() named it). The session keeps its connection now, and the
    role is gone from the connection once the session has left."""
    for host in ("127.0.0.1", "localhost"):
        servers.sql("dev", "CREATE ROLE IF NOT EXISTS mx_role")
        servers.sql("dev", f"GRANT mx_role TO 'app'@'{host}'")
    p = make_proxy(extra_yaml={"threads": 1, "environments": {"dev": {"pool": {"max": 1}}}})
    a = p.connect(database="shop", autocommit=True)
    b = p.connect(database="shop", autocommit=True)
    try:
        one(a, "SELECT 'reader' AS role")  # the word alone is a name: nothing pins
        assert one(b, "SELECT 1") == ((1,),)
        one(a, "SET ROLE mx_role")
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(b, "SELECT CURRENT_ROLE()")  # the only connection is a's
        assert e.value.args[0] == 1040, e.value.args
        assert one(a, "SELECT CURRENT_ROLE()") == (("mx_role",),)
        a.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                assert one(b, "SELECT CURRENT_ROLE()") == ((None,),)
                break
            except pymysql.err.OperationalError as e:
                assert e.args[0] == 1040 and time.monotonic() < deadline, e.args
    finally:
        for conn in (a, b):
            if conn.open:
                conn.close()
        servers.sql("dev", "DROP ROLE IF EXISTS mx_role")


def test_profiles_of_a_session_do_not_reach_the_next(make_proxy):
    """SET profiling = 1: SHOW PROFILES lists the session's statements, text included, and a
    reset of the backend session does not empty that list. The connection went back to the
    pool reset after the client left, and the next session's SHOW PROFILES listed the first
    one's statements; it is closed instead."""
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1}}}})
    a = p.connect(database="shop", autocommit=True)
    one(a, "SET profiling = 1")
    one(a, "SELECT 'text-of-a' FROM customers LIMIT 1")
    assert any("text-of-a" in r[2] for r in one(a, "SHOW PROFILES"))
    a.close()
    b = p.connect(database="shop", autocommit=True)  # waits for a's connection, if kept
    try:
        assert not any("text-of-a" in r[2] for r in one(b, "SHOW PROFILES"))
    finally:
        b.close()
