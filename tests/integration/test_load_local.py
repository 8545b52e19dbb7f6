"""LOAD DATA LOCAL INFILE through envproxy: the client's own file, named in its own statement,
goes to a writable environment; nothing else ever moves (a server asking for another file,
a read-only session, a client without the capability), and a transfer stopped half way
(garbage from the client, a client that goes, a backend that dies, statement_timeout, KILL
QUERY) never leaves a half-loaded statement committed, a leaked connection or a session
state dropped silently. Real MariaDB servers, real clients (PyMySQL, MySQLdb, the mariadb
CLI) and raw sockets where a driver would hide the bytes.
"""

import hashlib
import socket
import ssl
import struct
import threading
import time
import zlib

import MySQLdb
import pymysql
import pytest

from harness import mariadb_cli, server_state, state_diff
from rawmysql import BASE_CAPS, Raw, err_of, native_auth, wait_for

CLIENT_LOCAL_FILES = 0x80
TABLE = "infile_rows"
MAX = 0xFFFFFF


@pytest.fixture
def table(servers):
    """An empty InnoDB table shop.infile_rows (id, v) in dev, dropped afterwards."""
    servers.sql("dev", f"DROP TABLE IF EXISTS shop.{TABLE}")
    servers.sql("dev", f"CREATE TABLE shop.{TABLE} (id INT PRIMARY KEY, v VARCHAR(200)) "
                       "ENGINE=InnoDB")
    yield TABLE
    servers.sql("dev", f"DROP TABLE IF EXISTS shop.{TABLE}")


def rows_text(first, n, width=40):
    """n CSV rows id,<width hex chars>, as bytes."""
    return b"".join(b"%d,%s\n" % (i, hashlib.sha1(b"%d" % i).hexdigest()[:width].encode())
                    for i in range(first, first + n))


def table_sum(servers):
    """(rows, checksum) of the table in dev, the checksum order-independent."""
    r = servers.sql("dev", f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ',', v))), 0) "
                           f"FROM shop.{TABLE}")[0]
    return int(r[0]), int(r[1])


def expected_sum(data):
    lines = [x for x in data.split(b"\n") if x]
    return len(lines), sum(zlib.crc32(x) for x in lines)


def load_sql(path):
    return f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {TABLE} FIELDS TERMINATED BY ','"


def backend_threads(servers, marker):
    return servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                              f"WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()")[0][0]


class FileClient(Raw):
    """A raw client that announces CLIENT_LOCAL_FILES (or not) and sends files by hand."""

    def __init__(self, port, user="alice", password="alice-pw", caps=BASE_CAPS, db=None):
        super().__init__(port, timeout=20)
        g = self.read_greeting()
        i = g.index(b"\0", 1) + 1
        self.thread_id = struct.unpack("<I", g[i:i + 4])[0]
        self.send_packet(self.handshake_payload(user, native_auth(password, self.scramble),
                                                db=db, caps=caps))
        r = self.recv_packet()
        if r[:1] == b"\xfe":
            j = r.index(b"\0", 1) + 1
            self.scramble = r[j:].rstrip(b"\0")
            self.send_packet(native_auth(password, self.scramble))
            r = self.recv_packet()
        assert r[:1] == b"\x00", err_of(r)

    def send_chunks(self, chunks):
        for c in chunks:
            self.send_packet(c)


def local_caps():
    return BASE_CAPS | CLIENT_LOCAL_FILES


# ---- real clients ---------------------------------------------------------------------------

def test_pymysql_loads_its_file_into_a_writable_environment(proxy, servers, table, tmp_path):
    """PyMySQL with local_infile=True loads a file into dev: every row arrives (checksum),
    the affected-rows count is the server's, and the session goes on afterwards."""
    data = rows_text(0, 5000)
    f = tmp_path / "rows.csv"
    f.write_bytes(data)
    conn = proxy.connect(local_infile=True, autocommit=True)
    with conn.cursor() as cur:
        n = cur.execute(load_sql(f))
        assert n == 5000
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()
    assert table_sum(servers) == expected_sum(data)


def test_pymysql_loads_its_file_over_tls(proxy, servers, table, tmp_path):
    """The same over TLS (the file comes through the TLS filter of the client's socket)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    data = rows_text(0, 200000)
    f = tmp_path / "rows.csv"
    f.write_bytes(data)
    conn = proxy.connect(local_infile=True, autocommit=True, ssl=ctx)
    with conn.cursor() as cur:
        cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1]
        assert cur.execute(load_sql(f)) == 200000
    conn.close()
    assert table_sum(servers) == expected_sum(data)


def test_mysqldb_loads_its_file(proxy, servers, table, tmp_path):
    """MySQLdb (Connector/C underneath) with local_infile=1 loads a file into dev."""
    data = rows_text(0, 3000)
    f = tmp_path / "rows.csv"
    f.write_bytes(data)
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice",
                           password="alice-pw", database="shop", local_infile=1,
                           connect_timeout=5)
    cur = conn.cursor()
    cur.execute(load_sql(f))
    conn.commit()
    cur.execute("SELECT COUNT(*) FROM " + TABLE)
    assert cur.fetchone() == (3000,)
    conn.close()
    assert table_sum(servers) == expected_sum(data)


def test_mariadb_cli_loads_a_file_over_16_mib_with_bounded_memory(make_proxy, servers, table,
                                                                   tmp_path):
    """The mariadb CLI with --local-infile=1 loads a 48 MiB file (many packets, rows across
    packet boundaries): the rows arrive intact (checksum), and the proxy's peak RSS grows by
    far less than the file (it streams, never holds the file). A sanitizer build keeps
    freed memory in quarantine: a small one here, so that the bound means the same."""
    proxy = make_proxy(env_overrides={
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4"})
    data = rows_text(0, 1000000)
    assert len(data) > 40 * 1024 * 1024
    f = tmp_path / "big.csv"
    f.write_bytes(data)
    proxy.query("SELECT 1")  # pools and buffers warmed up before the baseline
    before = proxy.peak_rss_kb()
    rc, out, err = mariadb_cli(proxy, "alice", "alice-pw", "--local-infile=1", "-D", "shop",
                               load_sql(f), timeout=240)
    assert rc == 0, err
    after = proxy.peak_rss_kb()
    assert table_sum(servers) == expected_sum(data)
    assert after - before < 16 * 1024, (before, after)


def test_a_16_mib_packet_and_its_continuation_are_framed_right(proxy, servers, table):
    """A raw client sends its file as one packet of 16 MiB - 1 bytes, the empty packet that
    continues it, then more packets: the empty continuation does not end the file, and every
    row (some cut across packets) arrives intact."""
    data = rows_text(0, 18 * 1024 * 1024 // 50, width=40)
    assert len(data) > MAX + 1024
    cli = FileClient(proxy.port, caps=local_caps(), db="shop")
    cli.send_packet(bytes([3]) + load_sql("big.csv").encode(), seq=0)
    req = cli.recv_packet()
    assert req == b"\xfbbig.csv", req
    cli.send_packet(data[:MAX])
    cli.send_packet(b"")  # continues the full packet: not the end of the file
    rest = data[MAX:]
    cli.send_chunks([rest[i:i + 100000] for i in range(0, len(rest), 100000)])
    cli.send_packet(b"")
    ok = cli.recv_packet()
    assert ok[:1] == b"\x00", err_of(ok)
    assert table_sum(servers) == expected_sum(data)
    rows = cli.query_rows("SELECT COUNT(*) FROM " + TABLE)
    assert rows and rows[0][1:] == str(expected_sum(data)[0]).encode()
    cli.close()


# ---- refused before anything moves ---------------------------------------------------------

def test_read_only_environment_refuses_with_1290_and_changes_nothing(proxy, servers, tmp_path):
    """In read-only prod (and for an account with read on dev) LOAD DATA LOCAL INFILE gets
    1290 from the policy; the client is never asked for its file and prod is unchanged."""
    f = tmp_path / "rows.csv"
    f.write_bytes(rows_text(100, 10))
    before = server_state(servers.prod)
    conn = proxy.connect(database="shop@prod", local_infile=True, autocommit=True)
    with conn.cursor() as cur:
        for sql in (f"LOAD DATA LOCAL INFILE '{f}' INTO TABLE customers",
                    f"LOAD DATA LOW_PRIORITY LOCAL INFILE '{f}' REPLACE INTO TABLE orders",
                    f"LOAD XML LOCAL INFILE '{f}' INTO TABLE products"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                cur.execute(sql)
            assert e.value.args[0] == 1290, e.value.args
    conn.close()
    assert not state_diff(before, server_state(servers.prod))
    dev_before = server_state(servers.dev)
    conn = proxy.connect(user="carol", password="carol-pw", local_infile=True)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute(f"LOAD DATA LOCAL INFILE '{f}' INTO TABLE customers")
        assert e.value.args[0] == 1290
    conn.close()
    assert not state_diff(dev_before, server_state(servers.dev))


def test_client_without_the_capability_gets_1148(proxy, servers, table, tmp_path):
    """A client that did not announce CLIENT_LOCAL_FILES (PyMySQL without local_infile, a
    raw client) gets 1148 naming how to enable it; nothing reaches the server and the
    session goes on."""
    f = tmp_path / "rows.csv"
    f.write_bytes(rows_text(0, 10))
    conn = proxy.connect(autocommit=True)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute(load_sql(f) + " /* nocap-marker */")
        assert e.value.args[0] == 1148 and "local_infile=True" in e.value.args[1]
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()
    raw = FileClient(proxy.port, db="shop")
    r = raw.query(load_sql("x.csv"))
    assert err_of(r)[0] == 1148
    assert raw.query_rows("SELECT 1")
    raw.close()
    assert table_sum(servers) == (0, 0)


@pytest.mark.parametrize("sql", [
    "LOAD DATA LOCAL INFILE '/tmp/a' '/etc/passwd' INTO TABLE infile_rows",
    "LOAD DATA LOCAL INFILE _binary'/etc/passwd' INTO TABLE infile_rows",
    "LOAD DATA LOCAL INFILE '/tmp/it''s' INTO TABLE infile_rows",
    "LOAD DATA LOCAL INFILE '/tmp/a\\\\b' INTO TABLE infile_rows",
    "LOAD DATA LOCAL INFILE \"/etc/passwd\" INTO TABLE infile_rows",
    "/*!50700 LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE infile_rows */",
    "/*M!100000 LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE infile_rows */",
    "LOAD DATA LOCAL INFILE '/tmp/a' INTO TABLE infile_rows; SELECT 1",
])
def test_a_file_name_that_cannot_be_read_for_certain_is_refused(proxy, servers, table, sql):
    """A statement whose file name the proxy cannot read exactly as the server will (joined
    literals, a character set prefix, quotes or escapes inside, an executable comment, more
    statements) is refused with 1148 before it reaches a server."""
    raw = FileClient(proxy.port, caps=local_caps() | 0x10000, db="shop")  # + MULTI_STATEMENTS
    r = raw.query(sql)
    assert err_of(r) and err_of(r)[0] == 1148, r
    assert raw.query_rows("SELECT 1")
    raw.close()
    assert table_sum(servers) == (0, 0)


# ---- a server asking for another file -------------------------------------------------------

class Mitm:
    """A TCP relay between envproxy and the dev server that tampers with the server's
    packets: rename replaces a LOCAL INFILE request for one name with another; inject (a
    file name) turns the OK of the next `DO 1` into a request for that file, keeps
    envproxy's answer to it from the server (recorded in answers) and then delivers the OK
    it held back."""

    def __init__(self, target_port):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.target = target_port
        self.rename = None  # (old name bytes, new name bytes)
        self.inject = None
        self.answers = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.lsock.settimeout(0.5)
        while not self.stop:
            try:
                a, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target), timeout=30)
            pair = {"proxy": a, "server": b, "armed": False, "held": None}
            threading.Thread(target=self._pump, args=(pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, False), daemon=True).start()

    @staticmethod
    def _packets(sock):
        buf = b""
        while True:
            while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:3], "little"):
                d = sock.recv(65536)
                if not d:
                    return
                buf += d
            n = int.from_bytes(buf[:3], "little")
            yield buf[:4], buf[4:4 + n]
            buf = buf[4 + n:]

    def _pump(self, pair, from_server):
        src = pair["server"] if from_server else pair["proxy"]
        dst = pair["proxy"] if from_server else pair["server"]
        src.settimeout(120)
        try:
            for h, p in self._packets(src):
                if from_server and self.rename and p == b"\xfb" + self.rename[0]:
                    p = b"\xfb" + self.rename[1]
                    h = struct.pack("<I", len(p))[:3] + h[3:4]
                elif from_server and pair["armed"] and p[:1] == b"\x00":
                    pair["armed"] = False
                    pair["held"] = (h, p)
                    p = b"\xfb" + self.inject
                    h = struct.pack("<I", len(p))[:3] + h[3:4]
                elif not from_server and pair["held"] is not None:
                    # envproxy's answer to the injected request: not for the server.
                    self.answers.append(p)
                    hh, hp = pair["held"]
                    pair["held"] = None
                    pair["proxy"].sendall(hh[:3] + bytes([(h[3] + 1) & 0xFF]) + hp)
                    continue
                elif not from_server and self.inject and p == b"\x03DO 1":
                    pair["armed"] = True
                dst.sendall(h + p)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.lsock.close()


@pytest.fixture
def mitm_proxy(make_proxy, servers):
    m = Mitm(servers.dev.port)
    p = make_proxy(extra_yaml={"environments": {"dev": {"port": m.port}}})
    yield p, m
    m.close()


def test_a_server_asking_for_another_file_gets_an_empty_one(mitm_proxy, servers, table,
                                                            tmp_path):
    """A man in the middle renames the server's request to a secret file on the proxy's (and
    client's) machine: the client is never asked, the server gets an empty file (no row of
    the secret or of the named file arrives), the client gets 1148, and the connection goes
    on working."""
    p, m = mitm_proxy
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"777,the-secret\n")
    named = tmp_path / "named.csv"
    named.write_bytes(rows_text(0, 5))
    m.rename = (str(named).encode(), str(secret).encode())
    conn = p.connect(local_infile=True, autocommit=True)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute(load_sql(named))
        assert e.value.args[0] == 1148 and "other than the one" in e.value.args[1]
        cur.execute("SELECT COUNT(*) FROM " + TABLE)
        assert cur.fetchone() == (0,)
    conn.close()
    assert table_sum(servers) == (0, 0)
    assert "the backend asked for local file" in p.log_text()


def test_a_file_request_for_a_statement_that_is_no_load_is_refused(mitm_proxy, tmp_path):
    """A man in the middle answers `DO 1` with a request for /etc/passwd: envproxy answers
    with an empty file (it never opens a file itself, and no statement named one), the
    client gets 1148 and the next statement works on the same session."""
    p, m = mitm_proxy
    conn = p.connect(local_infile=True, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        m.inject = b"/etc/passwd"
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("DO 1")
        assert e.value.args[0] == 1148 and "not LOAD DATA LOCAL" in e.value.args[1]
        m.inject = None
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    conn.close()
    assert m.answers == [b""]


# ---- a transfer stopped half way -----------------------------------------------------------

def start_file(port, marker, caps=None, user="alice"):
    """A raw client that started a LOAD DATA LOCAL INFILE (marked by a comment) and was
    asked for its file; it has sent 2 packets of rows."""
    cli = FileClient(port, caps=caps or local_caps(), db="shop", user=user,
                     password=f"{user}-pw")
    cli.send_packet(bytes([3]) + (load_sql("f.csv") + f" /* {marker} */").encode(), seq=0)
    req = cli.recv_packet()
    assert req == b"\xfbf.csv", req
    cli.send_packet(rows_text(0, 1000))
    cli.send_packet(rows_text(1000, 1000))
    return cli


def load_running(servers, marker):
    return wait_for(lambda: backend_threads(servers, marker) == 1, 10)


def gone(servers, marker):
    return wait_for(lambda: backend_threads(servers, marker) == 0, 10)


def test_garbage_in_the_middle_of_a_file_closes_only_that_client(proxy, servers, table):
    """A raw client breaks the framing in the middle of its file (a packet with a wrong
    sequence id, as a command would have): it gets 1156 and is disconnected, the statement
    is not committed (no row), its backend connection is closed (not given to anyone else
    mid-file), and the proxy serves others."""
    cli = start_file(proxy.port, "garbage-seq")
    assert load_running(servers, "garbage-seq")
    cli.send_packet(b"\x03DROP TABLE shop.infile_rows", seq=0)
    r = cli.recv_packet()
    assert err_of(r)[0] == 1156, r
    cli.expect_closed()
    assert gone(servers, "garbage-seq")
    assert table_sum(servers) == (0, 0)
    assert proxy.query("SELECT COUNT(*) FROM " + TABLE) == [(0,)]


def test_client_that_disconnects_mid_file_commits_nothing(proxy, servers, table):
    """A client that closes its socket half way through its file: the statement on the server
    ends without committing a row, its connection is closed, and the proxy goes on."""
    cli = start_file(proxy.port, "client-gone")
    assert load_running(servers, "client-gone")
    cli.close()
    assert gone(servers, "client-gone")
    assert table_sum(servers) == (0, 0)
    assert proxy.query("SELECT 1") == [(1,)]


def test_backend_that_dies_mid_file_is_reported_after_the_file(proxy, servers, table):
    """The backend connection is killed on the server while the client sends its file: the
    client, which reads nothing before the end of its file, sends the rest (dropped), then
    gets one error that names the environment; with a transaction open, the error says its
    state is gone; the session goes on, no row was committed."""
    cli = start_file(proxy.port, "backend-dies")
    assert load_running(servers, "backend-dies")
    tid = servers.sql("dev", "SELECT ID FROM information_schema.PROCESSLIST "
                             "WHERE INFO LIKE '%backend-dies%' AND ID <> CONNECTION_ID()")[0][0]
    servers.sql("dev", f"KILL {tid}")
    time.sleep(0.3)
    cli.send_chunks([rows_text(2000 + i * 100, 100) for i in range(20)])
    cli.send_packet(b"")
    r = cli.recv_packet()
    code, msg = err_of(r)
    assert "environment 'dev'" in msg, msg
    assert cli.query_rows("SELECT 1")
    cli.close()
    assert table_sum(servers) == (0, 0)


def test_kill_query_mid_file_rolls_back_and_says_the_transaction_is_gone(proxy, servers,
                                                                          table):
    """KILL QUERY from another session of the account while the file is sent, inside a
    transaction that already inserted a row: the client gets 1317 after its file, saying the
    session's transaction is gone; neither the earlier row nor any of the file is
    committed; the session works afterwards."""
    cli = FileClient(proxy.port, caps=local_caps(), db="shop")
    assert cli.query("BEGIN")[:1] == b"\x00"
    assert cli.query(f"INSERT INTO {TABLE} VALUES (-1, 'in-txn')")[:1] == b"\x00"
    cli.send_packet(bytes([3]) + (load_sql("f.csv") + " /* killed-file */").encode(), seq=0)
    assert cli.recv_packet() == b"\xfbf.csv"
    cli.send_packet(rows_text(0, 1000))
    assert load_running(servers, "killed-file")
    killer = proxy.connect()
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {cli.thread_id}")
    killer.close()
    cli.send_packet(rows_text(1000, 1000))
    cli.send_packet(b"")
    code, msg = err_of(cli.recv_packet())
    assert code == 1317 and "transaction" in msg, (code, msg)
    assert gone(servers, "killed-file")
    assert table_sum(servers) == (0, 0)
    rows = cli.query_rows("SELECT @@in_transaction")
    assert rows and rows[0][1:] == b"0"
    cli.close()


def test_statement_timeout_mid_file(make_proxy, servers, table):
    """A client that stalls past statement_timeout in the middle of its file: after its
    file it gets 3024, nothing was committed, the backend connection was closed, and the
    next statement works."""
    p = make_proxy(extra_yaml={"limits": {"statement_timeout": "1s"}})
    cli = start_file(p.port, "stalled-file")
    assert load_running(servers, "stalled-file")
    time.sleep(2)
    cli.send_packet(rows_text(2000, 10))
    cli.send_packet(b"")
    code, msg = err_of(cli.recv_packet())
    assert code == 3024, (code, msg)
    assert gone(servers, "stalled-file")
    assert table_sum(servers) == (0, 0)
    assert cli.query_rows("SELECT 1")
    cli.close()


def test_a_second_statement_after_a_file_is_a_command_again(proxy, servers, table):
    """Pipelined after the file's end, the next command is read as a command (the file
    state ends exactly at the client's empty packet)."""
    cli = FileClient(proxy.port, caps=local_caps(), db="shop")
    cli.send_packet(bytes([3]) + load_sql("f.csv").encode(), seq=0)
    assert cli.recv_packet() == b"\xfbf.csv"
    data = rows_text(0, 100)
    # The file, its end, and the next command in one write.
    blob = (struct.pack("<I", len(data))[:3] + bytes([cli.seq]) + data +
            b"\0\0\0" + bytes([(cli.seq + 1) & 0xFF]))
    q = b"\x03SELECT COUNT(*) FROM " + TABLE.encode()
    blob += struct.pack("<I", len(q))[:3] + b"\0" + q
    cli.sock.sendall(blob)
    ok = cli.recv_packet()
    assert ok[:1] == b"\x00", err_of(ok)
    rows = cli.read_result() if cli.recv_packet()[:1] == b"\x01" else None
    assert rows and rows[0][1:] == b"100"
    cli.close()
