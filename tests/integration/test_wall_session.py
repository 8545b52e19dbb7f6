"""The read-only wall against what a client can do to its session and to the protocol.

The backend account `app` has ALL PRIVILEGES on both servers: only envproxy stands between a
read-only account and a change. Each test attacks one way and then compares the servers'
state (global variables, users and grants, routines, the data of every table) with the
state before: it must be exactly the same.

- the session's sql_mode must be what the server reads in, whatever sets it (SET STATEMENT
  ... FOR SET, user variables, long values, prepared statements, fan-out, compare);
- session tracking cannot be switched off, and a pooled connection a writable session
  changed is put back before a read-only one gets it;
- packets of 16 MiB and more are forwarded whole (COM_STMT_SEND_LONG_DATA);
- fan-out and compare of statements without a result set do not crash the proxy.
"""

import hashlib
import struct
import time

import pymysql
import pytest
from pymysql.constants import CLIENT, COMMAND

from harness import ACCOUNTS, Account, StmtDriver

MULTI = CLIENT.MULTI_STATEMENTS
# Text that the proxy reads as one harmless SET in the default sql_mode and the server, in
# NO_BACKSLASH_ESCAPES, as a SET GLOBAL: the backslash ends the string there.
NBE_BYPASS = "SET @x = 'a\\' , GLOBAL net_read_timeout = {n} -- '"
# The same for ANSI_QUOTES: "\" is a name there, a string with an escaped quote otherwise.
ANSI_BYPASS = "SET @x = (SELECT 1 AS \"\\\"), GLOBAL net_read_timeout = {n} -- \")"
LONG_NBE = ",".join(["NO_BACKSLASH_ESCAPES", "STRICT_TRANS_TABLES", "ERROR_FOR_DIVISION_BY_ZERO",
                     "NO_AUTO_CREATE_USER", "NO_ENGINE_SUBSTITUTION", "NO_ZERO_IN_DATE",
                     "NO_ZERO_DATE", "ONLY_FULL_GROUP_BY", "NO_UNSIGNED_SUBTRACTION",
                     "NO_DIR_IN_CREATE", "HIGH_NOT_PRECEDENCE", "PAD_CHAR_TO_FULL_LENGTH",
                     "REAL_AS_FLOAT"])
assert len(LONG_NBE) >= 200
# At least 200 bytes too, short enough for one stmt_driver parameter (255).
MID_NBE = ",".join(LONG_NBE.split(",")[:-2])
assert 200 <= len(MID_NBE) < 255


def snapshot(servers):
    """What a statement that got past the proxy could have changed, on both servers."""
    s = {}
    for env in ("dev", "prod"):
        s[env, "globals"] = [r for r in servers.sql(env, "SHOW GLOBAL VARIABLES")
                             if r[0] not in ("gtid_binlog_pos", "gtid_current_pos", "timestamp",
                                             "gtid_binlog_state", "max_allowed_packet")]
        s[env, "users"] = servers.sql(env, "SELECT User, Host FROM mysql.user ORDER BY 1, 2")
        s[env, "grants"] = sorted(servers.sql(env, "SELECT * FROM "
                                                   "information_schema.USER_PRIVILEGES"))
        s[env, "routines"] = servers.sql(env, "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM "
                                              "information_schema.ROUTINES ORDER BY 1, 2")
        tables = servers.sql(env, "SELECT TABLE_SCHEMA, TABLE_NAME FROM "
                                  "information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND "
                                  "TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2")
        s[env, "tables"] = tables
        s[env, "data"] = [servers.sql(env, f"CHECKSUM TABLE `{d}`.`{t}` EXTENDED")[0][1]
                          for d, t in tables]
    return s


@pytest.fixture
def unchanged(servers):
    """Fails the test when the servers' state differs after it from before."""
    before = snapshot(servers)
    yield
    after = snapshot(servers)
    diff = [k for k in before if before[k] != after.get(k)]
    assert not diff, f"server state changed: {diff}"


def run(conn, sql):
    """Runs sql (all its results); returns the first result's rows or the error code."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
            while cur.nextset():
                pass
            return rows
    except pymysql.err.MySQLError as e:
        return e.args[0]


def assert_alive(p):
    conn = p.connect(user="bob", password="bob-pw")
    assert run(conn, "SELECT 'still here'") == (("still here",),)
    conn.close()
    assert p.alive()


# ---- sql_mode -------------------------------------------------------------------------------


@pytest.mark.parametrize("setter", [
    "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
    "SET STATEMENT max_statement_time=10 FOR SET @@session.sql_mode := 'NO_BACKSLASH_ESCAPES'",
    "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = '" + LONG_NBE + "'",
    "SET sql_mode = '" + LONG_NBE + "'",
    "/*!40101 SET STATEMENT max_statement_time = 10 FOR SET sql_mode = 'NO_BACKSLASH_ESCAPES' */",
])
def test_no_backslash_escapes_in_one_packet_and_across(proxy, unchanged, setter):
    """Whatever form sets NO_BACKSLASH_ESCAPES (SET STATEMENT ... FOR SET, a value of 200
    bytes or more, an executable comment), the statements after it are read in that mode:
    in the same packet and in the next ones."""
    conn = proxy.connect(user="bob", password="bob-pw", client_flag=MULTI)
    assert run(conn, setter + "; " + NBE_BYPASS.format(n=31)) == 1290
    assert run(conn, setter) == ()
    assert run(conn, NBE_BYPASS.format(n=32)) == 1290
    assert run(conn, "SELECT @@sql_mode LIKE '%NO_BACKSLASH_ESCAPES%'") == ((1,),)
    # The proxy reads as the server does: this one is a harmless string there.
    assert run(conn, "SELECT 'a\\'") == (("a\\",),)
    conn.close()


def test_ansi_quotes_and_user_variables(proxy, unchanged):
    """ANSI_QUOTES set through SET STATEMENT ... FOR, and modes set from a user variable
    (ORACLE too), leave the proxy reading as the server does."""
    conn = proxy.connect(user="bob", password="bob-pw", client_flag=MULTI)
    ansi = "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = 'ANSI_QUOTES'"
    assert run(conn, ansi + "; " + ANSI_BYPASS.format(n=33)) == 1290
    assert run(conn, ansi) == ()
    assert run(conn, ANSI_BYPASS.format(n=34)) == 1290
    assert run(conn, "SET sql_mode = DEFAULT") == ()
    assert run(conn, "SET @m = 'NO_BACKSLASH_ESCAPES'") == ()
    assert run(conn, "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = @m") == ()
    assert run(conn, NBE_BYPASS.format(n=35)) == 1290
    assert run(conn, "SET @m = 'ORACLE'") == ()
    run(conn, "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = @m")
    assert run(conn, NBE_BYPASS.format(n=36)) == 1290
    assert run(conn, "SELECT 1") in (((1,),), 1290)
    conn.close()


def test_session_tracking_cannot_be_switched_off(proxy, unchanged):
    """A client may send SET session_track_... (MariaDB Connector/J does at connect), in
    any form and environment, but the proxy keeps session tracking on: the next statement
    finds it as the proxy set it, and the sql_mode set afterwards is followed."""
    setters = ["SET session_track_system_variables = ''",
               "SET SESSION session_track_system_variables = 'autocommit'",
               "SET @@session.session_track_schema = OFF",
               "SET STATEMENT session_track_system_variables = '' FOR SET sql_mode = "
               "'NO_BACKSLASH_ESCAPES'",
               "SET sql_mode = 'NO_BACKSLASH_ESCAPES', session_track_system_variables = ''",
               "SET autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES'), "
               "session_track_schema=1, session_track_system_variables = "
               "CONCAT(@@global.session_track_system_variables,',auto_increment_increment')"]
    for user, pw in (("bob", "bob-pw"), ("alice", "alice-pw"), ("carol", "carol-pw")):
        for sql in setters:
            conn = proxy.connect(user=user, password=pw, client_flag=MULTI, autocommit=True)
            assert run(conn, sql) == (), (user, sql)
            assert run(conn, "SELECT @@session.session_track_system_variables, "
                             "@@session.session_track_schema") == (("*", 1),), (user, sql)
            if user != "alice":  # alice may write in dev: a SET GLOBAL is hers to run
                assert run(conn, "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = "
                                 "'NO_BACKSLASH_ESCAPES'") == ()
                assert run(conn, NBE_BYPASS.format(n=37)) in ((), 1290)
                # Tracking off and a mode change in one packet, the bypass in the next.
                run(conn, sql + "; SET STATEMENT max_statement_time = 10 FOR SET sql_mode = "
                                "'NO_BACKSLASH_ESCAPES'")
                assert run(conn, NBE_BYPASS.format(n=42)) in ((), 1290)
            assert run(conn, "SELECT @@session.session_track_system_variables") == (("*",),)
            conn.close()


@pytest.mark.parametrize("prepare,args", [
    ("SET STATEMENT max_statement_time = 10 FOR SET sql_mode = '" + LONG_NBE + "'", ""),
    ("SET STATEMENT max_statement_time = 10 FOR SET sql_mode = ?", "s:" + MID_NBE),
    ("SET sql_mode = ?", "s:NO_BACKSLASH_ESCAPES"),
])
def test_prepared_set_changes_the_mode(proxy, unchanged, prepare, args):
    """A prepared SET of sql_mode (SET STATEMENT ... FOR SET, a parameter, a value of 200
    bytes or more), executed, changes how the next plain statements are read."""
    d = StmtDriver(proxy, user="bob", password="bob-pw")
    try:
        assert d.cmd("prepare " + prepare)[0] == "OK"
        assert d.cmd(("exec " + args).strip())[0] == "AFFECTED"
        answer = d.cmd("query " + NBE_BYPASS.format(n=38))
        assert answer[0] == "ERR" and answer[1] == "1290", answer
    finally:
        d.close()


@pytest.mark.parametrize("form", ["env", "compare", "table"])
def test_fanout_and_compare_run_one_statement(proxy, unchanged, form):
    """Fan-out and compare side connections run exactly one statement: a mode set before
    the real statement cannot change how that one is read."""
    conn = proxy.connect(user="alice", password="alice-pw", client_flag=MULTI)
    text = ("SET STATEMENT max_statement_time = 10 FOR SET sql_mode = 'NO_BACKSLASH_ESCAPES'; "
            + NBE_BYPASS.format(n=39))
    if form == "env":
        sql = "/* env=dev,prod */ " + text
    elif form == "compare":
        sql = "/* compare=dev,prod */ " + text
    else:
        sql = ("SELECT * FROM __compare.query WHERE envs = 'dev,prod' AND sql = '"
               + text.replace("\\", "\\\\").replace("'", "\\'") + "'")
    assert run(conn, sql) in (1064, 1290)
    conn.close()
    assert_alive(proxy)


# ---- pooled connections ---------------------------------------------------------------------


@pytest.mark.parametrize("reader,reader_pw", [("carol", "carol-pw"), ("dave", "dave-pw")])
def test_connection_a_writer_changed_is_reset_before_others_get_it(make_proxy, servers,
                                                                    unchanged, reader,
                                                                    reader_pw):
    """A writable session can switch session tracking off unseen (inside a stored
    procedure). The connection goes back to the pool; the next session of another account
    on it, read-only (carol) or writable (dave), finds tracking on, and a read-only one has
    its sql_mode followed."""
    servers.sql("dev", "DROP PROCEDURE IF EXISTS shop.p_track_off")
    servers.sql("dev", "CREATE PROCEDURE shop.p_track_off() "
                       "SET SESSION session_track_system_variables = ''")
    try:
        accounts = ACCOUNTS + [Account("dave", "dave-pw", "dev", {"dev": "write"})]
        p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 1, "min": 0}}}},
                       accounts=accounts)
        before = snapshot(servers)
        writer = p.connect(user="alice", password="alice-pw", autocommit=True)
        assert run(writer, "CALL shop.p_track_off()") == ()
        writer_thread = run(writer, "SELECT CONNECTION_ID() + 0")
        writer.close()
        time.sleep(0.3)
        other = p.connect(user=reader, password=reader_pw, autocommit=True)
        assert run(other, "SELECT CONNECTION_ID() + 0") == writer_thread  # the same connection
        assert run(other, "SELECT @@session.session_track_system_variables") == (("*",),)
        if reader == "carol":
            assert run(other, "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = "
                              "'NO_BACKSLASH_ESCAPES'") == ()
            assert run(other, NBE_BYPASS.format(n=40)) == 1290
        other.close()
        assert snapshot(servers) == before
    finally:
        servers.sql("dev", "DROP PROCEDURE IF EXISTS shop.p_track_off")


# ---- packets of 16 MiB and more -------------------------------------------------------------


def _read_prepare_ok(conn):
    data = conn._read_packet().get_all_data()
    assert data[0] == 0, data
    stmt_id, ncols, nparams = struct.unpack("<IHH", data[1:9])
    for _ in range(nparams):
        conn._read_packet()
    if nparams:
        conn._read_packet()  # EOF
    for _ in range(ncols):
        conn._read_packet()
    if ncols:
        conn._read_packet()  # EOF
    return stmt_id


def test_long_data_over_16_mib_is_forwarded_whole(make_proxy, servers, unchanged):
    """COM_STMT_SEND_LONG_DATA of 17 MiB carrying, where a length cut to 24 bits would end
    the packet, the bytes of a COM_QUERY with SET GLOBAL: the server gets the data intact
    and runs nothing else."""
    for env in ("dev", "prod"):
        servers.sql(env, "SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    p = make_proxy()
    conn = p.connect(user="bob", password="bob-pw", read_timeout=120, write_timeout=120,
                     max_allowed_packet=64 * 1024 * 1024)
    size = 17 * 1024 * 1024
    data = bytearray(b"x" * size)
    payload_len = 1 + 4 + 2 + size
    at = (payload_len & 0xFFFFFF) - 7  # where the cut packet would end, in data
    fake = b"\x03SET GLOBAL net_read_timeout = 41"
    data[at:at + 4] = struct.pack("<I", len(fake))[:3] + b"\x00"
    data[at + 4:at + 4 + len(fake)] = fake
    data = bytes(data)

    conn._execute_command(COMMAND.COM_STMT_PREPARE,
                          "SELECT LENGTH(x), MD5(x) FROM (SELECT ? AS x) t")
    stmt_id = _read_prepare_ok(conn)
    conn._execute_command(COMMAND.COM_STMT_SEND_LONG_DATA,
                          struct.pack("<IH", stmt_id, 0) + data)
    execute = struct.pack("<IBI", stmt_id, 0, 1) + b"\x00" + b"\x01" + b"\xfb\x00"
    conn._execute_command(COMMAND.COM_STMT_EXECUTE, execute)
    first = conn._read_packet().get_all_data()
    assert first[0] != 0xFF, first
    assert first[0] == 2  # two columns
    for _ in range(2):
        conn._read_packet()
    conn._read_packet()  # EOF
    row = conn._read_packet().get_all_data()
    assert row[0] == 0
    length = struct.unpack("<i", row[2:6])[0]  # LENGTH() is an INT: 4 bytes
    md5 = row[7:7 + row[6]].decode()
    assert conn._read_packet().get_all_data()[0] == 0xFE
    assert length == size
    assert md5 == hashlib.md5(data).hexdigest()
    assert run(conn, "SELECT 'same session'") == (("same session",),)
    conn.close()
    assert_alive(p)


# ---- fan-out and compare without a result set ------------------------------------------------


@pytest.mark.parametrize("sql", [
    "/* env=* */ SET @a = 1",
    "/* env=* */ BEGIN",
    "/* env=* */ /* only a comment */",
    "/* env=* */ ",
    "/* env=* */ ;",
    "/* env=dev,prod */ SELECT 1; SELECT 2",
    "/* env=dev,prod */ USE shop",
    "/* env=dev,prod */ SHOW TABLES",
    "/* env=dev,prod */ SELECT * FROM no_such_table",
    "/* env=dev,prod */ SET NAMES utf8mb4",
    "/* env=dev,prod */ COMMIT",
    "/* env=dev,prod */ DELETE FROM customers",
    "/* env=dev,prod */ SELECT REPEAT('x', 100000) FROM information_schema.COLUMNS LIMIT 50",
    "/* compare=dev,prod */ SET @a = 1",
    "/* compare=dev,prod */ BEGIN",
    "/* compare=dev,prod */ /* nothing */",
    "SELECT * FROM __compare.query WHERE envs = 'dev,prod' AND sql = 'SET @a = 1'",
    "SELECT * FROM __compare.query WHERE envs = 'dev,prod' AND sql = ''",
    "SELECT * FROM __compare.query WHERE envs = 'dev,prod' AND sql = 'DO 1'",
])
def test_fanout_without_result_set_does_not_crash(proxy, unchanged, sql):
    """Statements without a result set, empty ones, several, errors and refusals in every
    fan-out and compare form: a clear answer, and the proxy keeps serving."""
    conn = proxy.connect(user="alice", password="alice-pw", client_flag=MULTI)
    result = run(conn, sql)
    conn.close()
    assert_alive(proxy)
    if sql.startswith("/* env=* */ SET") or sql == "/* env=* */ BEGIN":
        # One row per environment: OK without a result set.
        assert isinstance(result, tuple) and len(result) == 2, result
        assert all(r[1].startswith("OK") for r in result), result


def test_fanout_mixed_result_sets(proxy, servers, unchanged):
    """One environment answers with rows, the other without a result set (a table only one
    of them has): each gets its row."""
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.only_dev (a INT)")
    try:
        conn = proxy.connect(user="alice", password="alice-pw")
        result = run(conn, "/* env=dev,prod */ SELECT COUNT(*) FROM shop.only_dev")
        assert isinstance(result, tuple) and len(result) == 2, result
        conn.close()
    finally:
        servers.sql("dev", "DROP TABLE IF EXISTS shop.only_dev")
    assert_alive(proxy)


# ---- MCP --------------------------------------------------------------------------------------


def test_mcp_tools_follow_the_mode(proxy, tmp_path, unchanged):
    """`envproxy mcp` is a client of the proxy: a mode set by one tool call is followed in
    the next, and the fan-out tool runs one statement only, of any kind, without crashing."""
    from test_mcp import McpProcess
    m = McpProcess(proxy.port, tmp_path / "mcp.stderr", user="bob", password="bob-pw")
    try:
        m.initialize()
        # bob's session is in prod; with "environment" the mode would be reset after the
        # call (it is the session's only when set at its position).
        m.ok("execute_query", {"sql": "SET STATEMENT max_statement_time = 10 FOR SET "
                                      "sql_mode = '" + LONG_NBE + "'"})
        err = m.error("execute_query", {"sql": NBE_BYPASS.format(n=43)})
        assert err["code"] == 1290, err
        is_error, result = m.call("execute_query", {"environment": "prod", "sql":
                                                    NBE_BYPASS.format(n=45)})
        assert not is_error or result["error"]["code"] == 1290, result
    finally:
        assert m.close() == 0
    m = McpProcess(proxy.port, tmp_path / "mcp2.stderr")
    try:
        m.initialize()
        for sql in ("SET @a = 1", "BEGIN", "/* nothing */",
                    "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = "
                    "'NO_BACKSLASH_ESCAPES'; " + NBE_BYPASS.format(n=44)):
            m.call("execute_query_multi_env", {"environments": ["dev", "prod"], "sql": sql})
    finally:
        assert m.close() == 0
    assert_alive(proxy)
