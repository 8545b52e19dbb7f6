"""A bounded differential test of the lexer against a real server.

Random texts are built from harmless reads (SELECT n, 'string') joined by ';', with noise
between their tokens: quotes, backslashes, comments, "--" followed by every kind of byte,
executable comments. For each text the proxy's lexer (tests/integration/lex_driver.c) says
which statements it reads; texts it reads as exactly a list of SELECT n [, 'string'] are sent
to the server (as root, multi-statements on, in each supported character set), whose result
sets must be those n in that order. A text the lexer refuses is skipped: the proxy would not
forward it. The seed is fixed and the run bounded in count and time.
"""

import random
import time

import pymysql
import pytest
from pymysql.constants import CLIENT

from test_lexer_server import LexDriver

TEXTS_PER_READING = 300
TIME_BUDGET_S = 30
# (character set, sql_mode): every supported set, and the quoting modes in utf8mb4.
READINGS = [("utf8mb4", ""), ("latin1", ""), ("ascii", ""), ("binary", ""),
            ("utf8mb4", "ANSI_QUOTES"), ("utf8mb4", "NO_BACKSLASH_ESCAPES"),
            ("utf8mb4", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES")]


@pytest.fixture(scope="module")
def lexer():
    d = LexDriver()
    yield d
    d.close()


def noise(rng):
    # Half of the bytes after "--" from where character sets differ: controls, 0x7F-0xA0.
    b = bytes([rng.randrange(1, 256) if rng.random() < 0.5 else
               rng.choice(list(range(1, 0x21)) + list(range(0x7F, 0xA1)) + [0xFF])])
    return rng.choice([
        b" ", b"\n", b"\t", b"/**/", b"/* ; SELECT 90 */", b"#; SELECT 91\n",
        b"-- ; SELECT 92\n", b"--" + b + b" ; SELECT 93\n", b"--" + b + b"\n",
        b"--" + b, b"-" + b, b"/*!40101 */", b"/*+ x */",
    ])


def junk_string(rng):
    q = rng.choice([b"'", b'"'])
    body = b"".join(rng.choice([b"a", b";", b"\\", b"\\\\", q + q, b"--", b"\n", b"#",
                                b"/*", b"*/", b"\\" + q, bytes([rng.randrange(0x20, 256)])])
                    for _ in range(rng.randrange(0, 6)))
    return q + body + q


def make_text(rng):
    stmts = []
    for _ in range(rng.randrange(1, 4)):
        n = rng.randrange(1, 1000)
        toks = [b"SELECT", str(n).encode()]
        if rng.random() < 0.5:
            toks += [b",", junk_string(rng)]
        out = b""
        for t in toks:
            out += t + (noise(rng) if rng.random() < 0.5 else b" ")
        if rng.random() < 0.1:
            out = b"/*!40101 " + out + b" */"
        stmts.append(out)
    return b";".join(s + (noise(rng) if rng.random() < 0.3 else b"") for s in stmts)


def lexer_reading(lexer, charset, mode, text):
    """The n of each statement when the lexer reads text as SELECT n [, 'string'] statements
    only; None when it refuses the text or reads anything else."""
    toks = lexer.tokens(charset, text, mode)
    if toks[-1] != "END":
        return None
    stmts, cur = [], []
    for t in toks[:-1] + [";:0:0"]:
        kind, start, length = t.split(":")
        if kind == ";":
            if cur:
                stmts.append(cur)
            cur = []
        else:
            cur.append((kind, text[int(start):int(start) + int(length)]))
    values = []
    for st in stmts:
        kinds = [k for k, _ in st]
        if kinds not in (["W", "N"], ["W", "N", "P", "S"], ["W", "N", "P", "Q"]) or \
                st[0][1].upper() != b"SELECT" \
                or (len(st) == 4 and st[2][1] != b","):
            return None
        values.append(int(st[1][1]))
    return values


def server_reading(conn, text):
    """The first column of each result set, or the error code."""
    try:
        conn._execute_command(3, text)
        conn._read_query_result()
        got = [conn._result.rows[0][0]]
        while conn._result is not None and conn._result.has_next:
            conn.next_result()
            got.append(conn._result.rows[0][0])
        return got
    except pymysql.err.MySQLError as e:
        return ("error", e.args[0])


def open_conn(servers, charset, mode):
    conn = pymysql.connect(unix_socket=str(servers.dev.socket), user="root", password="",
                           charset="latin1", autocommit=True, read_timeout=10,
                           client_flag=CLIENT.MULTI_STATEMENTS)
    conn.encoding = "latin-1"
    conn.query(b"SET NAMES " + charset.encode())
    conn.query(b"SET SESSION sql_mode = '" + mode.encode() + b"'")
    return conn


@pytest.mark.parametrize("charset,mode", READINGS)
def test_random_texts_end_where_the_server_ends_them(servers, lexer, charset, mode):
    """Proves, over bounded random texts, that every text the lexer reads as a list of
    harmless SELECTs is, on the server, exactly those SELECTs: same statements, same order,
    nothing hidden in what the lexer took for a comment, string or quoted name."""
    rng = random.Random(f"lexer-diff-{charset}-{mode}")
    conn = open_conn(servers, charset, mode)
    deadline = time.monotonic() + TIME_BUDGET_S
    compared = 0
    wrong = []
    try:
        for _ in range(TEXTS_PER_READING):
            if time.monotonic() > deadline:
                break
            text = make_text(rng)
            want = lexer_reading(lexer, charset, mode, text)
            if want is None:
                continue
            got = server_reading(conn, text)
            if got == ("error", 1064) or (isinstance(got, list) and
                                          [int(v) for v in got] != want):
                wrong.append(f"{text!r}: lexer {want}, server {got}")
            if isinstance(got, tuple):  # a server error: the connection state is unknown
                conn.close()
                conn = open_conn(servers, charset, mode)
            compared += 1
    finally:
        conn.close()
    assert not wrong, "\n".join(wrong[:20])
    assert compared >= 50, compared
