"""The read-only policy against a real server whose backend account has ALL privileges.

Every row of the shared corpus and of tests/unit/sqlpolicy_cases.tsv goes through the proxy
to the read-only prod environment: refuse rows must come back as ERR 1290 from envproxy,
allow rows must reach the server (whatever it then answers, it is not a refusal). After all
refusals, the server's data, schemas, routines, users, global variables and files are
exactly as before: only the proxy stood in the way.
"""

import os
import re
from pathlib import Path

import pymysql
import pytest
from pymysql.constants import CLIENT

REPO = Path(__file__).resolve().parents[2]
CORPUS = [REPO.parent / "shared" / "corpus" / "readonly.tsv",
          REPO / "tests" / "unit" / "sqlpolicy_cases.tsv"]

MODE_SETUP = {
    "": None,
    "ansi_quotes": "SET SESSION sql_mode = 'ANSI_QUOTES'",
    "no_backslash_escapes": "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'",
    "ansi_quotes,no_backslash_escapes":
        "SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'",
}
# Rows flagged "unreadable" (sql_mode ORACLE or MSSQL) stay in the unit tests: the proxy
# refuses to enter those modes at all (test_oracle_mode_is_refused). Rows flagged "unknown"
# too: backend sessions report every sql_mode change, so the proxy knows the exact mode
# after any SET the server accepted (test_sql_mode_is_exact_after_any_set).

# Objects the corpus statements name, created in prod so that allowed rows really run.
FIXTURE_SQL = [
    "CREATE TABLE IF NOT EXISTS shop.t (id INT PRIMARY KEY, a INT, b INT, c INT, "
    "name VARCHAR(50), note VARCHAR(200), x INT, y INT, created_at DATETIME)",
    "CREATE TABLE IF NOT EXISTS shop.u (id INT PRIMARY KEY, a INT, b INT, c INT, "
    "name VARCHAR(50), note VARCHAR(200))",
    "INSERT IGNORE INTO shop.t VALUES (1, 1, 2, 3, 'one', 'first', 1, 1, NOW()), "
    "(2, 2, 3, 4, 'two', NULL, 2, 2, NOW())",
    "INSERT IGNORE INTO shop.u VALUES (1, 1, 2, 3, 'one', 'first')",
]


def unescape(s):
    """The bytes of a table statement: the file's UTF-8 text with the escapes \\n \\r \\t
    \\0 \\\\ and \\xHH (one byte) undone, as the unit test reads it."""
    raw = s.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == 0x5C and i + 1 < len(raw):
            nxt = chr(raw[i + 1])
            if nxt in "nrt0\\":
                out += {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}[nxt]
                i += 2
                continue
            if nxt == "x" and re.fullmatch(rb"[0-9A-Fa-f]{2}", raw[i + 2:i + 4]):
                out.append(int(raw[i + 2:i + 4], 16))
                i += 4
                continue
        out.append(ch)
        i += 1
    return bytes(out)


def load_rows():
    rows = []
    for path in CORPUS:
        assert path.exists(), f"missing corpus {path}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            verdict, stmt = parts[0], parts[1]
            flags = parts[2] if len(parts) > 2 and parts[2] != "-" else ""
            # The servers are MariaDB: rows for a MySQL backend stay in the unit tests.
            names = [f for f in flags.split(",") if f]
            if "mysql" in names:
                continue
            flags = ",".join(f for f in names if f != "mariadb")
            if flags in ("unreadable", "unknown"):
                continue
            rows.append((f"{path.name}:{n}", verdict, unescape(stmt).decode("latin-1"), flags))
    return rows


ROWS = load_rows()
OUTFILES = sorted({m.group(2) for _, v, stmt, _ in ROWS if v == "refuse"
                   for m in re.finditer(r"(?is)(OUTFILE|DUMPFILE)\s*(?:/\*.*?\*/\s*)*'([^']+)'",
                                        stmt)})


def to_bytes(stmt):
    # load_rows keeps each statement's bytes as latin-1 text.
    return stmt.encode("latin-1")


def snapshot(servers):
    """Everything a refused statement could have changed on prod."""
    s = {}
    tables = servers.sql("prod", "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                                 "WHERE TABLE_SCHEMA NOT IN ('information_schema', "
                                 "'performance_schema', 'sys') AND TABLE_TYPE = 'BASE TABLE' "
                                 "ORDER BY 1, 2")
    s["tables"] = tables
    s["checksums"] = [servers.sql("prod", f"CHECKSUM TABLE `{db}`.`{t}` EXTENDED")[0][1]
                      for db, t in tables if db != "mysql"]
    s["schemas"] = servers.sql("prod", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                                       "ORDER BY 1")
    s["columns"] = servers.sql("prod", "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, "
                                       "COLUMN_TYPE FROM information_schema.COLUMNS WHERE "
                                       "TABLE_SCHEMA IN ('shop', 'billing') ORDER BY 1, 2, 3")
    s["routines"] = servers.sql("prod", "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM "
                                        "information_schema.ROUTINES ORDER BY 1, 2")
    s["views_triggers_events"] = (
        servers.sql("prod", "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.VIEWS"),
        servers.sql("prod", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS"),
        servers.sql("prod", "SELECT EVENT_NAME FROM information_schema.EVENTS"))
    s["users"] = servers.sql("prod", "SELECT User, Host FROM mysql.user ORDER BY 1, 2")
    s["grants"] = sorted(servers.sql("prod", "SELECT * FROM information_schema.USER_PRIVILEGES"))
    s["globals"] = [r for r in servers.sql("prod", "SHOW GLOBAL VARIABLES")
                    if r[0] not in ("gtid_binlog_pos", "gtid_current_pos", "timestamp",
                                    "gtid_binlog_state")]
    s["sequences"] = servers.sql("prod", "SELECT TABLE_SCHEMA, TABLE_NAME FROM "
                                         "information_schema.TABLES WHERE TABLE_TYPE = "
                                         "'SEQUENCE'")
    s["files"] = sorted(p for p in _files(servers.prod.datadir))
    # Files a refused INTO OUTFILE / DUMPFILE would have written (other programs write to
    # /tmp too, so only those paths are watched).
    s["outfiles"] = sorted(p for p in OUTFILES if os.path.exists(p))
    return s


def _files(root):
    for dirpath, _, names in os.walk(root):
        for n in names:
            # Logs and the InnoDB files change on their own; new files are what matters.
            yield os.path.relpath(os.path.join(dirpath, n), root)


@pytest.fixture(scope="module")
def prod_ready(servers):
    for stmt in FIXTURE_SQL:
        servers.sql("prod", stmt)
    grants = servers.sql("prod", "SHOW GRANTS FOR 'app'@'127.0.0.1'")
    assert any("ALL PRIVILEGES ON *.*" in g[0] for g in grants), grants
    return servers


def connect_prod(proxy):
    return proxy.connect(database="shop@prod", client_flag=CLIENT.MULTI_STATEMENTS,
                         read_timeout=20)


def run_row(proxy, stmt, flags):
    """Runs one corpus statement in prod; returns None, or (code, message) of an error."""
    conn = connect_prod(proxy)
    try:
        with conn.cursor() as cur:
            setup = MODE_SETUP[flags]
            if setup:
                cur.execute(setup)
            try:
                conn._execute_command(3, to_bytes(stmt))
                conn._read_query_result()
                while conn._result is not None and conn._result.has_next:
                    conn.next_result()
            except pymysql.err.MySQLError as e:
                return e.args[0], e.args[1] if len(e.args) > 1 else ""
            except UnicodeDecodeError as e:
                # The server quoted undecodable bytes of the statement in its error.
                return -1, f"server error that PyMySQL cannot decode: {e}"
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - the row may have broken the connection
            pass
    return None


def test_corpus_is_large(prod_ready):
    refuse = sum(1 for r in ROWS if r[1] == "refuse")
    allow = sum(1 for r in ROWS if r[1] == "allow")
    assert refuse >= 200 and allow >= 200, (refuse, allow)


def test_every_refuse_row_is_refused_and_nothing_changes(proxy, prod_ready):
    before = snapshot(prod_ready)
    wrong = []
    for where, verdict, stmt, flags in ROWS:
        if verdict != "refuse":
            continue
        err = run_row(proxy, stmt, flags)
        if err and stmt.upper().startswith("KILL") and err[0] in (1094, 1095):
            continue  # KILL is answered by the proxy for its own sessions, never forwarded
        if not err and re.fullmatch(r"\s*show\s+(full\s+)?processlist\s*;?\s*", stmt, re.I):
            continue  # the proxy's own list of the account's sessions (test_processlist.py)
        if not err or "envproxy" not in err[1]:
            wrong.append(f"{where}: {stmt[:80]!r} -> {err}")
    after = snapshot(prod_ready)
    assert not wrong, "not refused:\n" + "\n".join(wrong[:40])
    for key in before:
        assert after[key] == before[key], f"prod changed: {key}"


def test_every_allow_row_runs_on_the_server(proxy, prod_ready):
    wrong = []
    for where, verdict, stmt, flags in ROWS:
        if verdict != "allow":
            continue
        err = run_row(proxy, stmt, flags)
        if err and (err[0] == 1290 and "envproxy" in err[1]):
            wrong.append(f"{where}: {stmt[:80]!r} -> {err}")
    assert not wrong, "refused by the proxy:\n" + "\n".join(wrong[:40])


def test_refusal_message_and_connection_stays_usable(proxy):
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("DELETE FROM orders")
        assert e.value.args == (1290, "envproxy: environment 'prod' is read-only: DELETE is "
                                      "not allowed")
        cur.execute("SELECT COUNT(*) FROM orders")
        assert cur.fetchall()[0][0] > 0
    conn.close()
    assert "refused: DELETE" in proxy.log_text()


def test_read_grant_on_a_writable_environment(proxy):
    conn = proxy.connect(user="carol", password="carol-pw")  # dev: read only
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("UPDATE orders SET status = 'x'")
        assert e.value.args[0] == 1290
        assert "account 'carol'" in e.value.args[1] and "'dev'" in e.value.args[1]
        cur.execute("SELECT 1")
    conn.close()


def test_second_wall_read_only_transaction(proxy):
    # The backend session itself is read-only: even a write the lexer let through (none
    # should exist) would fail on the server.
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        cur.execute("SELECT @@SESSION.tx_read_only")
        assert cur.fetchall() == ((1,),)
    conn.close()
    conn = proxy.connect()  # alice in dev: write
    with conn.cursor() as cur:
        cur.execute("SELECT @@SESSION.tx_read_only")
        assert cur.fetchall() == ((0,),)
    conn.close()


def test_unsafe_client_charset_is_refused_in_read_only(proxy):
    conn = proxy.connect(database="shop@prod", charset="gbk", autocommit=None)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT 1")
        assert e.value.args[0] == 1290 and "gbk" in e.value.args[1]
    conn.close()
    conn = proxy.connect(charset="gbk")  # dev, writable: fine
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()


@pytest.mark.parametrize("stmt", ["SET NAMES gbk", "SET character_set_client = big5",
                                  "SET NAMES 'sjis'"])
def test_unsafe_charset_statements_are_refused(proxy, stmt):
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute(stmt)
        assert e.value.args[0] == 1290
    conn.close()


def test_sql_mode_tracking_changes_how_text_is_read(proxy, prod_ready):
    # Under NO_BACKSLASH_ESCAPES the string ends at the backslash and the DELETE is code.
    conn = connect_prod(proxy)
    stmt = "SELECT 'a\\' ; DELETE FROM t WHERE id = 99; -- '"
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute(stmt)
        assert e.value.args[0] == 1290
    conn.close()


def test_oracle_mode_is_refused(proxy):
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        for mode in ("ORACLE", "MSSQL"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                cur.execute(f"SET SESSION sql_mode = '{mode}'")
            assert e.value.args[0] == 1290
    conn.close()


def test_sql_mode_is_exact_after_any_set(proxy, prod_ready):
    # A SET the lexer cannot evaluate: the backend reports the resulting mode, and the text
    # after it is read with exactly that mode.
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        cur.execute("SET @m = 'NO_BACKSLASH_ESCAPES'")
        cur.execute("SET SESSION sql_mode = @m")
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT 'a\\' ; DELETE FROM t WHERE id = 99; -- '")
        assert e.value.args[0] == 1290
    conn.close()
