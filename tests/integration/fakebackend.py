"""A fake MySQL server on 127.0.0.1 for fault tests: it logs anyone in (mysql_native_password,
no check), answers every statement with OK or a one-row, one-column result, and misbehaves
on purpose when a statement holds a marker:

  evil:garbage    bytes that are no MySQL packet, then the connection stays open
  evil:truncated  a packet header that promises 100 bytes, 10 of them, then a close
  evil:huge       a packet header that claims 16 MiB - 1 bytes, a few of them, then a close
  evil:midrow     a result whose third row is cut in the middle, then a close
  evil:betweenrows a result that stops after two whole rows, then a close
  trickle:N       a well-formed result of N rows (trickle_rows) sent in small pieces with
                  pauses, cut inside packet headers, right after them, inside rows and
                  inside the final EOF, so that the proxy reads it in many parts

Every command after the login is recorded in commands as (command byte, argument). A test
may set fault to a function of (command byte, argument) that returns "close", "garbage" or
"stall" (no answer until the socket's timeout) for any command, the proxy's own session
setup (COM_INIT_DB, SET NAMES, COM_RESET_CONNECTION, ...) included, or None to answer it.

Each connection has its own thread; everything is bounded by the sockets' timeouts."""
import os
import socket
import struct
import threading
import time


def _pkt(seq, body):
    return struct.pack("<I", len(body))[:3] + bytes([seq & 0xFF]) + body


def _lenenc(b):
    return bytes([len(b)]) + b


OK = b"\x00\x00\x00\x02\x00\x00\x00"
EOF_PKT = b"\xfe\x00\x00\x02\x00"
CAPS = (0x1 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x10000 | 0x20000 | 0x40000 | 0x80000)


class LoopbackListener:
    """A TCP listener on a free 127.0.0.1 port whose thread hands each accepted connection to
    accepted() until close(); close() also closes every socket kept in self.conns."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stop = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted(c)

    def accepted(self, c):
        raise NotImplementedError

    def close(self):
        self.stop = True
        self.lsock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class FakeBackend(LoopbackListener):
    def __init__(self):
        self.queries = []
        self.commands = []
        self.fault = None
        self.next_id = 1
        super().__init__()

    def accepted(self, c):
        self.conns.append(c)
        tid = self.next_id
        self.next_id += 1
        threading.Thread(target=self._serve, args=(c, tid), daemon=True).start()

    @staticmethod
    def _read(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def _packet(self, c):
        h = self._read(c, 4)
        n = h[0] | h[1] << 8 | h[2] << 16
        return h[3], self._read(c, n)

    def _result(self, c, rows, cut=None, pad=100):
        coldef = (_lenenc(b"def") + _lenenc(b"") + _lenenc(b"") + _lenenc(b"") + _lenenc(b"x")
                  + _lenenc(b"") + b"\x0c" + struct.pack("<HIBHB", 33, 200, 0xFD if pad else 0x08, 0, 0)
                  + b"\x00\x00")
        out = _pkt(1, b"\x01") + _pkt(2, coldef) + _pkt(3, EOF_PKT)
        seq = 4
        for i in range(rows):
            out += _pkt(seq, _lenenc(b"%d" % (i + 1) + b"y" * pad))
            seq += 1
        if cut is None:
            out += _pkt(seq, EOF_PKT)
        else:
            out += cut(seq)
        c.sendall(out)

    @staticmethod
    def trickle_rows(n):
        """The row payloads of trickle:N (text protocol, one column)."""
        return [_lenenc(b"%d" % i + b"z" * ((i * 7) % 120)) for i in range(1, n + 1)]

    def _trickle(self, c, n):
        coldef = (_lenenc(b"def") + _lenenc(b"") + _lenenc(b"") + _lenenc(b"") + _lenenc(b"x")
                  + _lenenc(b"") + b"\x0c" + struct.pack("<HIBHB", 33, 200, 0xFD, 0, 0)
                  + b"\x00\x00")
        out = _pkt(1, b"\x01") + _pkt(2, coldef) + _pkt(3, EOF_PKT)
        cuts = set()
        for i, row in enumerate(self.trickle_rows(n)):
            if i % 15 == 0:
                cuts.update(len(out) + k for k in range(1, 6))
            out += _pkt(4 + i, row)
        out += _pkt(4 + n, EOF_PKT)
        cuts.add(len(out) - 3)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        last = 0
        for cut in sorted(cuts) + [len(out)]:
            c.sendall(out[last:cut])
            last = cut
            time.sleep(0.003)

    def _serve(self, c, tid):
        c.settimeout(60)
        try:
            scramble = os.urandom(20).replace(b"\0", b"a")
            greet = (b"\x0a" + b"5.5.5-10.11.0-fake\0" + struct.pack("<I", tid) + scramble[:8]
                     + b"\0" + struct.pack("<HBHHB", CAPS & 0xFFFF, 33, 2, CAPS >> 16, 21)
                     + b"\0" * 10 + scramble[8:] + b"\0" + b"mysql_native_password\0")
            c.sendall(_pkt(0, greet))
            seq, _ = self._packet(c)
            c.sendall(_pkt(seq + 1, OK))
            while not self.stop:
                _, body = self._packet(c)
                cmd, arg = body[0], body[1:]
                self.commands.append((cmd, bytes(arg)))
                if cmd == 0x01:
                    return
                fault = self.fault(cmd, bytes(arg)) if self.fault else None
                if fault == "close":
                    return
                if fault == "garbage":
                    c.sendall(b"\x05\x00\x00\x01\xfa\xfb\xfc\xfd\xfc")
                    continue
                if fault == "stall":
                    time.sleep(5)
                    return
                if cmd != 0x03:
                    c.sendall(_pkt(1, OK))
                    continue
                sql = arg.decode("utf-8", "replace")
                self.queries.append(sql)
                if "evil:garbage" in sql:
                    c.sendall(b"\x05\x00\x00\x01\xfa\xfb\xfc\xfd\xfc" + b"\x00\xff" * 50)
                    continue
                if "evil:truncated" in sql:
                    c.sendall(b"\x64\x00\x00\x01" + b"\x00" * 10)
                    return
                if "evil:huge" in sql:
                    c.sendall(b"\xff\xff\xff\x01" + b"\x01" * 1000)
                    return
                if "evil:midrow" in sql:
                    self._result(c, 2, cut=lambda s: struct.pack("<I", 100)[:3] + bytes([s])
                                 + b"\x63" + b"z" * 20)
                    return
                if "evil:betweenrows" in sql:
                    self._result(c, 2, cut=lambda s: b"")
                    return
                if "trickle:" in sql:
                    self._trickle(c, int(sql.split("trickle:", 1)[1].split()[0]))
                    continue
                word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
                if word in ("SELECT", "SHOW"):
                    self._result(c, 1, pad=0)
                else:
                    c.sendall(_pkt(1, OK))
        except (OSError, ConnectionError, IndexError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

