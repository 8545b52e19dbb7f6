"""Logging in: both auth plugins, TLS, wrong credentials, timeouts, live account changes."""

import os
import shutil
import socket
import subprocess
import ssl
import struct
import time

import MySQLdb
import pymysql
import pytest

from harness import mariadb_cli


def test_caching_sha2_fast_auth_without_tls(proxy):
    # PyMySQL answers the handshake's caching_sha2_password with a scramble; the proxy must
    # accept it without TLS or RSA (fast authentication).
    conn = proxy.connect(ssl=None)
    try:
        assert conn._auth_plugin_name == "caching_sha2_password"
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
    finally:
        conn.close()


def test_mysql_native_password_client(proxy):
    # The mariadb client told to use mysql_native_password answers the greeting's scramble
    # with that plugin directly.
    rc, out, err = mariadb_cli(proxy, "alice", "alice-pw", "--ssl=0", "-N",
                               "--default-auth=mysql_native_password", "SELECT 42")
    assert rc == 0, err
    assert out.strip() == "42"


def test_auth_switch_from_an_unknown_plugin(proxy):
    # A client that answers with a plugin the proxy does not know gets an AuthSwitchRequest
    # to mysql_native_password and logs in with it.
    conn = pymysql.connect(host="127.0.0.1", port=proxy.port, user="alice",
                           password="alice-pw", auth_plugin_map={}, connect_timeout=5)
    conn.close()
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    try:
        greeting = _read_packet(s)
        scramble = _greeting_scramble(greeting)
        caps = 0x00000200 | 0x00008000 | 0x00080000  # PROTOCOL_41, SECURE_CONN, PLUGIN_AUTH
        body = struct.pack("<IIB23x", caps, 1 << 24, 45) + b"alice\0" + b"\0" + b"dialog\0"
        _write_packet(s, 1, body)
        seq, switch = _read_packet(s, with_seq=True)
        assert switch[0] == 0xFE
        plugin, _, data = switch[1:].partition(b"\0")
        assert plugin == b"mysql_native_password"
        new_scramble = data[:20]
        assert new_scramble != scramble
        _write_packet(s, seq + 1, pymysql._auth.scramble_native_password(b"alice-pw",
                                                                         new_scramble))
        ok = _read_packet(s)
        assert ok[0] == 0x00, ok
    finally:
        s.close()


def test_mysqldb_logs_in(proxy):
    conn = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="alice",
                           passwd="alice-pw", connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute("SELECT DATABASE()")
        assert cur.fetchall() == (("shop",),)
    finally:
        conn.close()


def test_tls_with_the_generated_certificate(proxy):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = proxy.connect(ssl=ctx)
    try:
        assert isinstance(conn._sock, ssl.SSLSocket)
        with conn.cursor() as cur:
            cur.execute("SELECT 'over tls'")
            assert cur.fetchall() == (("over tls",),)
    finally:
        conn.close()
    assert "logged in with TLS" in proxy.log_text()


def test_tls_with_the_mariadb_client(proxy):
    rc, out, err = mariadb_cli(proxy, "alice", "alice-pw", "--ssl", "--ssl-verify-server-cert=0",
                               "-N", "SELECT 'tls ok'")
    assert rc == 0, err
    assert out.strip() == "tls ok"


def test_tls_require_refuses_plaintext(make_proxy):
    p = make_proxy(extra_yaml={"tls": {"require": True}})
    with pytest.raises(pymysql.err.OperationalError) as e:
        p.connect()
    assert e.value.args[0] == 3159
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = p.connect(ssl=ctx)
    conn.close()


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("nobody", "alice-pw"),
                                           ("alice", "")])
def test_wrong_credentials_get_1045(proxy, user, password):
    with pytest.raises(pymysql.err.OperationalError) as e:
        proxy.connect(user=user, password=password)
    code, msg = e.value.args
    assert code == 1045
    used = "YES" if password else "NO"
    assert msg == f"Access denied for user '{user}'@'127.0.0.1' (using password: {used})"
    # The proxy goes on serving others.
    assert proxy.query("SELECT 1") == [(1,)]


def test_native_wrong_password_gets_1045(proxy):
    rc, out, err = mariadb_cli(proxy, "alice", "nope", "--ssl=0",
                               "--default-auth=mysql_native_password", "SELECT 1")
    assert rc != 0
    assert "ERROR 1045" in err and "Access denied for user 'alice'" in err


def test_handshake_not_completed_is_closed(make_proxy):
    p = make_proxy(extra_yaml={"handshake_timeout": "1s"})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    try:
        _read_packet(s)  # the greeting; then say nothing
        start = time.monotonic()
        assert s.recv(1) == b""  # closed by the proxy
        assert time.monotonic() - start < 4
    finally:
        s.close()
    assert p.query("SELECT 1") == [(1,)]


def test_account_changes_apply_to_new_logins(proxy):
    proxy.add_user("dave", "dave-pw", "dev", {"dev": "read"})
    deadline = time.monotonic() + 5
    while True:
        try:
            conn = proxy.connect(user="dave", password="dave-pw")
            break
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    conn.close()
    r = proxy.cli("user", "del", "dave")
    assert r.returncode == 0
    wait_refused(proxy, "dave", "dave-pw", "deleted account still logs in")


def wait_refused(p, user, password, what, seconds=5):
    """Waits (bounded) until a login as user is refused with 1045: the store is watched
    once a second."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            p.connect(user=user, password=password).close()
        except pymysql.err.OperationalError as e:
            assert e.args[0] == 1045
            return
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_an_account_store_replaced_by_another_file_is_read(make_proxy):
    """Restoring the store from a backup or deploying a new one usually replaces the file
    (mv, cp to a new inode, rsync, a configuration tool) rather than writing into it: the
    proxy must read the new file, not keep serving the accounts of the old one, which would
    keep a removed account (or a revoked grant) working with no sign of it."""
    p = make_proxy()
    p.connect(user="carol", password="carol-pw").close()
    new = p.dir / "replacement.db"
    shutil.copyfile(p.accounts_path, new)
    # The replacement, made with a configuration naming it: carol is gone, dave is new.
    other = p.dir / "replacement.yaml"
    other.write_text(p.config_path.read_text().replace(str(p.accounts_path), str(new)))
    for args in (["user", "del", "carol"], ["user", "add", "dave", "--password-stdin"]):
        r = subprocess.run([p.binary, "-c", str(other)] + args, input="dave-pw\n",
                           capture_output=True, text=True, timeout=30, env=p.env, cwd=p.dir)
        assert r.returncode == 0, r.stderr
    os.replace(new, p.accounts_path)
    wait_refused(p, "carol", "carol-pw", "an account of the replaced file still logs in")
    # The new file is the one watched from now on.
    p.cli("user", "grant", "dave", "dev", "read")
    deadline = time.monotonic() + 5
    while True:
        try:
            p.connect(user="dave", password="dave-pw").close()
            break
        except pymysql.err.OperationalError as e:
            assert e.args[0] == 1044 and time.monotonic() < deadline, e
            time.sleep(0.2)
    assert "was replaced by another file" in p.log_text()
    # A store that is gone leaves the accounts read last in use, said once.
    os.unlink(p.accounts_path)
    time.sleep(2.5)
    p.connect(user="dave", password="dave-pw").close()
    assert p.log_text().count("the file is gone") == 1


# ---- a few raw protocol helpers ---------------------------------------------------------


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _read_packet(s, with_seq=False):
    h = _recv_exact(s, 4)
    n = h[0] | h[1] << 8 | h[2] << 16
    body = _recv_exact(s, n)
    return (h[3], body) if with_seq else body


def _write_packet(s, seq, body):
    s.sendall(struct.pack("<I", len(body))[:3] + bytes([seq]) + body)


def _greeting_scramble(g):
    version_end = g.index(b"\0", 1)
    p = version_end + 1 + 4
    part1 = g[p:p + 8]
    p += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
    return part1 + g[p:p + 12]
