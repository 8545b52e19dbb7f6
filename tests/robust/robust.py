#!/usr/bin/env python3
"""Robustness suite for a running envproxy: attacks it the way a broken or hostile client
would, and after each attack checks that a fresh client still logs in and reads from every
environment, and how the proxy's memory (RSS) and descriptors moved.

    tests/robust/robust.py --port 3307 --user alice --password-env PW --envs dev,prod \
        [--pid PID] [--full] [--only NAME,...]

--pid (or --pidfile) lets the suite read /proc/PID/status and /proc/PID/fd; without it
only the service checks are made. Quick mode takes well under a minute; --full raises the
sizes and durations and runs every attack three times, failing when memory or descriptors
keep growing from round to round (a couple of minutes). Every wait is bounded; traffic goes only to the given
host. Attacks that fail logins use a user name no account has and their own loopback
source address (127.0.0.77), so the login throttle blocks neither the account nor the
address the checks use. Exit status 0 when every attack passed.

The stalled-reader attacks need a big result: they run
`SELECT REPEAT('x', 60000) FROM seq_1_to_N` (MariaDB's SEQUENCE engine) in the first
environment.
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from rawmysql import Closed, Raw, err_of, native_auth, proc_fds, tls_context  # noqa: E402

MIB = 1024 * 1024
ATTACK_SOURCE = "127.0.0.77"
NOBODY = "robust_nobody"


def rss_kb(pid):
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Target:
    def __init__(self, args):
        self.host = args.host
        self.port = args.port
        self.user = args.user
        self.password = args.password
        self.envs = args.envs
        self.pid = args.pid
        self.full = args.full

    def raw(self, timeout=10, source=None):
        return Raw(self.port, host=self.host, timeout=timeout, source=source)

    def login(self, tls=False, timeout=10):
        r = self.raw(timeout)
        answer = r.login(self.user, self.password, tls=tls)
        if answer[:1] != b"\x00":
            r.close()
            raise AssertionError(f"login refused: {err_of(answer)}")
        return r

    def check(self):
        """A fresh client logs in (plain and TLS) and reads from every environment."""
        for tls in (False, True):
            r = self.login(tls=tls)
            try:
                for i, env in enumerate(self.envs):
                    rows = r.query_rows(f"/* env={env} */ SELECT {i + 7}")
                    if rows != [bytes([len(str(i + 7))]) + str(i + 7).encode()]:
                        raise AssertionError(f"env {env}: unexpected rows {rows!r}")
            finally:
                r.close()


# ---- attacks: each takes the target, returns nothing, raises on a wrong answer ----------


def expect_error_or_close(r, codes=None, timeout=10, need_error=False):
    """The proxy answers with an error packet (one of codes) and/or closes; with
    need_error, only the error will do."""
    r.sock.settimeout(timeout)
    try:
        p = r.recv_packet()
    except (Closed, ConnectionResetError):
        if need_error:
            raise AssertionError("closed without an error packet")
        return None
    except socket.timeout:
        raise AssertionError("no answer and no close")
    e = err_of(p)
    if not e:
        raise AssertionError(f"expected an error, got {p[:40]!r}")
    if codes and e[0] not in codes:
        raise AssertionError(f"expected {codes}, got {e}")
    return e


def garbage_after_greeting(t):
    for payload in (b"\x00" * 3, os.urandom(200), b"\x20\x00\x00\x05" + b"\xff" * 32,
                    struct.pack("<I", 40)[:3] + b"\x01" + b"\x00" * 10):
        r = t.raw(source=ATTACK_SOURCE)
        try:
            r.read_greeting()
            r.sock.sendall(payload)
            r.sock.shutdown(socket.SHUT_WR)
            expect_error_or_close(r)
        finally:
            r.close()


def handshake_wrong_sequence(t):
    r = t.raw(source=ATTACK_SOURCE)
    try:
        r.read_greeting()
        r.send_packet(r.handshake_payload(NOBODY, b"x" * 20), seq=7)
        expect_error_or_close(r, {1156, 1043})
    finally:
        r.close()


def truncated_handshake(t):
    r = t.raw(source=ATTACK_SOURCE)
    try:
        r.read_greeting()
        p = r.handshake_payload(NOBODY, b"x" * 20)
        r.sock.sendall(struct.pack("<I", len(p) + 50)[:3] + b"\x01" + p)
        r.sock.shutdown(socket.SHUT_WR)
        expect_error_or_close(r)
    finally:
        r.close()


def malformed_handshakes(t):
    bodies = [b"\x00" * 4, struct.pack("<IIB23x", 0x200, 0, 45),
              struct.pack("<IIB23x", 0x8200 | 0x80000, 0, 45) + b"u" * 300,
              struct.pack("<IIB23x", 0x8200, 0, 45) + b"alice\0\xfa" + b"x" * 10]
    for body in bodies:
        r = t.raw(source=ATTACK_SOURCE)
        try:
            r.read_greeting()
            r.send_packet(body)
            expect_error_or_close(r)
        finally:
            r.close()


def auth_switch_answers(t):
    """Garbage, empty and oversized answers to the auth switch."""
    for answer in (b"", os.urandom(20), os.urandom(300), b"x" * (MIB // 2)):
        r = t.raw(source=ATTACK_SOURCE)
        try:
            r.read_greeting()
            r.send_packet(r.handshake_payload(NOBODY, b"", plugin="dialog"))
            first = r.recv_packet()
            if err_of(first) and err_of(first)[0] in (1129, 3955):
                continue  # the attack address is throttled by an earlier attack: fine
            if first[:1] != b"\xfe":
                raise AssertionError(f"no auth switch: {first[:40]!r}")
            r.send_packet(answer)
            expect_error_or_close(r, {1045, 1153, 1129, 3955})
        finally:
            r.close()


def tls_garbage(t):
    """Bytes that are not TLS after an SSLRequest, and a TLS client that sends garbage
    after the handshake."""
    r = t.raw(source=ATTACK_SOURCE)
    try:
        r.read_greeting()
        r.send_packet(struct.pack("<IIB23x", 0x8200 | 0x800 | 0x80000, 1 << 24, 45))
        r.sock.sendall(os.urandom(600))
        expect_error_or_close(r)
    except ConnectionResetError:
        pass
    finally:
        r.close()
    r = t.raw(source=ATTACK_SOURCE)
    try:
        r.read_greeting()
        r.start_tls()
        r.sock.sendall(b"\x05\x00\x00\x07" + os.urandom(5) + b"\xff\xff\xff\x02" +
                       b"z" * 1000)
        expect_error_or_close(r)
    finally:
        r.close()


def oversized_before_login(t):
    n = 20 if t.full else 5
    socks = []
    try:
        for _ in range(n):
            r = t.raw(source=ATTACK_SOURCE)
            r.read_greeting()
            r.sock.sendall(b"\xff\xff\xff\x01" + b"\0" * 65536)
            socks.append(r)
        for r in socks:
            expect_error_or_close(r, {1153}, timeout=5, need_error=True)
    finally:
        for r in socks:
            r.close()


def malformed_commands(t):
    cmds = [b"", b"\x03", b"\xee", b"\x16", b"\x17" + b"\xff" * 4,
            b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00", b"\x19\x00",
            b"\x18\xff\xff\xff\xff\x00\x00", b"\x04", b"\x11", b"\x11abc",
            b"\x1b\x05\x00", b"\x0e" * 3, b"\x03/* env=nowhere */ SELECT 1",
            b"\x03SELECT 1 /* unterminated", b"\x16" + b"\x00" * 100]
    for cmd in cmds:
        r = t.login()
        try:
            # COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA have no answer: a PING after each
            # command shows that the session still answers (or was closed).
            r.send_packet(cmd, seq=0)
            r.send_packet(b"\x0e", seq=0)
            r.sock.settimeout(10)
            try:
                for _ in range(3):
                    p = r.recv_packet()
                    if p[:1] == b"\x00" or (err_of(p) and err_of(p)[0] in (1156, 1047)):
                        break
            except (Closed, ConnectionResetError):
                pass
            except socket.timeout:
                raise AssertionError(f"no answer to {cmd[:12]!r} then PING")
        finally:
            r.close()
    # wrong sequence id and a packet above max_packet_size after login
    r = t.login()
    try:
        r.send_packet(b"\x03SELECT 1", seq=5)
        expect_error_or_close(r, {1156})
    finally:
        r.close()
    r = t.login()
    try:
        r.sock.sendall(b"\xff\xff\xff\x00" + b"\x03" + b"x" * 1000)
        r.sock.shutdown(socket.SHUT_WR)
        r.sock.settimeout(10)
        try:
            r.recv_packet()
        except (Closed, ConnectionResetError):
            pass
    finally:
        r.close()


def slow_handshakes(t):
    """Clients that connect and send nothing (or a byte now and then) hold no more than a
    socket each, and are closed at handshake_timeout; others are served meanwhile."""
    n = 100 if t.full else 30
    socks = [t.raw(source=ATTACK_SOURCE) for _ in range(n)]
    try:
        t.check()
        for r in socks[: n // 2]:
            r.read_greeting()
            r.sock.sendall(b"\x50")
        time.sleep(1)
        t.check()
    finally:
        for r in socks:
            r.close()


def tls_stalls(t):
    """SSLRequest, then nothing (inside the TLS handshake), and TLS clients that stop
    mid-record."""
    n = 50 if t.full else 15
    socks = []
    try:
        for i in range(n):
            r = t.raw(source=ATTACK_SOURCE)
            r.read_greeting()
            r.send_packet(struct.pack("<IIB23x", 0x8200 | 0x800 | 0x80000, 1 << 24, 45))
            if i % 2:
                r.sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello header, no body
            socks.append(r)
        t.check()
    finally:
        for r in socks:
            r.close()


def stalled_reader(t, tls):
    rows = 5000 if t.full else 2000
    r = t.login(tls=tls)
    try:
        r.send_packet(b"\x03/* env=%s */ SELECT REPEAT('x', 60000) FROM seq_1_to_%d"
                      % (t.envs[0].encode(), rows), seq=0)
        time.sleep(6 if t.full else 3)
        t.check()
    finally:
        r.close()


def stalled_reader_plain(t):
    stalled_reader(t, False)


def stalled_reader_tls(t):
    stalled_reader(t, True)


def connection_flood(t):
    n = 300 if t.full else 100
    socks = []
    try:
        for _ in range(n):
            try:
                socks.append(t.raw(timeout=5))
            except OSError:
                break
        for r in socks[:20]:
            try:
                r.recv_packet()
            except (Closed, OSError):
                pass
    finally:
        for r in socks:
            r.close()


def login_flood(t):
    """Wrong passwords for a name no account has, from the attack address: refused, then
    throttled; the checks' address and account are unaffected."""
    n = 60 if t.full else 20
    codes = set()
    for _ in range(n):
        r = t.raw(source=ATTACK_SOURCE)
        try:
            answer = r.login(NOBODY, "wrong")
            e = err_of(answer)
            if not e:
                raise AssertionError("a login with a wrong password succeeded")
            codes.add(e[0])
        except (Closed, ConnectionResetError):
            pass
        finally:
            r.close()
    if not codes <= {1045, 1129, 3955}:
        raise AssertionError(f"unexpected codes {codes}")


def pipelined_flood(t):
    r = t.login()
    try:
        r.send_packet(b"\x03SELECT SLEEP(2)", seq=0)
        packet = struct.pack("<I", MIB - 1)[:3] + b"\0" + b"\x03SELECT '" + \
            b"x" * (MIB - 1 - 10) + b"'"
        r.sock.setblocking(False)
        deadline = time.monotonic() + (3 if t.full else 1.5)
        while time.monotonic() < deadline:
            try:
                r.sock.send(packet)
            except BlockingIOError:
                time.sleep(0.01)
        t.check()
    finally:
        r.close()


def many_statements(t):
    """A burst of small pipelined statements from several clients, all answered."""
    n = 2000 if t.full else 500

    def one():
        r = t.login()
        try:
            blob = b"".join(struct.pack("<I", 9)[:3] + b"\0\x03SELECT 1" for _ in range(n))
            threading.Thread(target=r.sock.sendall, args=(blob,), daemon=True).start()
            for _ in range(n):
                if r.recv_packet() != b"\x01":
                    raise AssertionError("bad answer")
                r.read_result()
        finally:
            r.close()
    errors = []

    def run():
        try:
            one()
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    if errors:
        raise AssertionError(f"{errors[0]!r}")


ATTACKS = [
    ("garbage_after_greeting", garbage_after_greeting),
    ("handshake_wrong_sequence", handshake_wrong_sequence),
    ("truncated_handshake", truncated_handshake),
    ("malformed_handshakes", malformed_handshakes),
    ("oversized_before_login", oversized_before_login),
    ("auth_switch_answers", auth_switch_answers),
    ("tls_garbage", tls_garbage),
    ("malformed_commands", malformed_commands),
    ("slow_handshakes", slow_handshakes),
    ("tls_stalls", tls_stalls),
    ("stalled_reader_plain", stalled_reader_plain),
    ("stalled_reader_tls", stalled_reader_tls),
    ("connection_flood", connection_flood),
    ("login_flood", login_flood),
    ("pipelined_flood", pipelined_flood),
    ("many_statements", many_statements),
]


def run(target, only=None, out=sys.stdout, rss_slack_mib=24, fd_slack=8):
    """Runs the attacks (three rounds in full mode, to show slow leaks); returns a list of
    (name, ok, detail) and prints a report."""
    results = []
    target.check()
    rounds = 3 if target.full else 1
    after_round = []
    for rnd in range(rounds):
        if rounds > 1:
            print(f"-- round {rnd + 1} of {rounds}", file=out, flush=True)
        for name, attack in ATTACKS:
            if only and name not in only:
                continue
            results.append(run_one(target, name, attack, out, rss_slack_mib, fd_slack))
        after_round.append((rss_kb(target.pid), proc_fds(target.pid) if target.pid else None))
    if rounds > 1 and after_round[0][0] and after_round[-1][0]:
        grown = (after_round[-1][0] - after_round[0][0]) / 1024
        fds = (after_round[0][1], after_round[-1][1])
        ok = grown < 16 and (None in fds or fds[1] <= fds[0] + fd_slack)
        detail = f"rss +{grown:.1f} MiB, fds {fds[0]} -> {fds[1]} from round 1 to round {rounds}"
        print(f"{'ok  ' if ok else 'FAIL'} {'rounds':28s} {detail}", file=out, flush=True)
        results.append(("rounds", ok, "" if ok else detail))
    return results


def run_one(target, name, attack, out, rss_slack_mib, fd_slack):
    rss0, fds0 = rss_kb(target.pid), proc_fds(target.pid) if target.pid else None
    start = time.monotonic()
    ok, detail = True, ""
    try:
        attack(target)
    except Exception as e:
        ok, detail = False, f"attack: {e!r}"
    try:
        target.check()
    except Exception as e:
        ok, detail = False, (detail + "; " if detail else "") + f"fresh client: {e!r}"
    # Give the proxy a moment to close what the attack left, then measure.
    fds1 = None
    deadline = time.monotonic() + 8
    while target.pid:
        fds1 = proc_fds(target.pid)
        if fds1 is None or fds0 is None or fds1 <= fds0 + fd_slack or \
                time.monotonic() > deadline:
            break
        time.sleep(0.2)
    rss1 = rss_kb(target.pid)
    if fds0 is not None and fds1 is not None and fds1 > fds0 + fd_slack:
        ok, detail = False, detail + f" descriptors {fds0} -> {fds1}"
    if rss0 and rss1 and (rss1 - rss0) / 1024 > rss_slack_mib:
        ok, detail = False, detail + f" RSS grew by {(rss1 - rss0) / 1024:.0f} MiB"
    took = time.monotonic() - start
    mem = f"rss {rss0 // 1024 if rss0 else '?'} -> {rss1 // 1024 if rss1 else '?'} MiB"
    fdt = f"fds {fds0 if fds0 is not None else '?'} -> {fds1 if fds1 is not None else '?'}"
    print(f"{'ok  ' if ok else 'FAIL'} {name:28s} {took:6.1f}s  {mem:22s} {fdt:14s} {detail}",
          file=out, flush=True)
    return (name, ok, detail)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-env", default="ENVPROXY_PASSWORD",
                    help="variable holding the password (default ENVPROXY_PASSWORD)")
    ap.add_argument("--envs", default="dev,prod", help="environments to check, comma-separated")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--pidfile")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--only", help="attacks to run, comma-separated")
    args = ap.parse_args()
    args.password = os.environ.get(args.password_env, "")
    args.envs = [e for e in args.envs.split(",") if e]
    if args.pidfile and not args.pid:
        with open(args.pidfile) as f:
            args.pid = int(f.read().strip())
    results = run(Target(args), only=set(args.only.split(",")) if args.only else None)
    failed = [r for r in results if not r[1]]
    print(f"{len(results) - len(failed)} of {len(results)} attacks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
