"""Choosing the environment and database: every form of SPEC section 5, and grants on each."""

import MySQLdb
import pymysql
import pytest

from harness import mariadb_cli


def where(conn, sql="SELECT @@port, DATABASE()"):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()[0]


def test_session_starts_in_the_accounts_default_environment(proxy, servers):
    conn = proxy.connect()  # alice: default dev
    assert where(conn) == (servers.dev.port, "shop")
    conn.close()
    conn = proxy.connect(user="bob", password="bob-pw")  # bob: default prod
    assert where(conn) == (servers.prod.port, "shop")
    conn.close()


@pytest.mark.parametrize("target,env,db", [
    ("shop@prod", "prod", "shop"),
    ("@prod", "prod", "shop"),
    ("shop", "dev", "shop"),
    ("analytics", "dev", "analytics"),
    ("billing@prod", "prod", "billing"),
])
def test_handshake_database(proxy, servers, target, env, db):
    conn = proxy.connect(database=target)
    assert where(conn) == (servers[env].port, db)
    conn.close()


def test_handshake_database_with_mysqldb_and_cli(proxy, servers):
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice", passwd="alice-pw",
                           db="shop@prod", connect_timeout=5)
    cur = conn.cursor()
    cur.execute("SELECT @@port, DATABASE()")
    assert cur.fetchall() == ((servers.prod.port, "shop"),)
    conn.close()
    rc, out, err = mariadb_cli(proxy, "alice", "alice-pw", "-N", "-D", "shop@prod",
                               "SELECT @@port, DATABASE()")
    assert rc == 0, err
    assert out.split() == [str(servers.prod.port), "shop"]


def test_handshake_unknown_database_is_refused(proxy):
    with pytest.raises(pymysql.err.OperationalError) as e:
        proxy.connect(database="nosuchdb@prod")
    assert e.value.args[0] == 1049


@pytest.mark.parametrize("stmt,env,db", [
    ("USE shop@prod", "prod", "shop"),
    ("USE `shop@prod`", "prod", "shop"),
    ("use @prod", "prod", "shop"),
    ("USE billing@prod;", "prod", "billing"),
    ("/* note */ USE analytics", "dev", "analytics"),
    ("USE `analytics`", "dev", "analytics"),
])
def test_use_statement(proxy, servers, stmt, env, db):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute(stmt)
    assert where(conn) == (servers[env].port, db)
    conn.close()


def test_com_init_db(proxy, servers):
    conn = proxy.connect()
    conn.select_db("shop@prod")
    assert where(conn) == (servers.prod.port, "shop")
    conn.select_db("@dev")
    assert where(conn) == (servers.dev.port, "shop")
    conn.select_db("analytics")
    assert where(conn) == (servers.dev.port, "analytics")
    with pytest.raises(pymysql.err.OperationalError) as e:
        conn.select_db("nosuchdb")
    assert e.value.args[0] == 1049
    # A failed switch leaves the session where it was.
    assert where(conn) == (servers.dev.port, "analytics")
    conn.close()


def test_use_switches_back_and_forth(proxy, servers):
    conn = proxy.connect()
    with conn.cursor() as cur:
        for _ in range(3):
            cur.execute("USE shop@prod")
            cur.execute("SELECT @@port")
            assert cur.fetchall() == ((servers.prod.port,),)
            cur.execute("USE shop@dev")
            cur.execute("SELECT @@port")
            assert cur.fetchall() == ((servers.dev.port,),)
    conn.close()


def test_hint_routes_one_statement(proxy, servers):
    conn = proxy.connect()
    assert where(conn, "/* env=prod */ SELECT @@port, DATABASE()") == (servers.prod.port, "shop")
    # The session did not move.
    assert where(conn) == (servers.dev.port, "shop")
    assert where(conn, "/* env=prod db=billing */ SELECT @@port, DATABASE()") == (
        servers.prod.port, "billing")
    assert where(conn, "/* env=dev db=analytics */ SELECT @@port, DATABASE()") == (
        servers.dev.port, "analytics")
    assert where(conn) == (servers.dev.port, "shop")
    assert where(conn, "  \n/*env=prod*/SELECT @@port, DATABASE()") == (
        servers.prod.port, "shop")
    # An ordinary comment does not route.
    assert where(conn, "/* just a note */ SELECT @@port, DATABASE()") == (
        servers.dev.port, "shop")
    conn.close()


def test_hint_through_the_cli(proxy, servers):
    rc, out, err = mariadb_cli(proxy, "alice", "alice-pw", "-N",
                               "/* env=prod */ SELECT @@port")
    assert rc == 0, err
    assert out.strip() == str(servers.prod.port)


def test_malformed_hint_is_an_error(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.ProgrammingError) as e:
            cur.execute("/* env=prod bogus=1 */ SELECT 1")
        assert e.value.args[0] == 1064
        assert "routing hint" in e.value.args[1]
        cur.execute("SELECT 1")  # still usable
    conn.close()


# ---- grants: an environment without a grant does not exist for the account --------------

NO_GRANT = "Access denied for user 'bob'"


def test_no_grant_in_handshake(proxy):
    with pytest.raises(pymysql.err.OperationalError) as e:
        proxy.connect(user="bob", password="bob-pw", database="shop@dev")
    assert e.value.args[0] == 1044
    assert NO_GRANT in e.value.args[1] and "'dev'" in e.value.args[1]


@pytest.mark.parametrize("stmt", ["USE shop@dev", "USE `shop@dev`", "USE @dev",
                                  "/* env=dev */ SELECT 1", "/* env=dev db=shop */ SELECT 1",
                                  "/* env=staging */ SELECT 1", "USE shop@staging"])
def test_no_grant_by_statement(proxy, stmt):
    conn = proxy.connect(user="bob", password="bob-pw")
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute(stmt)
        assert e.value.args[0] == 1044
        assert NO_GRANT in e.value.args[1]
        cur.execute("SELECT 1")
    conn.close()


def test_no_grant_by_com_init_db(proxy):
    conn = proxy.connect(user="bob", password="bob-pw")
    with pytest.raises(pymysql.err.OperationalError) as e:
        conn.select_db("shop@dev")
    assert e.value.args[0] == 1044
    conn.close()


def test_unknown_environment_names_it(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("USE shop@nowhere")
        assert "'nowhere'" in e.value.args[1]
    conn.close()


def test_pooled_connection_does_not_keep_another_sessions_database(proxy, servers):
    # A client leaves its backend connection in another database; the next session of the
    # pool must still start in its own.
    for _ in range(3):
        conn = proxy.connect()
        with conn.cursor() as cur:
            cur.execute("USE analytics")
        conn.close()
        conn = proxy.connect()
        assert where(conn) == (servers.dev.port, "shop")
        conn.close()


def test_statement_changing_the_database_moves_the_session(proxy, servers):
    from pymysql.constants import CLIENT
    conn = proxy.connect(client_flag=CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute("SELECT 1; USE analytics")
        while cur.nextset():
            pass
        cur.execute("SELECT DATABASE()")
        assert cur.fetchall() == (("analytics",),)
    conn.close()
