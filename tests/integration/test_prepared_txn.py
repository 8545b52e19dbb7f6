"""Prepared BEGIN, START TRANSACTION, COMMIT and ROLLBACK answer byte for byte as their text
forms do.

The proxy answers these statements itself when they are prepared (stmt_local.c), and an
EXECUTE of one written in plain words takes a short path (client_handle_txn_words) that
leaves out the steps of a query that cannot apply to it. These tests run the same sequence
of statements twice, once as COM_QUERY texts and once as EXECUTEs of prepared statements,
on raw connections, and compare every response payload (OK status flags, warnings, ERR
codes and messages): in a writable and in a read-only environment, inside and outside
transactions, under another sql_mode and with autocommit off, with multiplexing on and off,
and after a reload made the session's route read-only under an open transaction."""

import struct
import time

import pytest

from harness import server_state, state_diff
from rawmysql import Raw, err_of

COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17

# Transaction statements, in plain words and not (a comment, a ';' or a quote sends them
# the long way): each is prepared once and executed wherever a sequence names it.
TXN = ["BEGIN", "begin work", "BEGIN WORK", "COMMIT", "commit\twork", "ROLLBACK",
       "ROLLBACK WORK", "START TRANSACTION", "START TRANSACTION READ ONLY",
       "START TRANSACTION READ WRITE", "start transaction with consistent snapshot,\nread only",
       "COMMIT;", "/* c */ COMMIT", "BEGIN -- a comment\n", "SET TRANSACTION READ ONLY"]


class Session:
    """A raw connection that sends the statements of TXN as text (prepared=False) or as
    EXECUTEs of statements prepared once (prepared=True); any other statement goes as
    text."""

    def __init__(self, proxy, prepared, user="alice", password="alice-pw", db="shop"):
        self.raw = Raw(proxy.port)
        ok = self.raw.login(user, password, db=db)
        assert ok[:1] == b"\x00", err_of(ok)
        self.prepared = prepared
        self.ids = {}
        if prepared:
            for sql in TXN:
                self.raw.send_packet(bytes([COM_STMT_PREPARE]) + sql.encode(), seq=0)
                r = self.raw.recv_packet()
                assert r[:1] == b"\x00", (sql, err_of(r))
                stmt_id, cols, params = struct.unpack("<IHH", r[1:9])
                assert cols == 0 and params == 0, sql
                self.ids[sql] = stmt_id

    def run(self, sql):
        """The response payload of sql (an OK or ERR packet), or the rows of a result."""
        if self.prepared and sql in self.ids:
            self.raw.send_packet(bytes([COM_STMT_EXECUTE]) + struct.pack("<IBI", self.ids[sql],
                                                                         0, 1), seq=0)
            return self.raw.recv_packet()
        first = self.raw.query(sql)
        if first[:1] in (b"\x00", b"\xff"):
            return first
        return ("rows", self.raw.read_result())

    def close(self):
        self.raw.close()


def run_both(proxy, steps, **login):
    """The responses of steps as texts and as prepared statements, side by side."""
    out = []
    for prepared in (False, True):
        s = Session(proxy, prepared, **login)
        try:
            out.append([s.run(sql) for sql in steps])
        finally:
            s.close()
    return out


DATA = "SELECT COUNT(*) FROM customers"  # touches data: a held-back BEGIN starts with it

WRITABLE = [
    "COMMIT", "ROLLBACK", "BEGIN", "COMMIT", "BEGIN", "BEGIN WORK", "ROLLBACK WORK",
    "BEGIN", DATA, "COMMIT", "begin work", DATA, "commit\twork",
    "START TRANSACTION READ ONLY", DATA, "ROLLBACK",
    "start transaction with consistent snapshot,\nread only", DATA, "COMMIT",
    "START TRANSACTION READ WRITE", "UPDATE orders SET note = note WHERE id = 1", "ROLLBACK",
    "SET TRANSACTION READ ONLY", "BEGIN", DATA, "COMMIT",
    "BEGIN", DATA, "BEGIN", DATA, "COMMIT;", "/* c */ COMMIT", "BEGIN -- a comment\n",
    DATA, "COMMIT",
    # Another sql_mode: plain words read the same; the held connection reads it.
    "SET sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'", "BEGIN", DATA, "COMMIT",
    "START TRANSACTION", "ROLLBACK",
    "SET sql_mode = DEFAULT",
    # autocommit off: a read opens a snapshot on the backend that COMMIT ends.
    "SET autocommit = 0", DATA, "COMMIT", "BEGIN", DATA, "ROLLBACK", "COMMIT",
    "SET autocommit = 1", "COMMIT",
]


@pytest.mark.parametrize("multiplex", [True, False])
def test_transaction_statements_answer_as_their_texts(make_proxy, multiplex):
    """In writable dev (multiplexing on and off): every response of the sequence, inside
    and outside transactions, under ANSI_QUOTES,NO_BACKSLASH_ESCAPES and with autocommit
    off, is the same byte for byte whether the transaction statements are texts or
    prepared."""
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"multiplex": multiplex}}}})
    text, prepared = run_both(p, WRITABLE)
    assert prepared == text
    # The sequence did what it says: a refusal is not what made them equal.
    assert all(r[:1] != b"\xff" for r in text if isinstance(r, bytes)), text


def test_transaction_statements_in_read_only_prod_answer_as_their_texts(proxy):
    """In read-only prod (bob): START TRANSACTION READ WRITE is refused (1290) with the same
    message either way, and the rest answers the same."""
    steps = ["START TRANSACTION READ WRITE", "BEGIN", DATA, "COMMIT", "ROLLBACK",
             "START TRANSACTION READ ONLY", DATA, "ROLLBACK", "BEGIN", "COMMIT"]
    text, prepared = run_both(proxy, steps, user="bob", password="bob-pw", db="shop@prod")
    assert prepared == text
    assert text[0][:1] == b"\xff" and err_of(text[0])[0] == 1290, text[0]


def wait_refused(s, deadline_s=15):
    """Polls (bounded) until a write of the session is refused (1290): the reload is in."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = s.run("UPDATE orders SET note = 'x' WHERE 1 = 0")
        if r[:1] == b"\xff" and err_of(r)[0] == 1290:
            return
        assert time.monotonic() < deadline, "the reload was not applied"
        time.sleep(0.1)


def test_commit_after_a_reload_made_the_route_read_only(make_proxy, servers):
    """alice opens a transaction with an INSERT in dev on two connections; her grant on dev
    becomes read-only and the proxy reloads. A text COMMIT and a prepared COMMIT get the
    same 1213 (the transaction is rolled back, not committed), dev is unchanged, and the
    transaction statements after it answer the same in the read-only session."""
    p = make_proxy()
    servers.sql("dev", "DELETE FROM shop.orders WHERE id IN (990, 991)")
    sessions = [Session(p, False), Session(p, True)]
    probe = Session(p, False)
    try:
        before = server_state(servers.dev)
        for i, s in enumerate(sessions):
            assert s.run("BEGIN")[:1] == b"\x00"
            r = s.run("INSERT INTO orders (id, customer_id, status, total, created_at) "
                      f"VALUES ({990 + i}, 1, 'x', 1, NOW())")
            assert r[:1] == b"\x00", err_of(r)
        p.cli("user", "grant", "alice", "dev", "read")
        p.reload()
        wait_refused(probe)
        answers = [s.run("COMMIT") for s in sessions]
        assert answers[0][:1] == b"\xff" and err_of(answers[0])[0] == 1213, answers[0]
        assert answers[1] == answers[0]
        diff = state_diff(before, server_state(servers.dev))
        assert not diff, f"dev changed (an INSERT was committed?): {diff}"
        steps = ["BEGIN", DATA, "COMMIT", "START TRANSACTION READ WRITE", "ROLLBACK"]
        text, prepared = ([s.run(sql) for sql in steps] for s in sessions)
        assert prepared == text
        assert err_of(text[3])[0] == 1290, text[3]
    finally:
        for s in sessions + [probe]:
            s.close()
        p.cli("user", "grant", "alice", "dev", "write")
        servers.sql("dev", "DELETE FROM shop.orders WHERE id IN (990, 991)")


def test_transaction_words_refused_in_an_unsupported_character_set(make_proxy, servers):
    """A read-only session (bob in prod) whose client character set, from the handshake,
    is cp1250 (outside the lexer's allowlist): BEGIN, START TRANSACTION READ ONLY, COMMIT
    and ROLLBACK, as text and as EXECUTEs of prepared statements, never reach the server:
    the held-back BEGIN is refused (1290) with the first statement of the transaction, a
    COMMIT or ROLLBACK without one is refused (1290) itself, and prod's state is unchanged.
    The proxy reads such words without its lexer: the character-set rule must still
    apply."""
    from rawmysql import native_auth
    p = make_proxy()
    before = server_state(servers.prod)
    for prepared in (False, True):
        raw = Raw(p.port)
        raw.read_greeting()
        hs = bytearray(raw.handshake_payload("bob", native_auth("bob-pw", raw.scramble),
                                             db="shop@prod"))
        hs[8] = 26  # cp1250_general_ci
        raw.send_packet(bytes(hs))
        r = raw.recv_packet()
        if r[:1] == b"\xfe":
            raw.scramble = r[r.index(b"\0", 1) + 1:].rstrip(b"\0")
            raw.send_packet(native_auth("bob-pw", raw.scramble))
            r = raw.recv_packet()
        assert r[:1] == b"\x00", err_of(r)
        ids = {}

        def run(sql):
            if not prepared:
                return raw.query(sql)
            if sql not in ids:
                raw.send_packet(bytes([COM_STMT_PREPARE]) + sql.encode(), seq=0)
                ok = raw.recv_packet()
                if ok[:1] != b"\x00":
                    return ok
                ids[sql] = struct.unpack("<I", ok[1:5])[0]
                cols, params = struct.unpack("<HH", ok[5:9])
                for _ in range(cols + params + (1 if cols + params else 0)):
                    raw.recv_packet()
            raw.send_packet(bytes([COM_STMT_EXECUTE]) + struct.pack("<IBI", ids[sql], 0, 1),
                            seq=0)
            return raw.recv_packet()

        try:
            for begin in ("BEGIN", "begin work", "START TRANSACTION READ ONLY"):
                r = run(begin)
                if r[:1] == b"\x00":  # held back: refused with the first read
                    r = raw.query("SELECT 1")
                    assert r[:1] == b"\xff" and err_of(r)[0] == 1290, (prepared, begin, r)
                    run("ROLLBACK")  # ends the held-back BEGIN (answered by the proxy)
                else:
                    assert err_of(r)[0] == 1290, (prepared, begin, r)
            for end in ("COMMIT", "commit work", "ROLLBACK", "ROLLBACK WORK"):
                r = run(end)
                assert r[:1] == b"\xff" and err_of(r)[0] == 1290, (prepared, end, r)
        finally:
            raw.close()
    diff = state_diff(before, server_state(servers.prod))
    assert not diff, f"prod changed: {diff}"
