"""The lexer against a real MariaDB server, byte by byte, in every supported character set.

For each supported client character set (utf8mb4, utf8mb3, latin1, ascii, binary) and each
byte 0x01-0xFF, the server is asked (as root, no proxy) whether "--" followed by that byte
opens a comment, and whether the byte after a name is a space, part of the name or
something else; tests/integration/lex_driver.c answers the same questions with the proxy's
lexer. They must agree exactly. The same for whole UTF-8 characters. Through the proxy,
every other client character set is refused in read-only sessions however it was set, and
the issue's examples leave the server's global variables unchanged.
"""

import os
import subprocess
from pathlib import Path

import pymysql
import pytest
from pymysql.constants import CLIENT

REPO = Path(__file__).resolve().parents[2]
CHARSETS = ["utf8mb4", "utf8mb3", "latin1", "ascii", "binary"]
UNSUPPORTED = ["cp1250", "hp8", "latin7", "macroman", "hebrew", "gbk", "sjis", "latin2"]


class LexDriver:
    """build/tests/lex_driver: one line in, one line out."""

    def __init__(self):
        path = os.environ.get("LEX_DRIVER") or str(REPO / "build" / "tests" / "lex_driver")
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def ask(self, op, charset, data, mode=""):
        self.proc.stdin.write(f"{op} {charset} {data.hex()} {mode}\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def tokens(self, charset, data, mode=""):
        return self.ask("lex", charset, data, mode).split()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def lexer():
    d = LexDriver()
    yield d
    d.close()


def raw_conn(server, charset):
    conn = pymysql.connect(unix_socket=str(server.socket), user="root", password="",
                           charset="latin1", autocommit=True, connect_timeout=5,
                           read_timeout=30)
    conn.encoding = "latin-1"  # names come back as raw bytes
    conn.query(b"SET NAMES " + charset.encode())
    conn.query(b"SET character_set_results = NULL")
    return conn


def server_dash(conn, b):
    """True when the server reads "--" + b as the start of a comment."""
    try:
        conn.query(b"SELECT 'x' --" + b + b"\n, 2")
    except pymysql.err.MySQLError:
        return False
    r = conn._result
    return len(r.description) == 2 and r.rows[0][0] in ("x", b"x")


def server_after_name(conn, b):
    """What the server makes of bytes b right after a name: space, name or error."""
    try:
        conn.query(b"SELECT 1 AS q" + b)
    except pymysql.err.MySQLError:
        return "error"
    name = conn._result.description[0][0]
    return "space" if len(name) == 1 else "name"


def lexer_dash(lexer, charset, b):
    toks = lexer.tokens(charset, b"SELECT 'x' --" + b + b"\n, 2")
    return [t[0] for t in toks] == ["W", "S", "P", "N", "E"]


def lexer_after_name(lexer, charset, b):
    toks = lexer.tokens(charset, b"SELECT 1 AS q" + b)
    if toks[-1] == "ERR":
        return "error"
    if len(toks) >= 4 and toks[3].startswith("W:") and toks[3] != "W:12:1":
        return "name"
    if toks[3] == "W:12:1" and toks[4:] in (["END"], [";:13:1", "END"]):
        return "space"
    return "token"


@pytest.mark.parametrize("charset", CHARSETS)
def test_every_byte_reads_as_on_the_server(servers, lexer, charset):
    """Proves the lexer's byte classes (comment end after "--", space, name byte) are the
    server's for every byte 0x01-0xFF of each supported character set, and that the check
    refuses 0x00 there."""
    conn = raw_conn(servers.dev, charset)
    wrong = []
    try:
        for value in range(1, 256):
            b = bytes([value])
            s, lx = server_dash(conn, b), lexer_dash(lexer, charset, b)
            if s != lx:
                wrong.append(f"0x{value:02X} after --: server {s}, lexer {lx}")
            s, lx = server_after_name(conn, b), lexer_after_name(lexer, charset, b)
            # "error" on the server is a syntax error: the lexer may read a punctuation
            # token there (the grammar then fails on the server too) or refuse.
            if s != lx and not (s == "error" and lx in ("error", "token")):
                wrong.append(f"0x{value:02X} after a name: server {s}, lexer {lx}")
    finally:
        conn.close()
    # 0x00: the server takes a NUL byte for the end of the text; the proxy refuses it.
    for text in (b"SELECT 'x' --\x00\n, 2", b"SELECT 1 AS q\x00"):
        assert lexer.ask("check", charset, text) == "REFUSE NUL byte"
    assert not wrong, f"{charset}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("charset", ["utf8mb4", "utf8mb3"])
def test_utf8_characters_read_as_on_the_server(servers, lexer, charset):
    """Proves that whole UTF-8 characters continue a name on the server and in the lexer,
    and that what the lexer refuses (stray bytes, four-byte characters, surrogates) is an
    error on the server too."""
    seqs = []
    for lead in range(0xC0, 0x100):
        for cont in ([0x80], [0xBF], [0xA0, 0x80], [0x80, 0x80], [0x90, 0x80, 0x80],
                     [0x80, 0x80, 0x80]):
            seqs.append(bytes([lead] + cont))
    seqs += [b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xe0\x9f\xbf", b"\xc3"]
    conn = raw_conn(servers.dev, charset)
    wrong = []
    try:
        for seq in seqs:
            s = server_after_name(conn, seq)
            lx = lexer_after_name(lexer, charset, seq)
            # The lexer may refuse what the server reads as a name (four-byte characters,
            # which utf8mb3 reads apart, and surrogates): never the other way round.
            if (lx == "name" and s != "name") or lx == "space" or \
                    (s == "name" and lx not in ("name", "error")):
                wrong.append(f"{seq.hex()}: server {s}, lexer {lx}")
    finally:
        conn.close()
    assert not wrong, "\n".join(wrong)


def connect_prod(proxy, **kw):
    return proxy.connect(database="shop@prod", client_flag=CLIENT.MULTI_STATEMENTS, **kw)


def global_state(servers):
    return servers.sql("prod", "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM "
                               "information_schema.GLOBAL_VARIABLES ORDER BY 1")


@pytest.mark.parametrize("charset", UNSUPPORTED)
def test_unsupported_charset_is_refused_however_set(proxy, servers, charset):
    """Proves that a read-only session cannot use a character set outside the allowlist:
    SET NAMES, SET CHARACTER SET, character_set_client, collation_connection and the
    handshake are all refused with 1290 naming the set, and the server's globals stay."""
    before = global_state(servers)
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        for stmt in (f"SET NAMES {charset}", f"SET CHARACTER SET {charset}",
                     f"SET character_set_client = {charset}",
                     f"SET @@session.character_set_client = '{charset}'",
                     f"SET collation_connection = {charset}_bin"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                cur.execute(stmt)
            assert e.value.args[0] == 1290 and charset in e.value.args[1], (stmt, e.value.args)
        cur.execute("SELECT @@character_set_client")
        assert cur.fetchall()[0][0] == "utf8mb4"
    conn.close()
    if charset not in ("hp8",):  # PyMySQL has no Python codec for hp8
        conn = connect_prod(proxy, charset=charset, autocommit=None)
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.MySQLError) as e:
                cur.execute("SELECT 1")
            assert e.value.args[0] == 1290 and charset in e.value.args[1]
        conn.close()
    assert global_state(servers) == before


def test_issue_example_cp1250_carried_from_a_writable_environment(proxy, servers):
    """Proves the issue's example: a session that set cp1250 where it may write (dev) and
    then moves to prod is refused there, and the smuggled SET GLOBAL never runs."""
    before = global_state(servers)
    conn = proxy.connect(client_flag=CLIENT.MULTI_STATEMENTS)  # alice, dev: writable
    with conn.cursor() as cur:
        cur.execute("SET NAMES cp1250")
        cur.execute("USE shop@prod")
        with pytest.raises(pymysql.err.MySQLError) as e:
            conn._execute_command(3, b"SET @x = 1 --\x80 '\n, GLOBAL net_read_timeout = 31 -- '")
            conn._read_query_result()
        assert e.value.args[0] == 1290 and "cp1250" in e.value.args[1]
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT 1")
        assert e.value.args[0] == 1290
    conn.close()
    assert global_state(servers) == before


def test_latin1_comment_end_is_read_as_the_server_reads_it(proxy, servers):
    """Proves that in latin1, where 0xA0 ends "--", the proxy sees the SET GLOBAL the server
    would run, and that a name byte of latin1 is not a separator."""
    before = global_state(servers)
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        cur.execute("SET NAMES latin1")
        for stmt in (b"SET @x = 1 --\xa0 '\n, GLOBAL net_read_timeout = 31 -- '",
                     b"SELECT 1\xa0INTO @x",
                     b"SET NAMES latin1; SET @x = 1 --\xa0 '\n, GLOBAL net_read_timeout = 32 -- '"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                conn._execute_command(3, stmt)
                conn._read_query_result()
            assert e.value.args[0] == 1290, stmt
        conn.encoding = "latin-1"
        conn._execute_command(3, b"SELECT 1 AS caf\xe9")
        conn._read_query_result()
        assert conn._result.rows == ((1,),)
    conn.close()
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        # utf8mb4 session, latin1 set inside the packet: read as latin1 from there on.
        with pytest.raises(pymysql.err.MySQLError) as e:
            conn._execute_command(3, b"SET NAMES latin1; SELECT 1\xa0INTO @x")
            conn._read_query_result()
        assert e.value.args[0] == 1290
    conn.close()
    assert global_state(servers) == before


def test_change_user_charset_is_checked(proxy):
    """Proves that COM_CHANGE_USER's character set counts like the handshake's: a cp1250
    client that changes user into read-only prod is refused there, naming cp1250."""
    import MySQLdb
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice", passwd="alice-pw",
                           db="shop@dev", charset="cp1250", connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")  # dev: writable, any character set
        conn.change_user("alice", "alice-pw", "shop@prod")
        cur = conn.cursor()
        with pytest.raises(MySQLdb.OperationalError) as e:
            cur.execute("SELECT 1")
        assert e.value.args[0] == 1290 and "cp1250" in e.value.args[1]
    finally:
        conn.close()


def test_charset_set_without_session_tracking_is_still_followed(proxy, tmp_path):
    """Proves that when the server does not report a SET NAMES (session tracking switched
    off), the proxy still reads the next packets in the character set the text set as well:
    in latin1, 0xA0 after 0xC2 is a space, so "a\\xc2\\xa0INTO" hides INTO from a utf8
    reading; the statement is refused and no variable or file is written."""
    out = tmp_path / "smuggled.txt"
    conn = connect_prod(proxy)
    with conn.cursor() as cur:
        try:
            cur.execute("SET SESSION session_track_system_variables = ''")
        except pymysql.err.MySQLError as e:
            assert e.args[0] == 1290  # refused outright is fine too
        cur.execute("SET NAMES latin1")
        for stmt in (b"SELECT 1 AS a\xc2\xa0INTO @x",
                     b"SELECT 1 AS a\xc2\xa0INTO OUTFILE '" + str(out).encode() + b"'"):
            refused_by_proxy = False
            try:
                conn._execute_command(3, stmt)
                conn._read_query_result()
            except pymysql.err.MySQLError as e:
                refused_by_proxy = e.args[0] == 1290
            assert refused_by_proxy, stmt
        cur.execute("SELECT @x")
        assert cur.fetchall() == ((None,),)
    conn.close()
    assert not out.exists()


def test_mcp_sessions_get_the_same_character_set_rules(proxy, tmp_path):
    """Proves that the character set allowlist holds for `envproxy mcp` too: cp1250 and hp8
    are refused in read-only prod, naming the set."""
    from test_mcp import McpProcess
    m = McpProcess(proxy.port, tmp_path / "mcp.stderr")
    try:
        m.initialize()
        for sql, name in (("SET NAMES cp1250", "cp1250"), ("SET CHARACTER SET hp8", "hp8")):
            err = m.error("execute_query", {"sql": sql, "environment": "prod"})
            assert name in repr(err) and "not allowed" in repr(err), err
    finally:
        m.close()
