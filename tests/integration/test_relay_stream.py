"""The relay's row path at the byte level: result rows reach the client exactly as the server
sends them to a direct connection (same payloads, in order), with sequence ids that count
up by one from the command, whatever the rows' sizes, however the backend's bytes are cut
into reads, where max_rows cuts a result, where the client's sequence ids differ from the
backend's (CLIENT_DEPRECATE_EOF, prepared statements whose metadata the backend skipped),
for a row of exactly 16 MiB - 1 bytes, and for a large result read slowly by its client.
The proxy passes runs of whole rows on in place, so these tests compare every byte."""

import struct
import time

from fakebackend import FakeBackend
from harness import Account
from rawmysql import BASE_CAPS, CLIENT_DEPRECATE_EOF, Raw, native_auth

CLIENT_MULTI_STATEMENTS = 0x10000
MAX = 0xFFFFFF


class Stream(Raw):
    """A raw connection that checks every sequence id and joins continued packets."""

    def __init__(self, port, caps, timeout=60):
        super().__init__(port, timeout=timeout)
        self.caps = caps
        self.buf = bytearray()
        self.expect = 0

    def _recv_some(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise AssertionError("connection closed")
        self.buf += data

    def physical(self):
        while len(self.buf) < 4:
            self._recv_some()
        n = self.buf[0] | self.buf[1] << 8 | self.buf[2] << 16
        while len(self.buf) < 4 + n:
            self._recv_some()
        seq = self.buf[3]
        assert seq == self.expect, f"sequence id {seq}, expected {self.expect}"
        self.expect = (seq + 1) & 0xFF
        self.seq = self.expect
        payload = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return payload

    def packet(self):
        """One logical packet (continuations joined)."""
        part = self.physical()
        out = [part]
        while len(part) == MAX:
            part = self.physical()
            out.append(part)
        return b"".join(out)

    def login_as(self, user, password, db, tls=False):
        self.read_greeting()
        if tls:
            self.start_tls(self.caps)
        self.send_packet(self.handshake_payload(user, native_auth(password, self.scramble),
                                                db=db, caps=self.caps))
        self.expect = self.seq
        r = self.packet()
        if r[:1] == b"\xfe":
            i = r.index(b"\0", 1) + 1
            self.scramble = r[i:].rstrip(b"\0")
            self.send_packet(native_auth(password, self.scramble))
            self.expect = self.seq
            r = self.packet()
        assert r[:1] == b"\x00", r

    def command(self, payload):
        self.send_packet(payload, seq=0)
        self.expect = 1

    def eof(self, p):
        return p[:1] == b"\xfe" and len(p) < 9

    def result(self):
        """Reads one result set after the command: (rows, end packet). The column
        definitions are checked for count only."""
        first = self.packet()
        assert first[:1] not in (b"\xff", b"\x00"), first
        n = first[0]
        for _ in range(n):
            assert not self.eof(self.packet())
        if not self.caps & CLIENT_DEPRECATE_EOF:
            assert self.eof(self.packet())
        rows = []
        while True:
            p = self.packet()
            if self.eof(p):
                return rows, p
            assert p[:1] != b"\xff", p
            rows.append(p)

    def query(self, sql):
        self.command(b"\x03" + sql.encode())
        return self.result()

    def prepare(self, sql):
        self.command(b"\x16" + sql.encode())
        ok = self.packet()
        assert ok[:1] == b"\x00", ok
        stmt_id, ncols, nparams = struct.unpack("<IHH", ok[1:9])
        for _ in range(nparams):
            self.packet()
        if nparams and not self.caps & CLIENT_DEPRECATE_EOF:
            assert self.eof(self.packet())
        for _ in range(ncols):
            self.packet()
        if ncols and not self.caps & CLIENT_DEPRECATE_EOF:
            assert self.eof(self.packet())
        return stmt_id

    def execute(self, stmt_id):
        self.command(b"\x17" + struct.pack("<IBI", stmt_id, 0, 1))
        return self.result()


def status_warnings(end, caps):
    """(status, warnings) of an EOF, or of an OK with the EOF header."""
    if caps & CLIENT_DEPRECATE_EOF:
        assert end[1:3] == b"\x00\x00", end
        return struct.unpack("<HH", end[3:7])
    w, s = struct.unpack("<HH", end[1:5])
    return s, w


def direct(servers, caps, timeout=60):
    s = Stream(servers.dev.port, caps, timeout)
    s.login_as("app", "app-secret", "shop")
    return s


def via(proxy, caps, timeout=60, tls=False):
    s = Stream(proxy.port, caps, timeout)
    s.login_as("alice", "alice-pw", "shop", tls)
    return s


UNCAPPED = {"limits": {"max_rows": 0}}
CAPS = (BASE_CAPS, BASE_CAPS | CLIENT_DEPRECATE_EOF)
# Rows from 3 to about 800 bytes, so that runs of whole rows end anywhere in a read.
MIXED = ("SELECT seq, REPEAT(CHAR(65 + seq % 26), (seq * 37) % 797) "
         "FROM seq_1_to_20000")


def test_text_rows_match_a_direct_connection(make_proxy, servers):
    """20,000 rows of mixed sizes (several reads of the backend, rows cut at read ends):
    the same payloads as the server sends a direct connection, sequence ids counting up
    by one, for a client with and without CLIENT_DEPRECATE_EOF (whose ids are one lower
    than the backend's from the first row on), and for a client over TLS."""
    p = make_proxy(extra_yaml=UNCAPPED)
    for caps in CAPS:
        d, v = direct(servers, caps), via(p, caps)
        try:
            want, _ = d.query(MIXED)
            got, end = v.query(MIXED)
            assert len(got) == 20000
            assert got == want
            status, warnings = status_warnings(end, caps)
            assert warnings == 0
            # A second statement on the same connection starts over at 1.
            assert v.query("SELECT 1")[0] == d.query("SELECT 1")[0]
        finally:
            d.close()
            v.close()
    # Over TLS the gathered packets are copied into the TLS filter instead: the same bytes.
    d, v = direct(servers, BASE_CAPS), via(p, BASE_CAPS, tls=True)
    try:
        want, _ = d.query(MIXED)
        got, _ = v.query(MIXED)
        assert got == want
    finally:
        d.close()
        v.close()


def test_binary_rows_match_a_direct_connection(make_proxy, servers):
    """A prepared statement executed three times: the backend skips the metadata after
    the first execution (the proxy sends it from what it kept, so the client's sequence
    ids run ahead of the backend's); every execution's binary rows equal a direct
    connection's, with sequence ids counting up by one."""
    p = make_proxy(extra_yaml=UNCAPPED)
    sql = "SELECT seq, REPEAT('x', seq % 300), seq * 2.5 FROM seq_1_to_5000"
    for caps in CAPS:
        d, v = direct(servers, caps), via(p, caps)
        try:
            want, _ = d.execute(d.prepare(sql))
            sid = v.prepare(sql)
            for _ in range(3):
                got, _ = v.execute(sid)
                assert len(got) == 5000
                assert got == want
        finally:
            d.close()
            v.close()


def test_max_rows_cuts_inside_a_run_of_rows(make_proxy, servers):
    """max_rows 7 on small rows that arrive together: the client gets exactly the first
    seven rows as the server sends them, then the end of the result with one more warning
    and the next sequence id; the cap applies again to each result set of a multi-statement
    and to binary rows; a result of exactly seven rows has no warning."""
    p = make_proxy(extra_yaml={"limits": {"max_rows": 7}})
    caps = BASE_CAPS | CLIENT_MULTI_STATEMENTS
    d, v = direct(servers, caps), via(p, caps)
    try:
        want, _ = d.query("SELECT seq, 'r' FROM seq_1_to_3000")
        got, end = v.query("SELECT seq, 'r' FROM seq_1_to_3000")
        assert got == want[:7]
        status, warnings = status_warnings(end, caps)
        assert warnings == 1
        got, end = v.query("SELECT seq FROM seq_1_to_7")
        assert len(got) == 7 and status_warnings(end, caps)[1] == 0
        # Two result sets: each is cut.
        v.command(b"\x03SELECT seq FROM seq_1_to_100; SELECT seq FROM seq_1_to_3")
        first, end = v.result()
        status, warnings = status_warnings(end, caps)
        assert len(first) == 7 and warnings == 1 and status & 0x08  # more results
        second, end = v.result()
        assert len(second) == 3
        assert [r[1:] for r in first] == [b"%d" % i for i in range(1, 8)]
        want, _ = d.execute(d.prepare("SELECT seq, REPEAT('b', seq) FROM seq_1_to_500"))
        sid = v.prepare("SELECT seq, REPEAT('b', seq) FROM seq_1_to_500")
        for _ in range(2):
            got, end = v.execute(sid)
            assert got == want[:7] and status_warnings(end, caps)[1] == 1
    finally:
        d.close()
        v.close()


def test_a_row_of_exactly_16_mib_minus_1(make_proxy, servers):
    """A row whose payload is exactly 16 MiB - 1 bytes (so the server follows it with an
    empty packet) between small rows: the client gets the same bytes as a direct
    connection, the empty packet included, with sequence ids counting up by one."""
    servers.sql("dev", "SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    p = make_proxy(extra_yaml=UNCAPPED)
    # lenenc of 16777211 takes 4 bytes: 4 + 16777211 = 16777215.
    sql = ("SELECT 'a' UNION ALL SELECT REPEAT('x', 16777211) UNION ALL SELECT 'b' "
           "UNION ALL SELECT REPEAT('y', 16777210) UNION ALL SELECT 'c'")
    for caps in CAPS:
        d, v = direct(servers, caps, 120), via(p, caps, 120)
        try:
            want, _ = d.query(sql)
            got, _ = v.query(sql)
            assert [len(r) for r in want] == [2, MAX, 2, MAX - 1, 2]
            assert got == want
        finally:
            d.close()
            v.close()


def test_large_result_read_slowly(make_proxy, servers):
    """150,000 rows read by a client that stalls after every 1.6 MB or so (the proxy pauses
    reading the backend and resumes it several times): every row arrives unchanged and
    in order, sequence ids wrap around 255 without a gap."""
    p = make_proxy(extra_yaml=UNCAPPED)
    sql = "SELECT seq, MD5(seq) FROM seq_1_to_150000"
    d = direct(servers, BASE_CAPS, 120)
    want, _ = d.query(sql)
    d.close()
    v = Stream(p.port, BASE_CAPS, 120)
    v.login_as("alice", "alice-pw", "shop")
    real_recv = v.sock.recv
    calls = [0]

    def slow_recv(n):
        calls[0] += 1
        if calls[0] % 100 == 1:
            time.sleep(0.4)  # the proxy's output fills up: it stops reading the backend
        return real_recv(min(n, 16384))

    v._recv_some = lambda: v.buf.extend(slow_recv(1 << 20) or _closed())
    try:
        got, _ = v.query(sql)
    finally:
        v.close()
    assert len(got) == 150000
    assert got == want


def _closed():
    raise AssertionError("connection closed")


def test_rows_cut_across_reads_anywhere(make_proxy):
    """A backend that sends its result in small pieces with pauses, cut inside headers,
    right after them, inside rows and inside the final EOF: the client gets every row
    whole and in order, then the end of the result."""
    fb = FakeBackend()
    try:
        p = make_proxy(extra_yaml={"limits": {"max_rows": 0}, "environments": {"slow": {
            "host": "127.0.0.1", "port": fb.port, "user": "x", "password": "y",
            "database": "shop", "access": "read_write",
            "pool": {"max": 2, "connect_timeout": "2s", "wait_timeout": "5s"}}}},
            accounts=[Account("alice", "alice-pw", "dev",
                              {"dev": "write", "prod": "read", "slow": "write"})])
        for caps in CAPS:
            v = Stream(p.port, caps, 30)
            try:
                v.login_as("alice", "alice-pw", "shop@slow")
                got, end = v.query("SELECT 1 /* trickle:300 */")
                assert got == FakeBackend.trickle_rows(300)
                got, end = v.query("SELECT 1 /* trickle:40 */")
                assert got == FakeBackend.trickle_rows(40)
            finally:
                v.close()
    finally:
        fb.close()
