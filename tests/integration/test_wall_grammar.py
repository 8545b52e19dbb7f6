"""The read-only wall against texts whose meaning depends on more than the lexer sees.

The backend account `app` has ALL PRIVILEGES, and each test compares both servers' whole
state (harness.server_state(): data, schema, sequences, routines, users and grants, global
variables, locks, files) before and after. Every attack must be refused by envproxy itself
(ERR 1290), not merely fail on the server: the server's read-only transaction, the second
wall, stops some of them, but a SELECT-only backend account is not always there.

- After a SET sql_mode whose value the proxy cannot work out (a user variable, CONCAT of
  literals, a hex string, DEFAULT, a version-dependent comment), the mode may be ORACLE.
  Its grammar reads `seq`.`nextval` and "seq"."nextval" as taking a sequence value (a
  write) and BEGIN as the start of a block: no reading of quotes covers that, so the rest
  of the packet is refused. The next packet is read in the mode the server reports.
"""

import pymysql
import pytest
from pymysql.constants import CLIENT

from harness import server_state, state_diff

MULTI = CLIENT.MULTI_STATEMENTS

SETUP = [
    "CREATE DATABASE IF NOT EXISTS wallg",
    "CREATE OR REPLACE SEQUENCE wallg.s NOCACHE",
    "CREATE TABLE IF NOT EXISTS wallg.t (a INT PRIMARY KEY) ENGINE=InnoDB",
]


@pytest.fixture
def prod_state(servers):
    """Creates the objects the attacks aim at, then yields a function that asserts both
    servers are as they were."""
    for env in ("dev", "prod"):
        for stmt in SETUP:
            servers.sql(env, stmt)
    before = {env: server_state(servers[env]) for env in ("dev", "prod")}

    def unchanged(what):
        for env in ("dev", "prod"):
            diff = state_diff(before[env], server_state(servers[env]))
            assert not diff, f"{what}: {env} changed: {diff}"

    return unchanged


def connect(proxy):
    return pymysql.connect(host="127.0.0.1", port=proxy.port, user="bob", password="bob-pw",
                           database="wallg@prod", autocommit=True, client_flag=MULTI,
                           connect_timeout=10, read_timeout=30)


def code_of(conn, sql):
    """The error code of sql (all its results read), or None when it ran."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
            while cur.nextset():
                cur.fetchall()
        return None
    except pymysql.err.MySQLError as e:
        return e.args[0]


ORACLE_SETTERS = [
    "SET sql_mode = @m",
    "SET @@session.sql_mode := @m",
    "SET sql_mode = CONCAT('ORA', 'CLE')",
    "SET sql_mode = X'4F5241434C45'",
    "SET sql_mode = 0x4F5241434C45",
    "SET sql_mode = (SELECT @m)",
    "SET sql_mode = UPPER('oracle')",
]
ORACLE_WRITES = [
    "SELECT `s`.`nextval`",
    "SELECT \"s\".\"nextval\"",
    "SELECT `wallg`.`s`.`nextval`",
    "SELECT 1 FROM DUAL WHERE `s`.`nextval` > 0",
]


@pytest.mark.parametrize("setter", ORACLE_SETTERS)
def test_unknown_sql_mode_then_oracle_grammar(proxy, servers, prod_state, setter):
    """A SET sql_mode to ORACLE that the proxy cannot read, followed in the same packet by
    a sequence increment in ORACLE syntax: refused by envproxy, the sequence untouched.
    Alone, the SET is allowed, and the next packet is refused as ORACLE mode."""
    conn = connect(proxy)
    assert code_of(conn, "SET @m = 'ORACLE'") is None
    passed = [(w, code) for w in ORACLE_WRITES
              if (code := code_of(conn, f"{setter}; {w}")) != 1290]
    with conn.cursor() as cur:
        cur.execute("SELECT @@sql_mode LIKE '%ORACLE%'")
        assert cur.fetchall() == ((0,),)  # nothing of the refused packets ran
    assert code_of(conn, setter) is None
    assert code_of(conn, ORACLE_WRITES[0]) == 1290
    conn.close()
    prod_state(setter)
    assert not passed, f"not refused by envproxy: {passed}"
