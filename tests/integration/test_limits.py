"""Row caps and statement timeouts (SPEC section 6)."""

import time

import pymysql
import pymysql.cursors
import pytest
from pymysql.constants import CLIENT

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
