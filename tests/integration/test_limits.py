"""Row caps and statement timeouts (SPEC section 6)."""

import time

import pymysql
import pymysql.cursors
import pytest
from pymysql.constants import CLIENT

from harness import Account

LIMITS = {"limits": {"max_rows": 10, "statement_timeout": "1s"},
          "environments": {"prod": {"limits": {"max_rows": 3}}}}


@pytest.fixture(scope="module")
def limited(make_module_proxy):
    return make_module_proxy(LIMITS)


def test_result_is_capped_with_a_warning(limited):
    conn = limited.connect()
    with conn.cursor() as cur:
        n = cur.execute("SELECT seq FROM seq_1_to_1000")
        assert n == 10
        assert cur.fetchall() == tuple((i,) for i in range(1, 11))
        assert conn.warning_count >= 1 if hasattr(conn, "warning_count") else True
        cur.execute("SHOW WARNINGS")
        warnings = cur.fetchall()
        assert len(warnings) == 1
        level, code, message = warnings[0]
        assert level == "Note" and "truncated to 10 rows" in message
        # A LIMIT in the statement does not lift the cap.
        assert cur.execute("SELECT seq FROM seq_1_to_1000 LIMIT 500") == 10
        # Under the cap: no warning, and SHOW WARNINGS goes to the server.
        assert cur.execute("SELECT seq FROM seq_1_to_10") == 10
        cur.execute("SHOW WARNINGS")
        assert cur.fetchall() == ()
    conn.close()


def test_a_list_of_the_schema_past_the_cap_fails_instead_of_looking_whole(limited, servers):
    """A list of tables or columns cut at max_rows reads as the whole schema to whatever
    reads it: a dump program that then leaves tables out (mydumper sends no program name, so
    only what it asks tells), a GUI's navigator, an ORM's reflection. Such a result (a
    statement beginning with SHOW, DESCRIBE, DESC or EXPLAIN, or one reading INFORMATION_SCHEMA) gets
    ERR 1104 past the cap instead; data queries are still cut with a warning, and a list
    under the cap is answered whole."""
    cols = ", ".join(f"c{i} INT" for i in range(12))
    servers.sql("dev", "CREATE DATABASE IF NOT EXISTS wide")
    servers.sql("dev", f"CREATE OR REPLACE TABLE wide.t ({cols})")
    for i in range(12):
        servers.sql("dev", f"CREATE OR REPLACE TABLE wide.t{i} (id INT)")
    conn = limited.connect(database="wide")
    try:
        with conn.cursor() as cur:
            for sql in ("SHOW TABLES", "show full tables", "  /* listing */ SHOW TABLE STATUS",
                        "-- x\nSHOW COLUMNS FROM t", "DESCRIBE t", "desc t", "EXPLAIN t",
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'wide'",
                        "SELECT column_name FROM `INFORMATION_SCHEMA`.`COLUMNS` "
                        "WHERE table_schema = 'wide' AND table_name = 't'"):
                with pytest.raises(pymysql.err.MySQLError) as e:
                    cur.execute(sql)
                    cur.fetchall()
                assert e.value.args[0] == 1104, (sql, e.value.args)
                assert "limits.max_rows" in e.value.args[1], e.value.args
            # The same kind of list under the cap is whole; a data query is still cut.
            assert cur.execute("SHOW COLUMNS FROM t0") == 1
            assert cur.execute("SELECT seq FROM seq_1_to_100") == 10
        # Prepared (the binary protocol) the same.
        from harness import StmtDriver
        d = StmtDriver(limited, db="wide")
        try:
            assert d.cmd("prepare SELECT table_name FROM information_schema.tables "
                         "WHERE table_schema = ?")[0] == "OK"
            answer = d.cmd("exec s:wide")
            assert answer[0] == "ERR" and answer[1] == "1104", answer
        finally:
            d.close()
    finally:
        conn.close()
        servers.sql("dev", "DROP DATABASE wide")


def test_environment_cap_overrides_the_default(limited):
    conn = limited.connect(database="shop@prod")
    with conn.cursor() as cur:
        assert cur.execute("SELECT seq FROM seq_1_to_100") == 3
        # /* env=dev */ uses dev's cap.
        assert cur.execute("/* env=dev */ SELECT seq FROM seq_1_to_100") == 10
    conn.close()


def test_cap_applies_to_each_result_set(limited):
    conn = limited.connect(client_flag=CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute("SELECT seq FROM seq_1_to_50; SELECT seq FROM seq_1_to_20; SELECT 'x'")
        assert len(cur.fetchall()) == 10
        assert cur.nextset()
        assert len(cur.fetchall()) == 10
        assert cur.nextset()
        assert cur.fetchall() == (("x",),)
    conn.close()


def test_cap_discards_a_large_remainder_quickly(limited):
    conn = limited.connect(cursorclass=pymysql.cursors.SSCursor, read_timeout=60)
    with conn.cursor() as cur:
        cur.execute("SELECT seq FROM seq_1_to_300000")
        assert len(list(cur.fetchall_unbuffered())) == 10
        cur.execute("SELECT 'next'")
        assert list(cur.fetchall_unbuffered()) == [("next",)]
    conn.close()


def test_statement_timeout_kills_the_query(limited, servers):
    conn = limited.connect()
    start = time.monotonic()
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT SLEEP(20)")
        took = time.monotonic() - start
        assert e.value.args == (3024, "Query execution was interrupted, maximum statement "
                                      "execution time exceeded")
        assert took < 5
        # The connection stays usable.
        cur.execute("SELECT 'still usable'")
        assert cur.fetchall() == (("still usable",),)
    conn.close()
    # Nothing is left running on the server.
    left = servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                              "WHERE INFO LIKE 'SELECT SLEEP(20)%'")[0][0]
    assert left == 0


def test_client_leaving_mid_statement_kills_it(limited, servers):
    conn = limited.connect()
    conn._sock.settimeout(5)
    conn._execute_command(3, b"SELECT SLEEP(30) /* leaving */")
    time.sleep(0.3)
    conn._sock.close()
    deadline = time.monotonic() + 3
    running = None
    while time.monotonic() < deadline:
        running = servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                     "WHERE INFO LIKE 'SELECT SLEEP(30) /* leaving */%'")[0][0]
        if running == 0:
            break
        time.sleep(0.1)
    assert running == 0


def _rows_in_prod(proxy, user, password):
    conn = proxy.connect(user=user, password=password, database="shop@prod")
    try:
        with conn.cursor() as cur:
            n = cur.execute("SELECT seq FROM seq_1_to_100")
            cur.execute("SELECT max_rows FROM __envs.session")
            shown = cur.fetchone()[0]
        return n, shown
    finally:
        conn.close()


def _until_rows(proxy, user, password, want, timeout=10.0):
    """The row count of a fresh session, once the proxy has reloaded the account store."""
    deadline = time.monotonic() + timeout
    while True:
        got = _rows_in_prod(proxy, user, password)
        if got[0] == want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_account_max_rows_override_replaces_the_environment_cap(make_proxy):
    """`user limits NAME --max-rows N` replaces every environment's max_rows for that account
    only, in sessions opened after the change (larger or smaller than the environment's, 0 =
    no cap); `--max-rows default` gives the environment's cap back; `user list` shows it; bad
    values and unknown users are refused and change nothing."""
    p = make_proxy(extra_yaml=LIMITS)
    assert _rows_in_prod(p, "bob", "bob-pw") == (3, 3)
    p._cli_ok("user", "limits", "bob", "--max-rows", "5")
    assert _until_rows(p, "bob", "bob-pw", 5) == (5, 5)
    assert _rows_in_prod(p, "alice", "alice-pw") == (3, 3)  # other accounts keep the cap
    listing = p._cli_ok("user", "list").stdout.splitlines()
    assert listing[0].split() == ["USER", "DEFAULT_ENV", "GRANTS", "LIMITS"]
    assert [l.split()[-1] for l in listing if l.startswith("bob ")] == ["max_rows=5"]
    assert [l.split()[-1] for l in listing if l.startswith("alice ")] == ["-"]
    p._cli_ok("user", "limits", "bob", "--max-rows=0")
    assert _until_rows(p, "bob", "bob-pw", 100) == (100, 0)
    for bad in (["--max-rows", "-1"], ["--max-rows", "x"], ["--max-rows", "1e3"],
                ["--max-rows", ""], ["--max-rows", "99999999999999999999"], []):
        r = p.cli("user", "limits", "bob", *bad)
        assert r.returncode != 0 and "max-rows" in r.stderr, (bad, r.stderr)
    r = p.cli("user", "limits", "nobody", "--max-rows", "0")
    assert r.returncode != 0 and "does not exist" in r.stderr
    r = p.cli("user", "grant", "bob", "dev", "read", "--max-rows", "0")
    assert r.returncode != 0 and "takes no --max-rows" in r.stderr
    assert _rows_in_prod(p, "bob", "bob-pw") == (100, 0)
    p._cli_ok("user", "limits", "bob", "--max-rows", "default")
    assert _until_rows(p, "bob", "bob-pw", 3) == (3, 3)
    assert [l.split()[-1] for l in p._cli_ok("user", "list").stdout.splitlines()
            if l.startswith("bob ")] == ["-"]


def test_account_statement_timeout_override(make_proxy):
    """`user limits NAME --statement-timeout DURATION` replaces every environment's
    statement_timeout for that account (0 = none: the account that takes backups, whose
    SELECT of a large table streams for longer than the environments allow), in sessions
    opened after the change; other accounts keep the environment's; `default` removes it;
    `user list` shows it; bad durations are refused."""
    # statement_timeout 1s; SLEEP() needs a session that may write
    p = make_proxy(extra_yaml=LIMITS,
                   accounts=[Account("bob", "bob-pw", "dev", {"dev": "write"}),
                             Account("alice", "alice-pw", "dev", {"dev": "write"})])

    def sleep_in_dev(user, pw, seconds=2):
        conn = p.connect(user=user, password=pw)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT SLEEP({seconds})")
                return cur.fetchall()[0][0]
        except pymysql.err.MySQLError as e:
            return e.args[0]
        finally:
            conn.close()

    assert sleep_in_dev("bob", "bob-pw") == 3024
    p._cli_ok("user", "limits", "bob", "--statement-timeout", "0")
    deadline = time.monotonic() + 5
    while sleep_in_dev("bob", "bob-pw") != 0:  # the store is watched once a second
        assert time.monotonic() < deadline, "the override did not take effect"
    assert sleep_in_dev("alice", "alice-pw") == 3024  # other accounts keep the timeout
    listing = p._cli_ok("user", "list").stdout
    assert "statement_timeout=0ms" in listing
    p._cli_ok("user", "limits", "bob", "--max-rows", "5", "--statement-timeout=3s")
    assert [l.split()[-1] for l in p._cli_ok("user", "list").stdout.splitlines()
            if l.startswith("bob ")] == ["max_rows=5,statement_timeout=3000ms"]
    for bad in (["--statement-timeout", "soon"], ["--statement-timeout", "-1s"],
                ["--statement-timeout"]):
        r = p.cli("user", "limits", "bob", *bad)
        assert r.returncode != 0 and "statement-timeout" in r.stderr, (bad, r.stderr)
    p._cli_ok("user", "limits", "bob", "--statement-timeout", "default")
    deadline = time.monotonic() + 5
    while sleep_in_dev("bob", "bob-pw") != 3024:
        assert time.monotonic() < deadline, "the environment's timeout did not come back"
