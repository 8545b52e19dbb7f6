"""The MySQL front door after a valid login, attacked command by command with raw packets:
truncated, over-long, inconsistent and boundary payloads of COM_STMT_* (wrong ids, flags and
cursor types, short null bitmaps, odd parameter types, length prefixes that lie, MariaDB's
bulk execute and "last prepared" id), COM_CHANGE_USER (malformed, to an account with fewer
rights, with a transaction or statements alive), the small commands (COM_FIELD_LIST,
COM_PROCESS_INFO, COM_STATISTICS, COM_PING, COM_SET_OPTION, COM_RESET_CONNECTION, COM_QUERY
with an empty payload), packets of exactly 0xffffff bytes with continuations (a write split
across them, one that never comes, one past max_packet_size, one out of sequence), and the
capability combinations of the handshake (no PROTOCOL_41, DEPRECATE_EOF, lying connection
attributes and LENENC auth lengths, unknown plugins, SSLRequest then plain text, charset 0
and unknown collation ids).

What each test proves: the attacking client gets a clear error or its connection is closed;
the same session (where it stays open) still answers; the proxy keeps serving fresh PyMySQL
clients on dev and prod; no sanitizer report appears in its log (checked after every test by
conftest); and prod, a read-only environment whose backend account has ALL PRIVILEGES, is
unchanged by any of these shapes (harness.server_state before and after).
"""

import socket
import struct
import time

import pytest

from fakebackend import OK as FAKE_OK, FakeBackend, LoopbackListener, _pkt
from harness import Account, free_port, server_state, state_diff
from rawmysql import (BASE_CAPS, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF,
                      CLIENT_PROTOCOL_41, CLIENT_SSL, Closed, Raw, err_of, native_auth)

CLIENT_CONNECT_ATTRS = 0x100000
CLIENT_PLUGIN_AUTH_LENENC = 0x200000
PKT_MAX = 0xFFFFFF
MAX_PACKET = 20 * 1024 * 1024  # max_packet_size of this module's proxy

# MYSQL_TYPE_* numbers
T_TINY, T_LONG, T_NULL, T_LONGLONG, T_YEAR = 0x01, 0x03, 0x06, 0x08, 0x0D
T_DATETIME, T_TIME, T_JSON, T_NEWDECIMAL = 0x0C, 0x0B, 0xF5, 0xF6
T_BLOB, T_VAR_STRING, T_STRING, T_GEOMETRY = 0xFC, 0xFD, 0xFE, 0xFF


@pytest.fixture(scope="module")
def p(make_module_proxy):
    return make_module_proxy({"max_packet_size": MAX_PACKET,
                              "login_throttle": {"max_failures": 1000, "block": "1s"}})


@pytest.fixture
def prod_state(servers):
    """Asserts after the test that prod (read-only) did not change."""
    before = server_state(servers.prod)
    yield
    diff = state_diff(before, server_state(servers.prod))
    assert not diff, f"prod changed: {diff}"


def login(p, user="alice", password="alice-pw", db=None, caps=BASE_CAPS):
    r = Raw(p.port, timeout=10)
    r.read_greeting()
    r.send_packet(r.handshake_payload(user, native_auth(password, r.scramble), db=db,
                                      caps=caps))
    answer = r.recv_packet()
    if answer[:1] == b"\xfe":
        i = answer.index(b"\0", 1) + 1
        r.scramble = answer[i:].rstrip(b"\0")
        r.send_packet(native_auth(password, r.scramble))
        answer = r.recv_packet()
    assert answer[:1] == b"\x00", err_of(answer)
    return r


def read_response(r, fields=False, stats=False):
    """One command's whole answer: ('err', code), ('ok',) or ('rows', [payloads]); with
    fields (COM_FIELD_LIST) ('fields', [definitions]), with stats (COM_STATISTICS)
    ('stats', text)."""
    first = r.recv_packet()
    if first[:1] == b"\xff":
        return ("err", err_of(first)[0])
    if stats:
        return ("stats", first)
    if fields:  # COM_FIELD_LIST: column definitions, then EOF
        fields = [first]
        while not (fields[-1][:1] == b"\xfe" and len(fields[-1]) < 9):
            assert len(fields) < 10000, "endless field list"
            fields.append(r.recv_packet())
        return ("fields", fields[:-1])
    if first[:1] == b"\x00":
        return ("ok",)
    if first[:1] == b"\xfe" and len(first) < 9:
        return ("eof",)  # COM_SET_OPTION's answer
    ncols = first[0] if first[0] < 251 else struct.unpack("<H", first[1:3])[0]
    for _ in range(ncols):
        r.recv_packet()
    if not getattr(r, "deprecate_eof", False):
        r.recv_packet()  # EOF after the column definitions
    rows = []
    for _ in range(100000):
        q = r.recv_packet()
        if q[:1] == b"\xfe" and len(q) < 0xFFFFFF:
            break
        if q[:1] == b"\xff":
            return ("err", err_of(q)[0])
        rows.append(q)
    else:
        raise AssertionError("endless result")
    return ("rows", rows)


def prepare(r, sql):
    """(statement id, number of params) after a PREPARE that must succeed."""
    r.send_packet(b"\x16" + sql.encode(), seq=0)
    first = r.recv_packet()
    assert first[:1] == b"\x00", (sql, err_of(first))
    sid, ncols, nparams = struct.unpack("<IHH", first[1:9])
    eof = 0 if getattr(r, "deprecate_eof", False) else 1
    for count in (nparams, ncols):
        if count:
            for _ in range(count):
                d = r.recv_packet()
                assert d[:4] == b"\x03def", d[:20]  # a column definition
            if eof:
                d = r.recv_packet()
                assert d[:1] == b"\xfe" and len(d) < 9, d[:20]
    return sid, nparams


_probe = [0]


def probe(r):
    """The session still answers a plain statement; returns False when it was closed."""
    _probe[0] += 1
    tag = f"alive-{_probe[0]}"
    try:
        r.send_packet(b"\x03SELECT '" + tag.encode() + b"'", seq=0)
        kind = read_response(r)
    except (Closed, ConnectionResetError, BrokenPipeError):
        return False
    assert kind[0] == "rows" and kind[1][-1] == bytes([len(tag)]) + tag.encode(), kind
    return True


def answer_then_probe(r, payload, expect=("err",), seq=0, reply=True):
    """Sends payload as one command and reads its answer: one of expect's kinds (or the
    connection closed, when "closed" is in expect). Then the session answers a plain
    statement, unless it was closed. Returns the answer."""
    r.sock.settimeout(10)
    try:
        r.send_packet(payload, seq=seq)
        got = read_response(r, fields=payload[:1] == b"\x04",
                            stats=payload[:1] == b"\x09") if reply else ("none",)
    except (Closed, ConnectionResetError, BrokenPipeError):
        assert "closed" in expect, f"{payload[:24]!r}: closed"
        return ("closed",)
    except socket.timeout:
        raise AssertionError(f"{payload[:24]!r}: no answer")
    assert got[0] in expect, f"{payload[:24]!r}: {got}"
    assert probe(r), f"{payload[:24]!r}: the session was closed after {got}"
    return got


def serves_everyone(p):
    """Fresh PyMySQL clients log in and read from dev and prod."""
    for env, n in (("dev", 11), ("prod", 12)):
        conn = p.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"/* env={env} */ SELECT {n}")
                assert cur.fetchall() == ((n,),)
        finally:
            conn.close()
    assert p.alive()


def execute(sid, flags=0, iters=1, rest=b""):
    return struct.pack("<BIBI", 0x17, sid, flags, iters) + rest


def types(*pairs):
    return b"".join(bytes([t, f]) for t, f in pairs)


def lenenc(b):
    n = len(b)
    if n < 251:
        return bytes([n]) + b
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n) + b
    return b"\xfd" + struct.pack("<I", n)[:3] + b


# ---- COM_STMT_EXECUTE ----------------------------------------------------------------------


def test_execute_malformed_backend_statement(p, prod_state):
    """A backend statement of two parameters (prepared in prod, read-only) executed with
    every broken shape: short packets, short null bitmaps, no types on the first EXECUTE,
    cursor and unknown flags, odd and unknown types, the unsigned flag, length prefixes
    that claim more than the packet, 0xfb/0xff/0xfe prefixes, a new-params-bound flag
    other than 1, iteration counts 0 and 2^32-1, trailing bytes. Each gets an error or a
    result; the session and the proxy go on."""
    r = login(p, db="shop@prod")
    try:
        sid, n = prepare(r, "SELECT ? AS a, ? AS b")
        assert n == 2
        good = types((T_LONGLONG, 0), (T_VAR_STRING, 0)) + struct.pack("<q", 7) + lenenc(b"ab")
        # The first EXECUTE without types: nothing to read the values with.
        answer_then_probe(r, execute(sid, rest=b"\x00\x00"), ("err",))
        for flags in (0x00, 0x01, 0x02, 0x04, 0x08, 0x80, 0xFF):
            answer_then_probe(r, execute(sid, flags, rest=b"\x00\x01" + good), ("rows", "err"))
        cases = [
            b"\x17", b"\x17" + struct.pack("<I", sid), execute(sid)[:6], execute(sid),
            execute(sid, rest=b"\x00"),  # null bitmap, no bound flag
            execute(sid, rest=b"\x00\x01\x08"),  # half a type
            execute(sid, rest=b"\x00\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0))),
            execute(sid, rest=b"\x00\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0)) +
                    b"\x01\x02"),  # a LONGLONG cut short
            execute(sid, rest=b"\x00\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0)) +
                    struct.pack("<q", 1) + b"\xfc\xff\xff" + b"ab"),
            execute(sid, rest=b"\x00\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0)) +
                    struct.pack("<q", 1) + b"\xfd\xff\xff\xff"),
            execute(sid, rest=b"\x00\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0)) +
                    struct.pack("<q", 1) + b"\xfe" + b"\xff" * 8 + b"x"),
            execute(sid, rest=b"\x00\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0)) +
                    struct.pack("<q", 1) + b"\xfb"),
            execute(sid, rest=b"\x00\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0)) +
                    struct.pack("<q", 1) + b"\xff"),
            execute(sid, rest=b"\x03\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0))),
            execute(sid, rest=b"\xff\x01" + types((T_LONGLONG, 0), (T_VAR_STRING, 0)) +
                    b"\xff" * 40),
            execute(sid, iters=0, rest=b"\x00\x01" + good),
            execute(sid, iters=0xFFFFFFFF, rest=b"\x00\x01" + good),
            execute(sid, rest=b"\x00\x01" + good + b"\xee" * 300),
        ]
        for t in (T_JSON, T_GEOMETRY, T_NULL, T_YEAR, T_DATETIME, T_TIME, T_NEWDECIMAL,
                  T_BLOB, T_STRING, 0x20, 0xF3, 0x10, 0x00):
            for flag in (0x00, 0x80, 0xFF):
                cases.append(execute(sid, rest=b"\x00\x01" + types((t, flag), (t, flag)) +
                                     lenenc(b"\x05\x00\x00\x00x") + b"\xfc\x10"))
        for payload in cases:
            answer_then_probe(r, payload, ("err", "rows", "closed"))
        # Types sent once, then a new-params-bound flag other than 0 and 1 and no types:
        # the server reads any non-zero flag as "types follow", as the proxy must.
        answer_then_probe(r, execute(sid, rest=b"\x00\x01" + good), ("rows",))
        for flag in (b"\x02", b"\x80", b"\xff"):
            answer_then_probe(r, execute(sid, rest=b"\x00" + flag + good), ("rows", "err"))
        # Parameters on a statement that has none.
        sid0, n0 = prepare(r, "SELECT 1")
        assert n0 == 0
        for rest in (b"", b"\x00", b"\x00\x01\x08\x00" + b"\x00" * 8, b"\xff" * 500):
            answer_then_probe(r, execute(sid0, rest=rest), ("rows", "err"))
        # A write in prod, as any statement shape: never prepared.
        r.send_packet(b"\x16UPDATE orders SET note = 'x' WHERE id = 1", seq=0)
        assert read_response(r) == ("err", 1290)
    finally:
        r.close()
    serves_everyone(p)


def test_execute_new_params_flag_other_than_0_or_1(p):
    """MariaDB takes a new-params-bound flag of 0 or 1 only and refuses any other (1835).
    So does the proxy, for a backend statement and for one it answers itself (__envs),
    which read the values of a flag of 2 with the types sent before."""
    r = login(p, db="shop@dev")
    try:
        for sql in ("SELECT ? AS v", "SELECT name FROM __envs.environments WHERE name = ?"):
            sid, n = prepare(r, sql)
            assert n == 1
            got = answer_then_probe(r, execute(sid, rest=b"\x00\x01" + types((T_VAR_STRING, 0)) +
                                               lenenc(b"dev")), ("rows",))
            assert got[1][-1].endswith(b"dev"), got
            for flag in (b"\x02", b"\x80", b"\xff"):
                for rest in (lenenc(b"dev"), types((T_VAR_STRING, 0)) + lenenc(b"dev")):
                    got = answer_then_probe(r, execute(sid, rest=b"\x00" + flag + rest),
                                            ("err",))
                    assert got == ("err", 1835), (sql, flag, got)
            got = answer_then_probe(r, execute(sid, rest=b"\x00\x00" + lenenc(b"dev")),
                                    ("rows",))
            assert got[1][-1].endswith(b"dev"), got
    finally:
        r.close()


def test_bulk_execute_and_last_prepared_id(p, prod_state):
    """COM_STMT_BULK_EXECUTE (0xfa; the proxy does not announce bulk operations) is an
    unknown command whatever follows, its indicator bytes included. Statement id -1
    (MariaDB's "the one prepared last") means nothing before a PREPARE or after a failed
    one, and the last good statement after one."""
    r = login(p, db="shop@prod")
    try:
        for rest in (b"", struct.pack("<IH", 1, 0x80), struct.pack("<IH", 0xFFFFFFFF, 0x80) +
                     types((T_LONG, 0)) + b"\x00" + struct.pack("<i", 5) + b"\x01\x05\x06",
                     b"\xff" * 300):
            assert answer_then_probe(r, b"\xfa" + rest, ("err",)) == ("err", 1047)
        for cmd in (0x17, 0x1A, 0x1C):
            answer_then_probe(r, bytes([cmd]) + b"\xff\xff\xff\xff" + b"\x00\x01\x00\x00\x00",
                              ("err",))
        for cmd in (0x18, 0x19):  # no reply
            answer_then_probe(r, bytes([cmd]) + b"\xff\xff\xff\xff" + b"\x00\x01\x00\x00\x00",
                              ("none",), reply=False)
        sid, _ = prepare(r, "SELECT ? + 1")
        r.send_packet(b"\x16UPDATE orders SET note = 'y' WHERE id = 1", seq=0)
        assert read_response(r) == ("err", 1290)
        # The failed PREPARE leaves -1 naming nothing (not the SELECT, not the UPDATE).
        got = answer_then_probe(r, execute(0xFFFFFFFF, rest=b"\x00\x01" + types((T_LONG, 0)) +
                                           struct.pack("<i", 1)), ("err",))
        assert got == ("err", 1243)
        sid2, _ = prepare(r, "SELECT ? + 2")
        got = answer_then_probe(r, execute(0xFFFFFFFF, rest=b"\x00\x01" + types((T_LONG, 0)) +
                                           struct.pack("<i", 1)), ("rows",))
        assert got[1][-1] == b"\x00\x00" + struct.pack("<q", 3), got
        assert sid2 != sid
    finally:
        r.close()
    serves_everyone(p)


def test_long_data_fetch_reset_close(p, prod_state):
    """SEND_LONG_DATA to unknown statements, to parameters out of range, and more of it
    than any statement may hold; FETCH without a cursor and for 2^32-1 rows; RESET and
    CLOSE of unknown ids and twice; EXECUTE after CLOSE. The same for a statement the
    proxy answers itself (__envs)."""
    r = login(p, db="shop@prod")
    try:
        sid, _ = prepare(r, "SELECT ? AS v")
        lsid, ln = prepare(r, "SELECT name FROM __envs.environments WHERE name = ?")
        assert ln == 1
        for target in (sid, lsid, 0, 77777, 0xFFFFFFFF):
            for param in (0, 1, 0xFFFF):
                answer_then_probe(r, b"\x18" + struct.pack("<IH", target, param) + b"x" * 100,
                                  reply=False, expect=("none",))
            answer_then_probe(r, b"\x1c" + struct.pack("<II", target, 0xFFFFFFFF), ("err",))
            answer_then_probe(r, b"\x1c" + struct.pack("<I", target), ("err",))
        answer_then_probe(r, b"\x1a" + struct.pack("<I", sid), ("ok",))
        answer_then_probe(r, b"\x1a" + struct.pack("<I", lsid), ("ok",))
        # Long data beyond what the proxy keeps for its own statements: EXECUTE says so.
        chunk = b"y" * (512 * 1024)
        for _ in range(3):
            answer_then_probe(r, b"\x18" + struct.pack("<IH", lsid, 0) + chunk, reply=False,
                              expect=("none",))
        got = answer_then_probe(r, execute(lsid, rest=b"\x00\x01" + types((T_VAR_STRING, 0))),
                                ("err",))
        assert got == ("err", 1153)
        # Long data to a backend statement, larger than a packet to the client.
        for _ in range(3):
            answer_then_probe(r, b"\x18" + struct.pack("<IH", sid, 0) + chunk, reply=False,
                              expect=("none",))
        answer_then_probe(r, execute(sid, rest=b"\x00\x01" + types((T_BLOB, 0))),
                          ("rows", "err"))
        for target in (sid, lsid):
            for _ in range(2):
                answer_then_probe(r, b"\x19" + struct.pack("<I", target), reply=False,
                                  expect=("none",))
            assert answer_then_probe(r, b"\x1a" + struct.pack("<I", target),
                                     ("err",)) == ("err", 1243)
            assert answer_then_probe(r, execute(target, rest=b"\x00\x01\x08\x00" + b"\0" * 8),
                                     ("err",)) == ("err", 1243)
        for payload in (b"\x19", b"\x19\x01", b"\x18", b"\x18\x01\x00\x00\x00\x00"):
            answer_then_probe(r, payload, reply=False, expect=("none",))
        for payload in (b"\x1a", b"\x1a\x01\x00", b"\x1c", b"\x1c\x01\x00\x00"):
            answer_then_probe(r, payload, ("err",))
    finally:
        r.close()
    serves_everyone(p)


def test_compare_parameters_cannot_write_prod(p, prod_state):
    """__compare.query prepared with its SQL as a parameter: a write bound as a string, as
    long data, as a JSON or BLOB value, or with a quote and backslash in it, is checked
    like any statement of prod and refused; prod is unchanged."""
    r = login(p, db="shop@dev")
    try:
        sid, n = prepare(r, "SELECT * FROM __compare.query WHERE envs = ? AND sql = ?")
        assert n == 2
        writes = [b"UPDATE shop.orders SET note = 'w' WHERE id = 1",
                  b"x\\' OR 1 = 1; UPDATE shop.orders SET note = 'w' WHERE id = 1 -- ",
                  b"SELECT 1; DELETE FROM shop.orders",
                  b"/*!99999 SELECT 1 */ DROP TABLE shop.orders"]
        for sql in writes:
            for t in (T_VAR_STRING, T_JSON, T_BLOB, T_STRING, T_GEOMETRY):
                got = answer_then_probe(
                    r, execute(sid, rest=b"\x00\x01" + types((T_VAR_STRING, 0), (t, 0)) +
                               lenenc(b"prod") + lenenc(sql)), ("err", "rows"))
                assert got[0] == "err" or all(b"Query OK" not in row for row in got[1]), got
            answer_then_probe(r, b"\x18" + struct.pack("<IH", sid, 1) + sql, reply=False,
                              expect=("none",))
            answer_then_probe(r, execute(sid, rest=b"\x00\x01" + types((T_VAR_STRING, 0),
                                                                     (T_BLOB, 0)) +
                                         lenenc(b"prod")), ("err", "rows"))
    finally:
        r.close()
    serves_everyone(p)


# ---- COM_CHANGE_USER -----------------------------------------------------------------------


def change_user(user, auth, db=b"", charset=struct.pack("<H", 45),
                plugin=b"mysql_native_password\0", extra=b""):
    return b"\x11" + user + b"\0" + bytes([len(auth)]) + auth + db + b"\0" + charset + \
        plugin + extra


def test_change_user_malformed(p):
    """Truncated COM_CHANGE_USER packets, auth lengths past the end, a charset of one
    byte, charsets 0, 255 and above 255, unknown plugins, connection attributes that lie
    about their length: an error and a closed connection, or a switch to
    mysql_native_password and a normal login; the proxy goes on."""
    bad = [b"\x11", b"\x11alice", b"\x11alice\0", b"\x11alice\0\xff" + b"a" * 20,
           b"\x11alice\0\x14" + b"a" * 19]
    for payload in bad:
        r = login(p)
        try:
            r.send_packet(payload, seq=0)
            try:
                got = read_response(r)
                assert got[0] == "err" and got[1] in (1835, 1045), got
                r.expect_closed()
            except (Closed, ConnectionResetError):
                pass
        finally:
            r.close()
    odd = [dict(charset=b"\x2d"), dict(charset=b"\x00\x00"), dict(charset=b"\xff\x00"),
           dict(charset=b"\x21\x01"), dict(charset=b"\xff\xff"),
           dict(plugin=b"no_such_plugin\0"), dict(plugin=b"p" * 3000),
           dict(plugin=b"mysql_native_password\0", extra=b"\xfc\xff\xff\x03abc"),
           dict(plugin=b"mysql_native_password\0", extra=b"\xfe" + b"\xff" * 8)]
    for kw in odd:
        r = login(p)
        try:
            r.send_packet(change_user(b"bob", native_auth("bob-pw", r.scramble), **kw), seq=0)
            first = r.recv_packet()
            if first[:1] == b"\xfe":
                i = first.index(b"\0", 1) + 1
                r.send_packet(native_auth("bob-pw", first[i:].rstrip(b"\0")))
                first = r.recv_packet()
            assert first[:1] in (b"\x00", b"\xff"), (kw, first[:40])
            if first[:1] == b"\x00":
                # bob reads prod and cannot write it, whatever charset he claimed.
                r.send_packet(b"\x03UPDATE shop.orders SET note = 'cu' WHERE id = 1", seq=0)
                assert read_response(r)[0] == "err"
                assert probe(r)
        finally:
            r.close()
    serves_everyone(p)


def test_change_user_charset_above_255_is_not_cut_to_another(p):
    """COM_CHANGE_USER carries a two-byte collation id. An id above 255 is not cut to its
    low byte (0x0154 is not collation 0x54, big5_bin): the session gets the server's
    default character set, as for an unknown id, and reads UTF-8 text as UTF-8."""
    r = login(p, db="shop@dev")
    try:
        r.send_packet(change_user(b"alice", native_auth("alice-pw", r.scramble),
                                  db=b"shop@dev", charset=struct.pack("<H", 0x0154)), seq=0)
        assert r.recv_packet()[:1] == b"\x00"
        r.send_packet(b"\x03SELECT @@character_set_client", seq=0)
        got = read_response(r)
        assert got[0] == "rows" and got[1][-1][1:] != b"big5", got
    finally:
        r.close()


def test_change_user_drops_statements_and_transaction(p, servers):
    """alice opens a transaction in dev with an uncommitted write and prepares an INSERT;
    COM_CHANGE_USER to bob (prod, read only): the write is rolled back, alice's statement
    ids (and -1) are unknown to bob, bob cannot write prod; a failed COM_CHANGE_USER closes
    the connection."""
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.proto_cu (id INT PRIMARY KEY)")
    servers.sql("dev", "DELETE FROM shop.proto_cu")
    r = login(p, db="shop@dev")
    try:
        assert read_response_of(r, b"\x03BEGIN") == ("ok",)
        assert read_response_of(r, b"\x03INSERT INTO proto_cu VALUES (1)") == ("ok",)
        sid, _ = prepare(r, "INSERT INTO proto_cu VALUES (?)")
        r.send_packet(b"\x18" + struct.pack("<IH", sid, 0) + b"5", seq=0)  # long data alive
        r.send_packet(change_user(b"bob", native_auth("bob-pw", r.scramble)), seq=0)
        assert r.recv_packet()[:1] == b"\x00"
        for target in (sid, 0xFFFFFFFF):
            got = read_response_of(r, execute(target, rest=b"\x00\x01" + types((T_LONG, 0)) +
                                              struct.pack("<i", 2)))
            assert got == ("err", 1243), got
        assert read_response_of(r, b"\x03/* env=dev */ INSERT INTO shop.proto_cu VALUES (3)")[0] \
            == "err"
        assert read_response_of(r, b"\x03UPDATE shop.orders SET note = 'b' WHERE id = 1") == \
            ("err", 1290)
        r.send_packet(change_user(b"alice", b"x" * 20), seq=0)
        got = read_response(r)
        assert got == ("err", 1045)
        r.expect_closed()
    finally:
        r.close()
    assert servers.sql("dev", "SELECT COUNT(*) FROM shop.proto_cu") == [(0,)]
    serves_everyone(p)


def read_response_of(r, payload):
    r.send_packet(payload, seq=0)
    return read_response(r)


# ---- the small commands --------------------------------------------------------------------


def test_small_commands_with_bad_payloads(p, prod_state):
    """COM_FIELD_LIST without a table, with an unterminated or very long name and a
    wildcard; COM_PROCESS_INFO, COM_SHUTDOWN, COM_DEBUG, COM_REFRESH, COM_BINLOG_DUMP and
    other commands the proxy does not serve; COM_STATISTICS, COM_PING and
    COM_RESET_CONNECTION with trailing bytes; COM_SET_OPTION with every wrong size and
    value; COM_QUERY and COM_INIT_DB empty, with NUL bytes and over-long names."""
    r = login(p, db="shop@prod")
    try:
        cases = [
            (b"\x04", ("err", "fields")), (b"\x04orders", ("err", "fields")),
            (b"\x04orders\0%", ("fields",)), (b"\x04" + b"t" * 70000 + b"\0", ("err",)),
            (b"\x04orders\0" + b"\xff" * 200, ("err", "fields")),
            (b"\x09", ("stats",)), (b"\x09" + b"z" * 100, ("stats",)),
            (b"\x0e" + b"z" * 100, ("ok",)), (b"\x0e\x00", ("ok",)),
            (b"\x1b", ("err",)), (b"\x1b\x00", ("err",)), (b"\x1b\x02\x00", ("err",)),
            (b"\x1b\xff\xff", ("err",)), (b"\x1b\x00\x00\x00", ("err",)),
            (b"\x1b\x01\x00", ("eof",)), (b"\x1b\x00\x00", ("eof",)),
            (b"\x1f\x00", ("ok",)), (b"\x1f", ("ok",)),
            (b"\x03", ("err", "ok")), (b"\x03 ", ("err", "ok")), (b"\x03\0", ("err", "ok")),
            (b"\x03/* env=prod */", ("err", "ok")), (b"\x03;", ("err", "ok")),
            (b"\x02", ("err",)), (b"\x02\0", ("err",)), (b"\x02shop\0x", ("err",)),
            (b"\x02" + b"d" * 5000, ("err",)), (b"\x02shop@prod", ("ok",)),
            (b"\x0c" + b"\x00" * 4, ("err", "ok")),
        ]
        for cmd in (0x00, 0x05, 0x06, 0x07, 0x08, 0x0A, 0x0B, 0x0D, 0x0F, 0x10, 0x12, 0x13,
                    0x14, 0x15, 0x1D, 0x1E, 0x20, 0x7F, 0xFA, 0xFB, 0xFE, 0xFF):
            cases.append((bytes([cmd]) + b"\x01\x00\x00\x00" * 3, ("err",)))
        for payload, expect in cases:
            answer_then_probe(r, payload, expect)
        assert read_response_of(r, b"\x03/* env=prod */ DELETE FROM orders") == ("err", 1290)
    finally:
        r.close()
    serves_everyone(p)


# ---- multi-packet commands -----------------------------------------------------------------


def split_send(r, payload, seq=0):
    """payload in packets of at most 0xffffff bytes (an empty one after an exact
    multiple), as the protocol sends a long command."""
    i = 0
    while True:
        part = payload[i:i + PKT_MAX]
        r.sock.sendall(struct.pack("<I", len(part))[:3] + bytes([seq & 0xFF]) + part)
        seq += 1
        i += PKT_MAX
        if len(part) < PKT_MAX:
            return


def test_multi_packet_commands(p, prod_state):
    """A COM_QUERY of exactly 0xffffff bytes then an empty continuation packet runs as one
    statement; a write whose first packet ends inside a comment and whose continuation
    holds the INSERT is refused in prod (the policy reads the whole command); a
    continuation with a wrong sequence id, one past max_packet_size, and one that never
    comes (the client then leaves) end that connection only."""
    r = login(p, db="shop@prod")
    try:
        head = b"\x03SELECT 'big' /* "
        exact = head + b"p" * (PKT_MAX - len(head) - 3) + b" */"
        assert len(exact) == PKT_MAX
        split_send(r, exact)
        got = read_response(r)
        assert got[0] == "rows" and got[1][-1] == b"\x03big", got
        head = b"\x03/* env=prod */ SELECT 1 /* "
        sneaky = head + b"q" * (PKT_MAX - len(head)) + b" */; INSERT INTO orders (note) " \
            b"VALUES ('split')"
        split_send(r, sneaky)
        got = read_response(r)
        assert got[0] == "err" and got[1] in (1290, 1064), got
        assert probe(r)
    finally:
        r.close()
    # Out of sequence in the middle of the command.
    r = login(p)
    try:
        r.sock.sendall(struct.pack("<I", PKT_MAX)[:3] + b"\x00" + b"\x03" + b" " * (PKT_MAX - 1))
        r.sock.sendall(b"\x09\x00\x00\x05SELECT 1;")
        got = read_response(r)
        assert got == ("err", 1156), got
        r.expect_closed()
    except (Closed, ConnectionResetError):
        pass
    finally:
        r.close()
    # Past max_packet_size with the continuation.
    r = login(p)
    try:
        r.sock.sendall(struct.pack("<I", PKT_MAX)[:3] + b"\x00" + b"\x03" + b" " * (PKT_MAX - 1))
        r.sock.sendall(struct.pack("<I", PKT_MAX)[:3] + b"\x01")
        r.sock.settimeout(10)
        try:
            got = read_response(r)
            assert got == ("err", 1153), got
        except (Closed, ConnectionResetError, BrokenPipeError):
            pass
    finally:
        r.close()
    # The continuation never comes: others are served meanwhile; the client leaves.
    r = login(p)
    try:
        r.sock.sendall(struct.pack("<I", PKT_MAX)[:3] + b"\x00" + b"\x03" + b" " * (PKT_MAX - 1))
        r.sock.sendall(b"\xff\xff\xff\x01" + b"x" * 1000)
        serves_everyone(p)
    finally:
        r.close()
    serves_everyone(p)


# ---- the handshake's capabilities ----------------------------------------------------------


def handshake(p, body, seq=1):
    r = Raw(p.port, timeout=10)
    r.read_greeting()
    r.send_packet(body, seq=seq)
    return r


def test_handshake_capability_combinations(p):
    """PROTOCOL_41 off, connection attributes and LENENC auth data whose lengths lie:
    Bad handshake (1043) and closed. SSLRequest then a plain handshake: closed."""
    def body(caps, tail):
        return struct.pack("<IIB23x", caps, 1 << 24, 45) + tail
    r0 = Raw(p.port)
    r0.read_greeting()
    auth = native_auth("alice-pw", r0.scramble)
    r0.close()
    bad = [
        body(BASE_CAPS & ~CLIENT_PROTOCOL_41, b"alice\0\x14" + auth),
        body(0, b"alice\0"),
        body(BASE_CAPS | CLIENT_CONNECT_ATTRS,
             b"alice\0\x14" + b"a" * 20 + b"mysql_native_password\0\xfc\xff\xff\x01a"),
        body(BASE_CAPS | CLIENT_CONNECT_ATTRS,
             b"alice\0\x14" + b"a" * 20 + b"mysql_native_password\0\x10\x05abc"),
        body(BASE_CAPS | CLIENT_CONNECT_ATTRS,
             b"alice\0\x14" + b"a" * 20 + b"mysql_native_password\0\xfe" + b"\xff" * 8),
        body(BASE_CAPS | CLIENT_PLUGIN_AUTH_LENENC, b"alice\0\xfe" + b"\xff" * 8 + b"a"),
        body(BASE_CAPS | CLIENT_PLUGIN_AUTH_LENENC, b"alice\0\xfd\xff\xff\xff" + b"a" * 30),
        body(BASE_CAPS | CLIENT_PLUGIN_AUTH_LENENC, b"alice\0\xfb"),
        body(BASE_CAPS, b"alice\0\xff" + b"a" * 10),
    ]
    for b in bad:
        r = handshake(p, b)
        try:
            try:
                first = r.recv_packet()
                assert err_of(first) and err_of(first)[0] in (1043, 1045), first[:40]
                r.expect_closed()
            except (Closed, ConnectionResetError):
                pass
        finally:
            r.close()
    r = Raw(p.port)
    try:
        r.read_greeting()
        r.send_packet(struct.pack("<IIB23x", BASE_CAPS | CLIENT_SSL, 1 << 24, 45))
        r.send_packet(r.handshake_payload("alice", native_auth("alice-pw", r.scramble)))
        r.sock.settimeout(10)
        try:
            data = r.sock.recv(4096)
            assert not data or data[:1] == b"\x15", data[:40]  # nothing, or a TLS alert
        except (ConnectionResetError, socket.timeout):
            raise
    finally:
        r.close()
    serves_everyone(p)


def test_handshake_odd_charsets_plugins_and_deprecate_eof(p, prod_state):
    """Logins with charset 0, unknown collation ids and multi-byte character sets, with
    unknown or over-long plugin names (a switch to mysql_native_password), with
    DEPRECATE_EOF and attributes that are right: the session works or refuses the text,
    and a write in prod is refused in every case."""
    variants = []
    for cs in (0, 1, 28, 63, 88, 200, 244, 250, 255):
        variants.append(dict(charset=cs))
    for plugin in (b"", b"no_such_plugin", b"x" * 600, b"caching_sha2_password",
                   b"auth_gssapi_client", b"dialog"):
        variants.append(dict(plugin=plugin))
    variants.append(dict(caps=BASE_CAPS | CLIENT_DEPRECATE_EOF))
    variants.append(dict(caps=BASE_CAPS | CLIENT_CONNECT_ATTRS,
                         attrs=lenenc(lenenc(b"_client_name") + lenenc(b"raw"))))
    for v in variants:
        r = Raw(p.port, timeout=10)
        try:
            r.read_greeting()
            caps = v.get("caps", BASE_CAPS) | CLIENT_CONNECT_WITH_DB
            plugin = v.get("plugin", b"mysql_native_password")
            auth = native_auth("alice-pw", r.scramble)
            if "plugin" in v:  # a plugin the proxy does not check: any answer, then a switch
                auth = b"" if v["plugin"] == b"caching_sha2_password" else b"\x01" * 20
            pkt = struct.pack("<IIB23x", caps, 1 << 24, v.get("charset", 45)) + b"alice\0" + \
                bytes([len(auth)]) + auth + b"shop@prod\0" + plugin + b"\0" + v.get("attrs", b"")
            r.send_packet(pkt, seq=1)
            first = r.recv_packet()
            if first[:1] == b"\xfe":
                i = first.index(b"\0", 1) + 1
                r.send_packet(native_auth("alice-pw", first[i:].rstrip(b"\0")))
                first = r.recv_packet()
            if v.get("charset") == 250:
                # gb18030: Connector/C knows it, MariaDB 10.11 does not (SET NAMES fails).
                assert err_of(first)[0] == 1115, (v, first[:40])
                continue
            assert first[:1] == b"\x00", (v, err_of(first))
            r.deprecate_eof = bool(caps & CLIENT_DEPRECATE_EOF)
            got = read_response_of(r, b"\x03UPDATE orders SET note = 'cs' WHERE id = 1")
            assert got[0] == "err" and got[1] in (1290, 1115, 1235), (v, got)
            got = read_response_of(r, b"\x03SELECT 'ok'")
            assert got[0] in ("rows", "err"), (v, got)
        finally:
            r.close()
    serves_everyone(p)


def test_multi_packet_statement_commands(p, prod_state):
    """PREPARE, SEND_LONG_DATA (to a backend statement and to one the proxy answers),
    EXECUTE, COM_CHANGE_USER, COM_INIT_DB and COM_FIELD_LIST of more than 0xffffff bytes,
    in several packets: the proxy reassembles them and passes them on whole, or refuses
    them; where the server refuses one that large (max_allowed_packet) and drops the
    connection, the client gets an error and its session goes on."""
    big = PKT_MAX + 100
    r = login(p, db="shop@prod")
    try:
        sid, _ = prepare(r, "SELECT ? AS v")
        lsid, _ = prepare(r, "SELECT name FROM __envs.environments WHERE name = ?")
        pad = b"SELECT ? /* " + b"p" * (big - 20) + b" */"
        split_send(r, b"\x16" + pad)
        got = read_response(r)
        assert got[0] in ("err", "rows") or got == ("ok",), got
        if got[0] == "rows" or got == ("ok",):
            # The whole PREPARE answer: its first packet was read as a row count; start over.
            r.close()
            r = login(p, db="shop@prod")
            sid, _ = prepare(r, "SELECT ? AS v")
            lsid, _ = prepare(r, "SELECT name FROM __envs.environments WHERE name = ?")
        assert probe(r)
        for target in (sid, lsid):
            split_send(r, b"\x18" + struct.pack("<IH", target, 0) + b"L" * big)
            got = read_response_of(r, execute(target, rest=b"\x00\x01" + types((T_BLOB, 0))))
            assert got[0] in ("err", "rows"), got
            assert probe(r)
        split_send(r, execute(sid, rest=b"\x00\x01" + types((T_BLOB, 0)) + lenenc(b"V" * big)))
        got = read_response(r)
        assert got[0] in ("err", "rows"), got
        assert probe(r)
        split_send(r, b"\x02" + b"d" * big)
        assert read_response(r)[0] == "err"
        assert probe(r)
        split_send(r, b"\x04" + b"t" * big + b"\0")
        assert read_response(r, fields=True)[0] == "err"
        assert probe(r)
        split_send(r, b"\x11" + b"u" * big + b"\0\x00\0" + struct.pack("<H", 45))
        try:
            first = r.recv_packet()
            if first[:1] == b"\xfe":  # no answer yet: a switch, refused whatever comes
                r.send_packet(b"\x01" * 20)
                first = r.recv_packet()
            assert err_of(first)[0] == 1045, first[:40]
            r.expect_closed()
        except (Closed, ConnectionResetError):
            pass
    finally:
        r.close()
    serves_everyone(p)


def test_nul_bytes_and_attribute_prefixes_in_queries(p, prod_state):
    """COM_QUERY texts with NUL bytes before, inside and after a write, and with the
    prefix a client with CLIENT_QUERY_ATTRIBUTES would send (the proxy does not announce
    it: the prefix is part of the text): no write reaches prod."""
    r = login(p, db="shop@prod")
    try:
        write = b"UPDATE orders SET note = 'nul' WHERE id = 1"
        for text in (b"\0" + write, write + b"\0", b"SELECT 1\0; " + write,
                     b"SELECT 1 /* \0 */; " + write, b"/* \0 */ " + write,
                     b"SELECT '\0' ; " + write, b"\x00\x01" + write,
                     b"\x01\x01\x00\xfd\x00\x01a\x01x" + write, b"SELECT 1 -- \0\n; " + write,
                     b"SELECT `\0`; " + write, b"SELECT 1 #\0\n" + write):
            answer_then_probe(r, b"\x03" + text, ("err",))
    finally:
        r.close()
    serves_everyone(p)


def test_reset_connection_drops_long_data_and_statements(p, servers):
    """Long data sent for a backend statement, then COM_RESET_CONNECTION: the statement is
    gone (1243), and the next session on that backend connection finds no long data
    waiting there: a new statement of the same text runs with the value it sends."""
    r = login(p, db="shop@dev")
    try:
        sid, _ = prepare(r, "SELECT ? AS v")
        r.send_packet(b"\x18" + struct.pack("<IH", sid, 0) + b"LONG", seq=0)
        assert read_response_of(r, b"\x1f") == ("ok",)
        got = read_response_of(r, execute(sid, rest=b"\x00\x01" + types((T_BLOB, 0))))
        assert got == ("err", 1243), got
        sid2, _ = prepare(r, "SELECT ? AS v")
        got = read_response_of(r, execute(sid2, rest=b"\x00\x01" + types((T_VAR_STRING, 0)) +
                                          lenenc(b"mine")))
        assert got[0] == "rows" and got[1][-1].endswith(b"mine"), got
    finally:
        r.close()
    serves_everyone(p)


ALL_TYPES = list(range(0x00, 0x14)) + list(range(0xF2, 0x100)) + [0x20, 0x80]


def test_execute_values_of_every_type_fuzzed(p, prod_state):
    """EXECUTE packets with random (seeded, reproducible) types, unsigned flags, null
    bitmaps and value bytes, short and long, for a backend statement and for statements
    the proxy answers itself (their values are decoded by the proxy: __envs, __compare):
    each gets an error or a result, and the session goes on."""
    import random
    rnd = random.Random(20261205)
    r = login(p, db="shop@prod")
    try:
        stmts = [prepare(r, "SELECT ? AS a, ? AS b"),
                 prepare(r, "SELECT name FROM __envs.environments WHERE name = ? OR name = ?"),
                 prepare(r, "SELECT * FROM __compare.query WHERE envs = ? AND sql = ?")]
        deadline = time.monotonic() + 20
        for i in range(600):
            if time.monotonic() > deadline:
                break
            sid, n = stmts[i % len(stmts)]
            assert n == 2
            ts = [(rnd.choice(ALL_TYPES), rnd.choice((0, 0x80, rnd.randrange(256))))
                  for _ in range(n)]
            values = b""
            for t, _ in ts:
                kind = rnd.randrange(5)
                if kind == 0:
                    values += bytes([rnd.randrange(13)]) + bytes(rnd.randrange(256)
                                                                 for _ in range(rnd.randrange(14)))
                elif kind == 1:
                    values += lenenc(bytes(rnd.randrange(256) for _ in range(rnd.randrange(40))))
                elif kind == 2:
                    values += bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 2, 4, 8))))
                elif kind == 3:
                    values += rnd.choice((b"\xfb", b"\xfc\xff\xff", b"\xfd\xff\xff\xff",
                                          b"\xfe" + b"\xff" * 8, b"\xff", b"\x0b\x01"))
            nullmap = bytes([rnd.choice((0, 0, 1, 2, 3, rnd.randrange(256)))])
            payload = execute(sid, rnd.choice((0, 0, 1, 8)),
                              rest=nullmap + b"\x01" + types(*ts) + values)
            answer_then_probe(r, payload, ("err", "rows", "ok"))
    finally:
        r.close()
    serves_everyone(p)


def test_deprecate_eof_framing_of_the_proxys_own_answers(p):
    """A client with CLIENT_DEPRECATE_EOF gets no EOF after column definitions and an OK
    (0xfe) at the end of rows, in every answer the proxy builds itself or passes on:
    PREPARE of a backend and of a local statement, their EXECUTE, a virtual schema, the
    local answers, COM_SET_OPTION, COM_FIELD_LIST; a framing error would show as the
    next statement's answer read wrong."""
    r = Raw(p.port, timeout=10)
    try:
        r.read_greeting()
        r.send_packet(r.handshake_payload("alice", native_auth("alice-pw", r.scramble),
                                          db="shop@dev", caps=BASE_CAPS | CLIENT_DEPRECATE_EOF))
        assert r.recv_packet()[:1] == b"\x00"
        r.deprecate_eof = True
        for sql in ("SELECT ? AS v", "SELECT name FROM __envs.environments WHERE name = ?",
                    "SELECT CONNECTION_ID()", "SELECT @@version_comment"):
            sid, n = prepare(r, sql)
            rest = b"\x00\x01" + types((T_VAR_STRING, 0)) + lenenc(b"dev") if n else b""
            got = answer_then_probe(r, execute(sid, rest=rest), ("rows",))
            assert got[1], (sql, got)
        for q in (b"SELECT * FROM __envs.environments", b"SELECT CONNECTION_ID()",
                  b"SHOW DATABASES", b"SELECT @@version_comment", b"/* env=dev,prod */ SELECT 1"):
            assert answer_then_probe(r, b"\x03" + q, ("rows",))[1], q
        got = answer_then_probe(r, b"\x1b\x01\x00", ("eof", "ok"))
        got = answer_then_probe(r, b"\x04orders\0", ("fields",))
        assert got[1], got
    finally:
        r.close()


def test_collation_the_backend_does_not_know(p):
    """Collation 250 (gb18030_chinese_ci) is known to Connector/C, whose table the proxy
    uses, but not to MariaDB 10.11: a login without a database succeeds and each
    statement that needs the backend gets the server's clear error (1115) instead of text
    read in another character set; statements the proxy answers itself still work."""
    r = Raw(p.port, timeout=10)
    try:
        r.read_greeting()
        pkt = struct.pack("<IIB23x", BASE_CAPS, 1 << 24, 250) + b"alice\0\x14" + \
            native_auth("alice-pw", r.scramble) + b"mysql_native_password\0"
        r.send_packet(pkt, seq=1)
        assert r.recv_packet()[:1] == b"\x00"
        for _ in range(2):
            assert read_response_of(r, b"\x03SELECT 1") == ("err", 1115)
        assert read_response_of(r, b"\x03/* env=prod */ DELETE FROM shop.orders")[0] == "err"
        got = read_response_of(r, b"\x03SELECT CONNECTION_ID()")
        assert got[0] == "rows", got
    finally:
        r.close()
    serves_everyone(p)


def test_change_user_releases_locks_and_temporary_tables(p, servers):
    """alice holds a user lock and a temporary table in dev; COM_CHANGE_USER (to alice
    again): the lock is free for others at once, and the temporary table is gone for the
    new session."""
    r = login(p, db="shop@dev")
    try:
        assert read_response_of(r, b"\x03SELECT GET_LOCK('proto_cu_lock', 0)")[1][-1] == b"\x011"
        assert read_response_of(r, b"\x03CREATE TEMPORARY TABLE proto_tmp (i INT)") == ("ok",)
        assert servers.sql("dev", "SELECT IS_FREE_LOCK('proto_cu_lock')") == [(0,)]
        r.send_packet(change_user(b"alice", native_auth("alice-pw", r.scramble),
                                  db=b"shop@dev"), seq=0)
        assert r.recv_packet()[:1] == b"\x00"
        deadline = time.monotonic() + 5
        while servers.sql("dev", "SELECT IS_FREE_LOCK('proto_cu_lock')") != [(1,)]:
            assert time.monotonic() < deadline, "the lock outlived COM_CHANGE_USER"
            time.sleep(0.05)
        got = read_response_of(r, b"\x03SELECT * FROM proto_tmp")
        assert got[0] == "err" and got[1] == 1146, got
    finally:
        r.close()


def pkt(payload, seq=0):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def test_pipelined_statement_commands(p, servers, prod_state):
    """A MariaDB connector pipelines PREPARE and EXECUTE with id -1; here whole batches go
    in one write: PREPARE, EXECUTE(-1), SEND_LONG_DATA(-1), EXECUTE(-1) with it,
    CLOSE(-1), EXECUTE(-1) of the closed statement, a refused PREPARE of a prod write and
    EXECUTE(-1) after it, 300 SEND_LONG_DATA in a row, COM_RESET_CONNECTION, COM_CHANGE_USER
    to bob with his statements behind it. Every answer comes in order, for the right
    command and account."""
    r = login(p, db="shop@dev")
    try:
        vs = b"\x00\x01" + types((T_VAR_STRING, 0))
        batch = [b"\x16SELECT ? AS v", execute(0xFFFFFFFF, rest=vs + lenenc(b"first")),
                 b"\x18" + struct.pack("<IH", 0xFFFFFFFF, 0) + b"LONG",
                 execute(0xFFFFFFFF, rest=vs), b"\x19\xff\xff\xff\xff",
                 execute(0xFFFFFFFF, rest=vs + lenenc(b"x")),
                 b"\x16/* env=prod */ UPDATE shop.orders SET note = 'pl' WHERE id = 1",
                 execute(0xFFFFFFFF, rest=vs + lenenc(b"x")),
                 b"\x16SELECT ? AS w"]
        batch += [b"\x18" + struct.pack("<IH", 0xFFFFFFFF, 0) + b"%03d," % i
                  for i in range(300)]
        batch += [execute(0xFFFFFFFF, rest=vs), b"\x1f", execute(0xFFFFFFFF, rest=vs),
                  change_user(b"bob", native_auth("bob-pw", r.scramble)),
                  b"\x03SELECT @@port", b"\x03UPDATE shop.orders SET note = 'pl' WHERE id = 1"]
        r.sock.sendall(b"".join(pkt(x) for x in batch))
        sid, n = struct.unpack("<IxxH", r.recv_packet()[1:9])
        for _ in range(n + 1):
            r.recv_packet()
        got = read_response(r)
        assert got[0] == "rows" and got[1][-1].endswith(b"first"), got
        got = read_response(r)
        assert got[0] == "rows" and got[1][-1].endswith(b"LONG"), got
        assert read_response(r) == ("err", 1243)
        assert read_response(r) == ("err", 1290)
        assert read_response(r) == ("err", 1243)
        first = r.recv_packet()
        assert first[:1] == b"\x00", err_of(first)
        for _ in range(2):
            r.recv_packet()
        got = read_response(r)
        want = b"".join(b"%03d," % i for i in range(300))
        assert got[0] == "rows" and got[1][-1].endswith(want), got
        assert read_response(r) == ("ok",)
        assert read_response(r) == ("err", 1243)
        assert r.recv_packet()[:1] == b"\x00"  # bob
        got = read_response(r)
        assert got[0] == "rows" and got[1][-1][1:] == str(servers.prod.port).encode(), got
        assert read_response(r) == ("err", 1290)
        assert probe(r)
    finally:
        r.close()
    serves_everyone(p)


def test_partial_packets_of_many_clients_interleaved(p):
    """A read of a client's socket is lent from a buffer its worker shares with every other
    client; what a read leaves unused (a packet cut in two, commands sent ahead) must be
    the client's own before the next read. 16 clients (both workers) each send a statement
    carrying its own 3,000-byte literal cut at a different byte, and three statements
    pipelined in one write, in turns: the first parts of all, then every second part. Each
    gets its own literals back, in order, three rounds."""
    clients = [login(p, db="shop@dev") for _ in range(16)]
    try:
        for rnd in range(3):
            want = {}
            rest = {}
            for i, r in enumerate(clients):
                tag = ("%02d%d" % (i, rnd)).encode()
                lits = [tag + b"-" + bytes([65 + (i + k) % 26]) * 3000 for k in range(4)]
                want[i] = lits
                wire = b"".join(pkt(b"\x03SELECT '" + lit + b"' AS v") for lit in lits)
                cut = 1 + (i * 997 + rnd * 131) % (len(wire) - 2)
                r.sock.sendall(wire[:cut])
                rest[i] = wire[cut:]
            time.sleep(0.2)  # every first part read and lent
            for i, r in enumerate(clients):
                r.sock.sendall(rest[i])
            for i, r in enumerate(clients):
                for lit in want[i]:
                    got = read_response(r)
                    assert got[0] == "rows", (i, rnd, got)
                    # The row: a length-encoded string (0xfc + 2 bytes for 3,003+ bytes).
                    assert got[1][-1][3:] == lit, (i, rnd, got[1][-1][:20])
        for r in clients:
            assert probe(r)
    finally:
        for r in clients:
            r.close()
    serves_everyone(p)


def reset_close(r):
    """Closes with a TCP RST (SO_LINGER 0): the proxy's next write or read fails."""
    try:
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    r.close()


def test_client_vanishes_in_the_middle_of_each_command(p, servers):
    """A client that resets its connection right after sending (or in the middle of
    sending) a command: a 16 MiB+ command being written to the backend, long data being
    flushed, a PREPARE and an EXECUTE being answered, a COM_CHANGE_USER waiting for its
    auth switch answer, half a multi-packet command, a slow statement, a statement run in
    two environments, __compare and __envs.databases (plain and prepared), an uncommitted
    write (rolled back: dev keeps no row of it). The proxy lets go
    of the backend connection (no leak, no use after free), and serves everyone after."""
    big = PKT_MAX + 4096
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.proto_cu (id INT PRIMARY KEY)")
    shapes = [
        lambda r, sid: split_send(r, b"\x03SELECT 1 /* " + b"b" * big + b" */"),
        lambda r, sid: split_send(r, b"\x18" + struct.pack("<IH", sid, 0) + b"L" * big),
        lambda r, sid: r.sock.sendall(b"".join(pkt(b"\x18" + struct.pack("<IH", sid, 0) +
                                                   b"l" * 60000) for _ in range(100))),
        lambda r, sid: r.send_packet(b"\x16SELECT ?, SLEEP(0.2)", seq=0),
        lambda r, sid: r.send_packet(execute(sid, rest=b"\x00\x01" + types((T_VAR_STRING, 0)) +
                                             lenenc(b"v")), seq=0),
        lambda r, sid: r.send_packet(change_user(b"alice", b"", plugin=b"dialog\0"), seq=0),
        lambda r, sid: r.sock.sendall(struct.pack("<I", PKT_MAX)[:3] + b"\x00\x03" +
                                      b" " * 1000),
        lambda r, sid: r.send_packet(b"\x03SELECT SLEEP(0.3), REPEAT('x', 100000) FROM "
                                     b"seq_1_to_50", seq=0),
        lambda r, sid: r.send_packet(b"\x03/* env=dev,prod */ SELECT SLEEP(0.2)", seq=0),
        lambda r, sid: r.send_packet(b"\x03SELECT * FROM __compare.query WHERE envs = "
                                     b"'dev,prod' AND sql = 'SELECT SLEEP(0.2), 1'", seq=0),
        lambda r, sid: r.send_packet(b"\x03SELECT * FROM __envs.databases", seq=0),
        lambda r, sid: r.sock.sendall(pkt(b"\x16SELECT * FROM __compare.query WHERE envs = ? "
                                          b"AND sql = ?") +
                                      pkt(execute(0xFFFFFFFF, rest=b"\x00\x01" +
                                                  types((T_VAR_STRING, 0), (T_VAR_STRING, 0)) +
                                                  lenenc(b"dev,prod") +
                                                  lenenc(b"SELECT SLEEP(0.2)")))),
        lambda r, sid: r.sock.sendall(pkt(b"\x03BEGIN") + pkt(b"\x03INSERT INTO shop.proto_cu "
                                                              b"VALUES (77)") +
                                      pkt(b"\x03SELECT SLEEP(0.3)")),
    ]
    for shape in shapes:
        for delay in (0, 0.05):
            r = login(p, db="shop@dev")
            sid, _ = prepare(r, "SELECT ? AS v")
            try:
                shape(r, sid)
            except OSError:
                pass
            time.sleep(delay)
            reset_close(r)
    serves_everyone(p)
    assert servers.sql("dev", "SELECT COUNT(*) FROM shop.proto_cu WHERE id = 77") == [(0,)]
    # Every backend connection came back: the pools hold no more than they may.
    deadline = time.monotonic() + 10
    while True:
        rows = servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                  "WHERE USER = 'app'")
        if rows[0][0] <= 10 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows[0][0] <= 10, rows


def test_prepare_that_never_gets_its_answer_frees_its_statement(p, servers, make_proxy):
    """A PREPARE whose statement is not registered yet (the backend has not said OK) and
    that ends another way: its client leaves while the server waits on a table lock, or
    its environment cannot be reached. The statement is freed (LeakSanitizer would report
    it when the proxy stops), the client that stays gets an error and goes on."""
    holder = servers.dev.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS shop.proto_locked (i INT)")
            cur.execute("LOCK TABLES shop.proto_locked WRITE")
        for _ in range(3):
            r = login(p, db="shop@dev")
            r.send_packet(b"\x16SELECT * FROM proto_locked WHERE i = ?", seq=0)
            time.sleep(0.2)  # the server waits for the lock
            reset_close(r)
    finally:
        holder.close()
    serves_everyone(p)
    q = make_proxy(extra_yaml={"environments": {"gone": {
        "host": "127.0.0.1", "port": free_port(), "user": "x", "password": "y",
        "database": "shop", "access": "read_only",
        "pool": {"max": 2, "connect_timeout": "1s", "wait_timeout": "1s"}}}},
        accounts=[Account("alice", "alice-pw", "dev",
                          {"dev": "write", "prod": "read", "gone": "read"})])
    r = login(q)
    try:
        for _ in range(3):
            got = read_response_of(r, b"\x16/* env=gone */ SELECT ? AS v")
            assert got[0] == "err", got
        assert probe(r)
    finally:
        r.close()


def test_kill_connection_in_the_middle_of_each_command(p, servers):
    """KILL CONNECTION (COM_PROCESS_KILL) from the account's other session while the
    victim's command is in flight: a PREPARE of a table another session holds locked, a
    slow statement, a statement in two environments, __compare. The victim's connection
    ends (after an error at most), nothing leaks, everyone else is served."""
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.proto_locked (i INT)")
    commands = [b"\x16SELECT * FROM proto_locked WHERE i = ?",
                b"\x03SELECT SLEEP(2)", b"\x03/* env=dev,prod */ SELECT SLEEP(2)",
                b"\x03SELECT * FROM __compare.query WHERE envs = 'dev,prod' AND "
                b"sql = 'SELECT SLEEP(2)'"]
    killer = login(p)
    holder = servers.dev.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLES shop.proto_locked WRITE")
        for cmd in commands:
            victim = Raw(p.port, timeout=10)
            try:
                greeting = victim.read_greeting()
                i = greeting.index(b"\0", 1) + 1
                vid = struct.unpack("<I", greeting[i:i + 4])[0]
                victim.send_packet(victim.handshake_payload(
                    "alice", native_auth("alice-pw", victim.scramble), db="shop@dev"))
                assert victim.recv_packet()[:1] == b"\x00"
                victim.send_packet(cmd, seq=0)
                time.sleep(0.2)
                assert read_response_of(killer, b"\x0c" + struct.pack("<I", vid)) == ("ok",)
                # Whatever was answered before the KILL, an error at most after it, then
                # the end of the connection.
                try:
                    for _ in range(1000):
                        victim.recv_packet()
                    raise AssertionError(f"{cmd!r}: the killed session goes on")
                except (Closed, ConnectionResetError):
                    pass
            finally:
                victim.close()
        assert probe(killer)
    finally:
        holder.close()
        killer.close()
    serves_everyone(p)


class EarlyRefuser(LoopbackListener):
    """A server that refuses a command larger than 1 MiB from its header, as MariaDB
    refuses one above max_allowed_packet: ERR 1153 at once, then it reads the rest and
    closes half a second later. Smaller commands get OK, or a one-row result for
    SELECT/SHOW."""

    def accepted(self, c):
        self.conns.append(c)
        import threading
        threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(30)
        try:
            scramble = b"s" * 20
            greet = (b"\x0a5.5.5-10.11.0-early\0" + struct.pack("<I", 1) + scramble[:8] + b"\0" +
                     struct.pack("<HBHHB", 0xA20D & 0xFFFF, 33, 2, 0x000B, 21) + b"\0" * 10 +
                     scramble[8:] + b"\0mysql_native_password\0")
            c.sendall(_pkt(0, greet))
            h = FakeBackend._read(c, 4)
            FakeBackend._read(c, h[0] | h[1] << 8 | h[2] << 16)
            c.sendall(_pkt(h[3] + 1, FAKE_OK))
            while not self.stop:
                h = FakeBackend._read(c, 4)
                n = h[0] | h[1] << 8 | h[2] << 16
                if n > 1024 * 1024:
                    c.sendall(_pkt(1, b"\xff\x81\x04#08S01Got a packet bigger than "
                                      b"'max_allowed_packet' bytes"))
                    FakeBackend._read(c, n)  # the rest, so that the proxy's write ends
                    time.sleep(0.5)
                    return
                body = FakeBackend._read(c, n)
                word = body[1:].lstrip().split(None, 1)[0].upper() if body[:1] == b"\x03" \
                    and body[1:].strip() else b""
                if word in (b"SELECT", b"SHOW"):
                    FakeBackend._result(None, c, 1, pad=0)
                else:
                    c.sendall(_pkt(1, FAKE_OK))
        except (OSError, ConnectionError):
            pass
        finally:
            c.close()


def test_backend_that_refuses_a_command_before_reading_it_all(make_proxy):
    """A server that refuses a too large command with ERR 1153 and closes the connection
    (MariaDB past max_allowed_packet): the client gets that error, and the connection
    serves nobody again: the client's next statement, sent at once, runs on another
    connection instead of failing with 2013 on the closing one."""
    fb = EarlyRefuser()
    try:
        q = make_proxy(extra_yaml={"max_packet_size": MAX_PACKET, "environments": {"early": {
            "host": "127.0.0.1", "port": fb.port, "user": "x", "password": "y",
            "access": "read_write", "pool": {"max": 4, "connect_timeout": "1s",
                                             "wait_timeout": "2s"}}}},
            accounts=[Account("alice", "alice-pw", "early",
                              {"dev": "write", "prod": "read", "early": "write"})])
        r = login(q)
        try:
            for _ in range(2):
                got = read_response_of(r, b"\x03SELECT '" + b"x" * (4 * 1024 * 1024) + b"'")
                assert got == ("err", 1153), got
                got = read_response_of(r, b"\x03SELECT 1")
                assert got[0] == "rows", got
        finally:
            r.close()
        serves_everyone(q)
    finally:
        fb.close()
