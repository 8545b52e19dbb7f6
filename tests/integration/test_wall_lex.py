"""The read-only wall: built-in functions per flavor, the backend's stored functions,
credential stores, SERIALIZABLE, and reads that must stay allowed (issue 12).

The backend account has ALL PRIVILEGES. Each attack is sent on the paths a client has (plain,
multi-statement, prepared, fan-out, compare, MCP) and the server's state is compared before
and after: global variables, users and their grants, routines.
"""

import time

import pymysql
import pytest
from pymysql.constants import CLIENT

from harness import StmtDriver
from test_mcp import McpProcess

HASH_MARK = "*"  # mysql_native_password hashes start with '*'


def state(servers):
    """What a smuggled write would change: globals, accounts, routines."""
    return {
        "globals": servers.sql("prod", "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM "
                                       "information_schema.GLOBAL_VARIABLES ORDER BY 1"),
        "users": servers.sql("prod", "SELECT User, Host, Priv FROM mysql.global_priv ORDER BY 1, 2"),
        "routines": servers.sql("prod", "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM "
                                        "information_schema.ROUTINES ORDER BY 1, 2"),
    }


def connect_prod(proxy, **kw):
    return proxy.connect(database="shop@prod", client_flag=CLIENT.MULTI_STATEMENTS, **kw)


def refused(conn, sql):
    """Runs sql (str or bytes); returns the ERR 1290 message, failing if it ran."""
    data = sql.encode() if isinstance(sql, str) else sql
    with pytest.raises(pymysql.err.MySQLError) as e:
        conn._execute_command(3, data)
        conn._read_query_result()
        while conn._result is not None and conn._result.has_next:
            conn.next_result()
    assert e.value.args[0] == 1290 and "envproxy" in e.value.args[1], (sql, e.value.args)
    return e.value.args[1]


def app_hash(servers):
    rows = servers.sql("prod", "SELECT authentication_string FROM mysql.user WHERE User = 'app'")
    return rows[0][0]


@pytest.fixture
def evil_functions(servers):
    """Stored functions in prod's shop named like MySQL-only built-ins and like a MariaDB
    built-in, each doing SET GLOBAL."""
    made = ["regexp_like", "any_value", "sql_no_cache", "against"]
    for name in made:
        servers.sql("prod", f"CREATE OR REPLACE FUNCTION shop.`{name}`(a TEXT, b TEXT) "
                            "RETURNS INT MODIFIES SQL DATA BEGIN "
                            "SET GLOBAL net_read_timeout = 41; RETURN 1; END")
    yield made
    for name in made:
        servers.sql("prod", f"DROP FUNCTION IF EXISTS shop.`{name}`")
    servers.sql("prod", "SET GLOBAL net_read_timeout = DEFAULT")


def test_functions_that_are_not_mariadb_builtins_are_refused(proxy, servers, evil_functions):
    """Proves that names the old allowlist took for built-ins (MySQL-only functions, AGAINST,
    SQL_NO_CACHE) no longer reach a stored function of that name on MariaDB; the server's
    global variables stay as they were."""
    # The stored functions really run when called directly.
    root = servers.prod.connect(database="shop")
    with root.cursor() as cur:
        cur.execute("SELECT regexp_like('a', 'a')")
        assert cur.fetchall() == ((1,),)
        cur.execute("SET GLOBAL net_read_timeout = DEFAULT")
    root.close()
    before = state(servers)
    conn = connect_prod(proxy)
    for sql in ("SELECT regexp_like('a', 'a')", "SELECT any_value('a', 'b')",
                "SELECT * FROM orders WHERE sql_no_cache('a', 'b')",
                "SELECT * FROM orders WHERE against('a', 'b')",
                "SELECT 1; SELECT regexp_like('a', 'b')"):
        refused(conn, sql)
    with conn.cursor() as cur:  # legitimate uses still run
        cur.execute("SELECT COUNT(*) FROM orders WHERE REGEXP_REPLACE(status, 'x', 'y') <> ''")
        cur.execute("SELECT ST_X(POINT(1, 2))")
        assert cur.fetchall() == ((1.0,),)
    conn.close()
    d = StmtDriver(proxy, db="shop@prod")
    try:
        assert d.cmd("prepare SELECT regexp_like('a', ?)")[0] == "ERR"
    finally:
        d.close()
    assert state(servers) == before


def test_a_stored_function_named_like_a_builtin_is_refused(make_proxy, servers):
    """Proves that the health checker's list of the backend's stored functions and UDFs
    makes the policy refuse a call of such a name, even one the built-in table knows."""
    servers.sql("prod", "CREATE OR REPLACE FUNCTION shop.`soundex`(a TEXT) RETURNS TEXT "
                        "DETERMINISTIC RETURN 'stored'")
    servers.sql("prod", "INSERT INTO mysql.func VALUES ('crc32', 0, 'no_such_udf.so', 'function')")
    try:
        p = make_proxy(extra_yaml={"health_interval": "1s"})
        conn = connect_prod(p)
        deadline = time.monotonic() + 10
        msg = None
        while time.monotonic() < deadline:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT SOUNDEX('a')")
                time.sleep(0.3)
            except pymysql.err.MySQLError as e:
                msg = e.args[1]
                break
        assert msg and "SOUNDEX() (a stored function of that name exists)" in msg, msg
        assert "CRC32()" in refused(conn, "SELECT CRC32('a')")
        with conn.cursor() as cur:
            cur.execute("SELECT LOWER('A')")
            assert cur.fetchall() == (("a",),)
        conn.close()
    finally:
        servers.sql("prod", "DROP FUNCTION IF EXISTS shop.`soundex`")
        servers.sql("prod", "DELETE FROM mysql.func WHERE name = 'crc32'")


CREDENTIAL_READS = [
    "SELECT * FROM mysql.user",
    "SELECT authentication_string FROM mysql.user WHERE User = 'app'",
    "SELECT * FROM `mysql`.`global_priv`",
    "SELECT Priv FROM mysql . global_priv",
    "SELECT * FROM /*!50000 mysql.user */",
    "SELECT 1; SELECT Password FROM mysql.user",
    "SELECT (SELECT MAX(Priv) FROM mysql.global_priv)",
    "SHOW GRANTS",
    "SHOW GRANTS FOR CURRENT_USER",
    "SHOW GRANTS FOR 'app'@'127.0.0.1'",
    "SHOW CREATE USER 'app'@'127.0.0.1'",
    "SHOW CREATE USER CURRENT_USER",
    "SELECT 1; USE mysql",
]


def test_credential_stores_are_refused_for_every_account(proxy, servers):
    """Proves that reads of the password hashes (mysql.user, mysql.global_priv, SHOW GRANTS,
    SHOW CREATE USER) are refused in read-only prod and in writable dev alike, and that no
    answer carries the backend account's hash."""
    secret = app_hash(servers)
    assert secret.startswith(HASH_MARK)
    for conn in (connect_prod(proxy),
                 proxy.connect(client_flag=CLIENT.MULTI_STATEMENTS)):  # alice, dev: writable
        for sql in CREDENTIAL_READS:
            assert secret not in refused(conn, sql)
        conn.close()
    conn = connect_prod(proxy)
    conn.query("SET SESSION sql_mode = 'ANSI_QUOTES'")
    refused(conn, 'SELECT * FROM "mysql"."user"')
    conn.close()
    # USE mysql through the proxy: the unqualified names are credential stores then.
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("USE mysql")
        cur.execute("SELECT COUNT(*) FROM db")
    for sql in ("SELECT * FROM user", "SELECT * FROM global_priv"):
        refused(conn, sql)
    conn.close()


def test_credential_stores_on_other_paths(proxy, servers, tmp_path):
    """Proves the same refusal on prepared statements, fan-out, compare and MCP."""
    secret = app_hash(servers)
    for user, pw, db in (("alice", "alice-pw", "shop@prod"), ("alice", "alice-pw", "shop")):
        d = StmtDriver(proxy, user=user, password=pw, db=db)
        try:
            for sql in ("SELECT * FROM mysql.user", "SHOW GRANTS"):
                answer = d.cmd("prepare " + sql)
                assert answer[0] == "ERR" and "1290" in answer[1], (db, sql, answer)
        finally:
            d.close()
    conn = proxy.connect(client_flag=CLIENT.MULTI_STATEMENTS)
    for sql in ("/* env=* */ SELECT authentication_string FROM mysql.user",
                "/* env=dev,prod */ SHOW GRANTS",
                "/* compare=dev,prod */ SELECT Priv FROM mysql.global_priv",
                "SELECT * FROM __compare.query WHERE envs='dev,prod' AND "
                "sql='SELECT * FROM mysql.user'"):
        with pytest.raises(pymysql.err.MySQLError) as e:
            with conn.cursor() as cur:
                cur.execute(sql)
                assert secret not in repr(cur.fetchall())
        assert e.value.args[0] == 1290 and secret not in e.value.args[1], (sql, e.value.args)
    conn.close()
    m = McpProcess(proxy.port, tmp_path / "mcp.stderr")
    try:
        m.initialize()
        for env in ("prod", "dev"):
            for sql in ("SELECT * FROM mysql.user", "SHOW GRANTS"):
                err = m.error("execute_query", {"sql": sql, "environment": env})
                assert secret not in repr(err) and \
                    ("1290" in repr(err) or "not allowed" in repr(err)), err
    finally:
        m.close()


def test_serializable_is_refused_in_read_only_sessions(proxy, servers):
    """Proves that a read-only session cannot switch to SERIALIZABLE (every read would take
    shared locks a writer waits for), by any syntax or carried from a writable
    environment, and that a writer is not blocked by its reads."""
    conn = connect_prod(proxy)
    for sql in ("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                "SET transaction_isolation = 'SERIALIZABLE'",
                "SET @@session.tx_isolation = 'serializable'",
                "SET STATEMENT tx_isolation = 'SERIALIZABLE' FOR SELECT * FROM orders",
                "/*!40101 SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE */",
                "SELECT * FROM orders FOR UPDATE",
                "SELECT * FROM orders LOCK IN SHARE MODE"):
        refused(conn, sql)
    with conn.cursor() as cur:
        cur.execute("SELECT @@tx_isolation")
        assert cur.fetchall()[0][0] != "SERIALIZABLE"
        cur.execute("SET autocommit = 0")
        cur.execute("SELECT * FROM orders")
        cur.fetchall()
        # A writer on prod is not blocked by that read.
        root = servers.prod.connect(database="shop")
        with root.cursor() as rc:
            rc.execute("SET SESSION innodb_lock_wait_timeout = 2")
            rc.execute("UPDATE orders SET status = status WHERE id = 1")
        root.close()
        cur.execute("ROLLBACK")
    conn.close()
    conn = proxy.connect()  # alice in dev, writable: SERIALIZABLE is fine there
    with conn.cursor() as cur:
        cur.execute("SET SESSION tx_isolation = 'SERIALIZABLE'")
        cur.execute("USE shop@prod")
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT 1")
        assert e.value.args[0] == 1290 and "SERIALIZABLE" in e.value.args[1]
    conn.close()


def test_legitimate_reads_are_allowed(proxy):
    """Proves that CHECKSUM TABLE, XA RECOVER and MySQL 8's versioned SET of
    information_schema_stats_expiry reach the server from a read-only session."""
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        cur.execute("CHECKSUM TABLE orders, customers EXTENDED")
        assert len(cur.fetchall()) == 2
        cur.execute("XA RECOVER")
        cur.fetchall()
        cur.execute("XA RECOVER FORMAT='SQL'")
        cur.execute("/*!80000 SET SESSION information_schema_stats_expiry=0 */")
        cur.execute("SELECT 1")
        assert cur.fetchall() == ((1,),)
    conn.close()


def builtin_names():
    """The names of the policy's function table (src/sqlpolicy.c, pol_funcs)."""
    import re
    from pathlib import Path
    src = (Path(__file__).resolve().parents[2] / "src" / "sqlpolicy.c").read_text()
    table = src[src.index("static const pol_func pol_funcs[] = {"):]
    table = table[:table.index("};")]
    return re.findall(r'\{"([A-Z0-9_]+)",', table)


@pytest.mark.parametrize("gap", ["", " ", "/**/", "\n"])
def test_every_allowed_function_call_is_a_builtin_on_mariadb(servers, gap):
    """Proves, for every name of the function table and 0 to 3 arguments, that a call the
    check allows for a MariaDB backend never reaches a stored function of that name in the
    current database (the server is asked, with such a function created for each name), also
    with a space, comment or newline before '(': without IGNORE_SPACE the server reads some
    names followed by a gap as a plain identifier, and an identifier before '(' is a call of a
    stored function in the current database."""
    from test_lexer_server import LexDriver
    names = builtin_names()
    assert len(names) > 350
    lexer = LexDriver()
    root = servers.dev.connect()
    reached = []
    try:
        with root.cursor() as cur:
            for k in range(4):
                cur.execute(f"DROP DATABASE IF EXISTS fngap{k}")
                cur.execute(f"CREATE DATABASE fngap{k}")
            for k in range(4):
                cur.execute(f"USE fngap{k}")
                params = ", ".join(f"p{j} INT" for j in range(k))
                args = ", ".join(str(j + 1) for j in range(k))
                for name in names:
                    sql = f"SELECT {name}{gap}({args})"
                    if not lexer.ask("check", "utf8mb4", sql.encode()).startswith("ALLOW"):
                        continue
                    try:
                        cur.execute(f"CREATE FUNCTION `{name.lower()}`({params}) RETURNS "
                                    "VARCHAR(10) DETERMINISTIC RETURN 'stored'")
                    except pymysql.err.MySQLError:
                        pass  # a name the server does not take for a function
                    try:
                        cur.execute(sql)
                        if cur.fetchall() == (("stored",),):
                            reached.append(f"{name} with {k} arguments")
                    except pymysql.err.MySQLError:
                        pass  # the built-in's own error: it did not reach the function
    finally:
        with root.cursor() as cur:
            for k in range(4):
                cur.execute(f"DROP DATABASE IF EXISTS fngap{k}")
        root.close()
        lexer.close()
    assert not reached, reached


@pytest.fixture
def general_log_with_password(servers):
    """prod logs statements to mysql.general_log (log_output=TABLE), and an operator then
    changed an account's password there: the log holds it in clear."""
    old = servers.sql("prod", "SELECT @@global.log_output, @@global.general_log")[0]
    servers.sql("prod", "SET GLOBAL log_output = 'TABLE'")
    servers.sql("prod", "SET GLOBAL general_log = ON")
    servers.sql("prod", "CREATE OR REPLACE USER logprobe@'127.0.0.1' IDENTIFIED BY 'pw-in-clear-9'")
    yield "pw-in-clear-9"
    servers.sql("prod", "SET GLOBAL general_log = OFF")
    servers.sql("prod", "DROP USER IF EXISTS logprobe@'127.0.0.1'")
    servers.sql("prod", "TRUNCATE TABLE mysql.general_log")
    servers.sql("prod", f"SET GLOBAL log_output = '{old[0]}'")
    servers.sql("prod", f"SET GLOBAL general_log = {int(old[1])}")


def test_statement_logs_are_credential_stores(proxy, servers, general_log_with_password):
    """Proves that the server's statement logs, where a password set by CREATE/ALTER USER
    stands in clear (mysql.general_log, mysql.slow_log) or as run (SHOW BINLOG EVENTS, SHOW
    RELAYLOG EVENTS), are refused in read-only prod and writable dev alike, and that no
    answer carries the password; the log really holds it (read directly)."""
    secret = general_log_with_password
    rows = servers.sql("prod", "SELECT argument FROM mysql.general_log")
    assert any(secret in str(r[0]) for r in rows)
    for conn in (connect_prod(proxy), proxy.connect(client_flag=CLIENT.MULTI_STATEMENTS)):
        for sql in ("SELECT argument FROM mysql.general_log",
                    "SELECT * FROM `mysql`.`general_log` WHERE argument LIKE '%IDENTIFIED%'",
                    "SELECT sql_text FROM mysql . slow_log",
                    "SELECT 1; SELECT * FROM /*!50000 mysql.general_log */",
                    "SHOW BINLOG EVENTS", "SHOW RELAYLOG EVENTS"):
            assert secret not in refused(conn, sql)
        conn.close()
    d = StmtDriver(proxy, db="shop@prod")
    try:
        answer = d.cmd("prepare SELECT argument FROM mysql.general_log")
        assert answer[0] == "ERR" and "1290" in answer[1], answer
    finally:
        d.close()
