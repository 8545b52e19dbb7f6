"""A MySQL wire-protocol client at the byte level, for tests that must see or send exactly
what a driver would hide: packets before login, wrong sizes and sequence ids, TLS with a
check for close_notify, pipelined commands. Loopback only; every wait has a timeout.
"""

import hashlib
import socket
import ssl
import struct
import time

CLIENT_LONG_PASSWORD = 0x1
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_DEPRECATE_EOF = 0x1000000

BASE_CAPS = (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION |
             CLIENT_PLUGIN_AUTH | CLIENT_MULTI_RESULTS)

COM_QUIT = 0x01
COM_QUERY = 0x03
COM_CHANGE_USER = 0x11


class Closed(Exception):
    """The peer closed the connection (cleanly, or with a TLS close_notify)."""


def native_auth(password, scramble):
    """mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))."""
    if not password:
        return b""
    h1 = hashlib.sha1(password.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(scramble + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def err_of(payload):
    """(code, message) of an ERR packet payload, or None."""
    if not payload or payload[0] != 0xFF:
        return None
    code = struct.unpack("<H", payload[1:3])[0]
    msg = payload[3:]
    if msg[:1] == b"#":
        msg = msg[6:]
    return code, msg.decode("utf-8", "replace")


class Raw:
    """One connection to the proxy. recv_packet() returns a payload; the next sequence id
    follows the last one received."""

    def __init__(self, port, host="127.0.0.1", timeout=10, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.seq = 0
        self.tls = False
        self.scramble = b""

    # ---- bytes

    def _recv_some(self):
        try:
            data = self.sock.recv(65536)
        except ssl.SSLEOFError as e:
            raise Closed("TLS stream ended without close_notify: %s" % e) from e
        if not data:
            raise Closed("connection closed")
        self.buf += data

    def recv_packet(self):
        while len(self.buf) < 4:
            self._recv_some()
        n = self.buf[0] | self.buf[1] << 8 | self.buf[2] << 16
        while len(self.buf) < 4 + n:
            self._recv_some()
        self.seq = (self.buf[3] + 1) & 0xFF
        payload = self.buf[4:4 + n]
        self.buf = self.buf[4 + n:]
        return payload

    def send_packet(self, payload, seq=None):
        s = self.seq if seq is None else seq
        self.sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([s]) + payload)
        self.seq = (s + 1) & 0xFF

    def expect_closed(self, timeout=10):
        """Waits for the end of the stream; returns how it ended: 'close_notify' (TLS),
        'fin' (plain) or raises AssertionError for data or a timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ssl.SSLEOFError:
            return "tls-eof-without-close-notify"
        except ConnectionResetError:
            return "reset"
        except socket.timeout:
            raise AssertionError("the proxy did not close the connection")
        if data:
            raise AssertionError(f"unexpected bytes: {data[:80]!r}")
        return "close_notify" if self.tls else "fin"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- handshake

    def read_greeting(self):
        g = self.recv_packet()
        if g[:1] == b"\xff":
            return g
        i = g.index(b"\0", 1) + 1  # server version
        i += 4  # connection id
        part1 = g[i:i + 8]
        i += 8 + 1 + 2 + 1 + 2 + 2
        alen = g[i]
        i += 1 + 10
        part2 = g[i:i + max(13, alen - 8) - 1]
        self.scramble = part1 + part2
        return g

    def start_tls(self, caps=BASE_CAPS):
        self.send_packet(struct.pack("<IIB23x", caps | CLIENT_SSL, 1 << 24, 45))
        self.sock = tls_context().wrap_socket(self.sock, suppress_ragged_eofs=False)
        self.tls = True

    def handshake_payload(self, user, auth=b"", db=None, plugin="mysql_native_password",
                          caps=BASE_CAPS):
        if db is not None:
            caps |= CLIENT_CONNECT_WITH_DB
        if self.tls:
            caps |= CLIENT_SSL
        p = struct.pack("<IIB23x", caps, 1 << 24, 45)
        p += (user.encode() if isinstance(user, str) else user) + b"\0"
        p += bytes([len(auth)]) + auth
        if db is not None:
            p += db.encode() + b"\0"
        if plugin is not None:
            p += plugin.encode() + b"\0"
        return p

    def login(self, user, password, db=None, tls=False):
        """Greeting, optional TLS, handshake with mysql_native_password. Returns the
        server's answer (payload of OK or ERR)."""
        self.read_greeting()
        if tls:
            self.start_tls()
        self.send_packet(self.handshake_payload(user, native_auth(password, self.scramble),
                                                db=db))
        r = self.recv_packet()
        if r[:1] == b"\xfe":  # auth switch
            i = r.index(b"\0", 1) + 1
            self.scramble = r[i:].rstrip(b"\0")
            self.send_packet(native_auth(password, self.scramble))
            r = self.recv_packet()
        return r

    # ---- commands

    def query(self, sql):
        """Sends COM_QUERY and returns the first response packet."""
        self.send_packet(bytes([COM_QUERY]) + sql.encode(), seq=0)
        return self.recv_packet()

    def read_result(self):
        """After a column count: reads to the end of a text result set (EOF or OK with
        0xFE), returns the rows' raw payloads."""
        rows = []
        while True:
            p = self.recv_packet()
            if p[:1] == b"\xfe" and len(p) < 0xFFFFFF and len(p) < 9:
                break
            if p[:1] == b"\xff":
                raise AssertionError(f"error in result: {err_of(p)}")
        # columns done; rows follow
        while True:
            p = self.recv_packet()
            if p[:1] == b"\xfe" and len(p) < 9:
                return rows
            if p[:1] == b"\xff":
                raise AssertionError(f"error in result: {err_of(p)}")
            rows.append(p)

    def query_rows(self, sql):
        first = self.query(sql)
        if first[:1] == b"\xff":
            raise AssertionError(f"{sql}: {err_of(first)}")
        if first[:1] == b"\x00":
            return []
        return self.read_result()


def wait_for(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def proc_fds(pid):
    import os
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def proc_cpu_seconds(pid):
    """User + system CPU time of process pid, in seconds."""
    import os
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
