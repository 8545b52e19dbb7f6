"""The read-only wall on every path a client has, judged by the server's whole state.

The backend account has ALL PRIVILEGES WITH GRANT OPTION, so nothing but envproxy stands
between a read-only account and the server. Every statement that must be refused (the
shared corpus ../shared/corpus/readonly.tsv when it is there, and the list below) is sent
through each path: a plain query, a multi-statement packet behind a harmless SELECT, a raw
COM_STMT_PREPARE, a fan-out hint, a compare hint, __compare.query and the MCP tools. Each
must fail, and afterwards `server_state()` of prod and dev (data, schema, routines, users
and grants, global variables, locks held, files, a root session that must stay alive) must
equal what it was before. The allowed rows of the corpus must not be refused."""

import os
from pathlib import Path

import pymysql
import pytest
from pymysql.constants import CLIENT, COMMAND

from harness import Account, REPO, server_state, state_diff

CORPUS = REPO.parent / "shared" / "corpus" / "readonly.tsv"
WALLY = Account("wally", "wally-pw", "prod", {"dev": "read", "prod": "read"})
OUTFILE = "/tmp/envproxy-wall-outfile"

# Statements a read-only session must not get through, beyond the shared corpus: one or
# more of each kind of change, in forms that have got past lexers before. {sentinel} is the
# thread id of a root session that must survive.
ATTACKS = [
    "DELETE FROM t",
    "UPDATE t SET b = b + 1",
    "INSERT INTO t VALUES (100, 1)",
    "REPLACE INTO t VALUES (1, 99)",
    "INSERT INTO t SELECT a + 1000, b FROM t",
    "TRUNCATE t",
    "DROP TABLE u",
    "ALTER TABLE t ADD COLUMN c INT",
    "CREATE TABLE v2 (a INT)",
    "CREATE TEMPORARY TABLE tt (a INT)",
    "CREATE INDEX ib ON t (b)",
    "RENAME TABLE u TO u2",
    "CREATE DATABASE wall2",
    "DROP DATABASE wall",
    "CREATE VIEW vv AS SELECT 1",
    "CREATE FUNCTION f1() RETURNS INT RETURN 1",
    "CREATE PROCEDURE p1() SELECT 1",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.b = 1",
    "CREATE EVENT ev ON SCHEDULE EVERY 1 DAY DO DELETE FROM t",
    "CREATE USER evil@'%' IDENTIFIED BY 'x'",
    "GRANT ALL ON *.* TO wally_backdoor@'%' IDENTIFIED BY 'x'",
    "DROP USER 'app'@'localhost'",
    "SET PASSWORD FOR 'app'@'localhost' = PASSWORD('x')",
    "ALTER USER 'app'@'127.0.0.1' IDENTIFIED BY 'x'",
    "RENAME USER 'app'@'localhost' TO 'x'@'localhost'",
    "SET GLOBAL net_read_timeout = 31",
    "SET @@global.net_write_timeout = 77",
    "SET GLOBAL max_connections = 7",
    "SET PERSIST max_connections = 7",
    "SET SESSION TRANSACTION READ WRITE; DELETE FROM t",
    "SET SESSION tx_read_only = 0; UPDATE t SET b = 0",
    "SET STATEMENT max_statement_time = 10 FOR DELETE FROM t",
    f"SELECT * FROM t INTO OUTFILE '{OUTFILE}'",
    f"SELECT a FROM t LIMIT 1 INTO DUMPFILE '{OUTFILE}'",
    f"SELECT 1 INTO OUTFILE '{OUTFILE}'",
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT * FROM mysql.user",
    "SELECT authentication_string FROM mysql.user",
    "SELECT Priv FROM mysql.global_priv",
    "SELECT * FROM `mysql`.`global_priv`",
    "SHOW CREATE USER 'app'@'localhost'",
    "SHOW GRANTS FOR 'app'@'localhost'",
    "SELECT GET_LOCK('wall', 0)",
    "DO GET_LOCK('wall', 0)",
    "SELECT SLEEP(0)",
    "SELECT BENCHMARK(1, 1)",
    "FLUSH TABLES WITH READ LOCK",
    "FLUSH PRIVILEGES",
    "FLUSH LOGS",
    "LOCK TABLES t READ",
    "LOCK TABLES t WRITE",
    "HANDLER t OPEN",
    "XA START 'x'",
    "PURGE BINARY LOGS BEFORE NOW()",
    "RESET QUERY CACHE",
    "RESET MASTER",
    "BACKUP STAGE START",
    "BACKUP LOCK t",
    "ANALYZE TABLE t",
    "OPTIMIZE TABLE t",
    "REPAIR TABLE t",
    "CACHE INDEX t IN default",
    "LOAD INDEX INTO CACHE t",
    "INSTALL SONAME 'ha_blackhole'",
    "UNINSTALL PLUGIN blackhole",
    "KILL {sentinel}",
    "KILL QUERY {sentinel}",
    "SHUTDOWN",
    "CALL p0()",
    "SELECT f0()",
    "SELECT wall.f0()",
    "PREPARE s FROM 'DELETE FROM t'",
    "EXECUTE IMMEDIATE 'DELETE FROM t'",
    "BEGIN NOT ATOMIC DELETE FROM t; END",
    "START TRANSACTION READ WRITE",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t LOCK IN SHARE MODE",
    "SELECT * FROM t FOR SHARE",
    "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SELECT NEXTVAL(s0)",
    "/*!50000 DELETE FROM t */",
    "/*!99999 SELECT 1, */ DELETE FROM t",
    "/*M!100100 DELETE FROM t */",
    "SELECT 1; DELETE FROM t",
    "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'a\\' ; DELETE FROM t; -- '",
    "SET sql_mode = 'ANSI_QUOTES'; SELECT \"a\\\" ; DELETE FROM t; -- \"",
    "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = 'NO_BACKSLASH_ESCAPES'; "
    "SELECT 'a\\' ; DELETE FROM t; -- '",
    "SET @m = 'ANSI_QUOTES'; SET sql_mode = @m; SELECT \"a\\\" ; DELETE FROM t; -- \"",
    "SELECT 1 -- \n; DELETE FROM t",
    "SELECT 1 #\n; DELETE FROM t",
    "SELECT 1 /* ; */ ; DELETE FROM t",
    "WITH x AS (SELECT 1) DELETE FROM t",
    "EXPLAIN DELETE FROM t",
    "ANALYZE DELETE FROM t",
    "UPDATE t SET b = 1 WHERE 1 = 0 OR a = 1",
]


def load_corpus():
    """(verdict, statement) rows of the shared corpus, escapes decoded; [] without it."""
    if not CORPUS.exists():
        return []
    rows = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or "\t" not in line:
            continue
        verdict, text = line.split("\t")[:2]
        text = (text.replace("\\\\", "\x00BS\x00").replace("\\n", "\n").replace("\\t", "\t")
                .replace("\\0", "\0").replace("\x00BS\x00", "\\"))
        rows.append((verdict, text))
    return rows


CORPUS_ROWS = load_corpus()
REFUSE = ATTACKS + [s for v, s in CORPUS_ROWS if v == "refuse"]
ALLOW = [s for v, s in CORPUS_ROWS if v == "allow"]

SETUP = [
    "CREATE DATABASE IF NOT EXISTS wall",
    "CREATE TABLE IF NOT EXISTS wall.t (a INT PRIMARY KEY, b INT) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS wall.u (a INT) ENGINE=InnoDB",
    "INSERT IGNORE INTO wall.t VALUES (1, 10), (2, 20), (3, 30)",
    "INSERT IGNORE INTO wall.u VALUES (1)",
    "CREATE OR REPLACE SEQUENCE wall.s0",
    # A stored function and procedure that change the server if anyone gets them to run.
    "CREATE OR REPLACE FUNCTION wall.f0() RETURNS INT MODIFIES SQL DATA "
    "BEGIN SET GLOBAL net_read_timeout = 41; RETURN 1; END",
    "CREATE OR REPLACE PROCEDURE wall.p0() DELETE FROM wall.t",
]


@pytest.fixture
def wall(servers, make_proxy):
    for env in ("dev", "prod"):
        for stmt in SETUP:
            servers.sql(env, stmt)
    proxy = make_proxy(accounts=[WALLY])
    if os.path.exists(OUTFILE):
        os.unlink(OUTFILE)
    sentinels = {env: servers[env].connect() for env in ("dev", "prod")}
    ids = {}
    for env, conn in sentinels.items():
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            ids[env] = cur.fetchone()[0]
    yield proxy, ids
    for conn in sentinels.values():
        conn.close()


def sentinel_alive(conn_id, server):
    return any(r[0] == conn_id for r in server.sql("SHOW PROCESSLIST"))


def statements(ids):
    return [s.replace("{sentinel}", str(ids["prod"])) for s in REFUSE]


def connect(proxy, **kw):
    return pymysql.connect(host="127.0.0.1", port=proxy.port, user=WALLY.name,
                           password=WALLY.password, database="wall@prod", autocommit=True,
                           connect_timeout=10, read_timeout=30,
                           client_flag=CLIENT.MULTI_STATEMENTS, **kw)


def run_one(conn, sql):
    """Runs sql and every result of it; returns None on success, else the error code."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
            while cur.nextset():
                cur.fetchall()
        return None
    except pymysql.err.MySQLError as e:
        return e.args[0] if e.args else -1


def check_state(servers, before, ids, path):
    for env in ("dev", "prod"):
        after = server_state(servers[env])
        diff = state_diff(before[env], after)
        assert not diff, f"{path}: {env} changed: {diff}"
        assert sentinel_alive(ids[env], servers[env]), f"{path}: a root session in {env} died"
    assert not os.path.exists(OUTFILE), f"{path}: {OUTFILE} was written"


@pytest.fixture
def baseline(servers, wall):
    proxy, ids = wall
    state = {env: server_state(servers[env]) for env in ("dev", "prod")}
    return proxy, ids, state


def test_state_snapshot_is_stable(servers, wall):
    """server_state() of an untouched server is the same twice: differences found by the
    other tests come from what they sent, not from the server's own activity."""
    a = server_state(servers.prod)
    b = server_state(servers.prod)
    assert not state_diff(a, b)
    assert a["checksums"]["wall.t"] and "app@localhost" in a["grants"]


def test_plain_and_multi_statement_queries(servers, baseline):
    """Each statement alone, and behind `SELECT 1;` in one packet, fails in prod; nothing
    changes on either server."""
    proxy, ids, before = baseline
    conn = connect(proxy)
    passed = []
    for sql in statements(ids):
        for text in (sql, "SELECT 1; " + sql):
            if not conn.open:
                conn = connect(proxy)
            if run_one(conn, text) is None:
                passed.append(text)
    conn.close()
    check_state(servers, before, ids, "plain")
    assert not passed, f"forwarded without an error: {passed}"


def prepare_and_execute(conn, sql):
    """A raw COM_STMT_PREPARE and, when it is accepted, COM_STMT_EXECUTE of the statement
    (the attacks have no placeholders). Returns None when both were answered without an
    error, else the error code."""
    try:
        conn._execute_command(COMMAND.COM_STMT_PREPARE, sql)
        ok = conn._read_packet()
        data = ok.get_all_data()
        stmt_id = data[1:5]
        n_cols = int.from_bytes(data[5:7], "little")
        n_params = int.from_bytes(data[7:9], "little")
        for n in (n_params, n_cols):
            if n:
                for _ in range(n + 1):  # definitions, then EOF (PyMySQL asks for EOFs)
                    conn._read_packet()
        conn._execute_command(COMMAND.COM_STMT_EXECUTE,
                              stmt_id + b"\x00" + (1).to_bytes(4, "little"))
        conn._read_packet()
        return None
    except pymysql.err.MySQLError as e:
        return e.args[0] if e.args else -1


def test_prepared_statements(servers, baseline):
    """COM_STMT_PREPARE of each statement, and COM_STMT_EXECUTE where the prepare was
    accepted (KILL is answered by envproxy itself, and only for the account's own sessions),
    ends in an error; nothing changes."""
    proxy, ids, before = baseline
    passed = []
    for sql in statements(ids):
        conn = connect(proxy)
        if prepare_and_execute(conn, sql) is None:
            passed.append(sql)
        conn.close()
    check_state(servers, before, ids, "prepared")
    assert not passed, f"prepared without an error: {passed}"


def fanout_failed(conn, sql):
    """True when a fan-out or compare statement failed everywhere: an error, or only rows
    whose _error is set."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
            names = [d[0] for d in cur.description or []]
            while cur.nextset():
                pass
    except pymysql.err.MySQLError:
        return True
    if "_error" not in names:
        return False
    i = names.index("_error")
    return all(r[i] is not None for r in rows) and len(rows) > 0


def test_fan_out_and_compare_hints(servers, baseline):
    """`/* env=dev,prod */`, `/* env=* */` and `/* compare=dev,prod */` before each statement,
    and __compare.query with it as `sql`: an error or an error row per environment; nothing
    changes in either environment."""
    proxy, ids, before = baseline
    passed = []
    conn = connect(proxy)
    for sql in statements(ids):
        quoted = sql.replace("\\", "\\\\").replace("'", "''")
        for text in (f"/* env=dev,prod */ {sql}", f"/* env=* */ {sql}",
                     f"/* compare=dev,prod */ {sql}",
                     f"SELECT * FROM __compare.query WHERE envs = 'dev,prod' AND sql = '{quoted}'"):
            if not conn.open:
                conn = connect(proxy)
            if not fanout_failed(conn, text):
                passed.append(text)
    conn.close()
    check_state(servers, before, ids, "fan-out and compare")
    assert not passed, f"not refused: {passed}"


def test_mcp_tools(servers, baseline, start_mcp_wall):
    """The MCP tools execute_query, execute_query_multi_env and compare_query: a tool error
    for each statement; nothing changes."""
    proxy, ids, before = baseline
    m = start_mcp_wall(proxy.port)
    passed = []
    for sql in statements(ids):
        for tool, args in (("execute_query", {"sql": sql, "environment": "prod",
                                              "database": "wall"}),
                           ("execute_query_multi_env", {"sql": sql,
                                                        "environments": ["dev", "prod"],
                                                        "database": "wall"}),
                           ("compare_query", {"sql": sql, "environments": ["dev", "prod"]})):
            is_error, result = m.call(tool, args)
            if not is_error:
                rows = result.get("rows") or []
                cols = [c["name"] for c in result.get("columns", [])]
                if "_error" in cols and rows and all(r[cols.index("_error")] for r in rows):
                    continue
                passed.append((tool, sql))
    check_state(servers, before, ids, "mcp")
    assert not passed, f"not refused: {passed}"


@pytest.fixture
def start_mcp_wall(tmp_path):
    from test_mcp import McpProcess
    started = []

    def factory(port):
        m = McpProcess(port, tmp_path / f"mcp-{len(started)}.stderr", user=WALLY.name,
                       password=WALLY.password)
        started.append(m)
        m.initialize()
        return m

    yield factory
    for m in started:
        assert m.close() == 0, m.stderr_text()


def test_allowed_reads_are_not_refused(servers, baseline):
    """The corpus's allowed statements (what drivers, GUIs and BI tools send) are not
    refused in prod (they may still fail on the server, for a table that is not there);
    nothing changes."""
    proxy, ids, before = baseline
    refused = []
    conn = connect(proxy)
    for sql in ALLOW:
        if not conn.open:
            conn = connect(proxy)
        if run_one(conn, sql) == 1290:
            refused.append(sql)
    conn.close()
    check_state(servers, before, ids, "allowed")
    assert not refused, f"refused: {refused}"
