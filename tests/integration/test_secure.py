"""Audit log, enc: backend passwords and TLS to a backend (SPEC sections 3 and 9)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pymysql
from pymysql.constants import CLIENT
import pytest

from dnsshim import shim_env
from harness import BACKEND_PASSWORD, REPO, envproxy_bin, free_port

KEY = "6f" * 32  # 64 hex digits: a test key


def read_lines(path, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            if len(lines) >= n:
                return lines
        time.sleep(0.1)
    raise AssertionError(f"{path}: fewer than {n} lines")


def test_audit_lines_for_allowed_refused_and_failed_login(make_proxy, tmp_path):
    log = tmp_path / "audit.jsonl"
    p = make_proxy(extra_yaml={"audit_log": str(log)})
    conn = p.connect(database="shop@prod", autocommit=None)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM orders WHERE id <= 2")
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("DELETE FROM orders")
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("SELECT * FROM no_such_table")
    with pytest.raises(pymysql.err.OperationalError):
        p.connect(password="wrong")
    lines = read_lines(log, 4)
    keys = {"ts", "conn", "user", "client", "env", "db", "sql", "verdict", "rows", "ms", "error"}
    allowed = [x for x in lines if x.get("sql") == "SELECT id FROM orders WHERE id <= 2"][0]
    assert keys <= set(allowed)
    assert allowed["verdict"] == "allowed" and allowed["env"] == "prod" and allowed["db"] == "shop"
    assert allowed["rows"] == 2 and allowed["user"] == "alice" and allowed["error"] is None
    assert allowed["conn"] == conn.thread_id() and allowed["client"].startswith("127.0.0.1:")
    assert allowed["ts"].endswith("Z") and allowed["ms"] >= 0
    refused = [x for x in lines if x.get("sql") == "DELETE FROM orders"][0]
    assert refused["verdict"] == "refused" and refused["error"].startswith("1290")
    err = [x for x in lines if x.get("sql") == "SELECT * FROM no_such_table"][0]
    assert err["verdict"] == "error" and err["error"].startswith("1146")
    failed = [x for x in lines if x.get("event") == "login_failed"][0]
    assert failed["verdict"] == "refused" and failed["sql"] is None
    assert failed["user"] == "alice"
    # No secret reaches the audit log.
    text = log.read_text()
    assert "wrong" not in text and BACKEND_PASSWORD not in text
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    conn.close()


def test_passwords_in_statements_are_hidden_in_the_audit_log(make_proxy, servers, tmp_path):
    """CREATE USER ... IDENTIFIED BY, SET PASSWORD, PASSWORD() and the like carry a password
    in clear (MariaDB does not mask them in its own logs): the audit line keeps the
    statement up to the word that introduces it, then " <secret>"; the other statements
    of the packet stay as they were, and refused statements are hidden the same way."""
    log = tmp_path / "audit.jsonl"
    p = make_proxy(extra_yaml={"audit_log": str(log)})
    conn = p.connect(autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS)
    secrets = ["Sekr1t-one", "Sekr1t-two", "Sekr1t-three", "Sekr1t-four"]
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER audit_pw_u@localhost IDENTIFIED BY '{secrets[0]}'")
            cur.execute(f"ALTER USER audit_pw_u@localhost IDENTIFIED BY '{secrets[1]}'; "
                        "SELECT 'after'")
            while cur.nextset():
                pass
            cur.execute(f"SELECT PASSWORD('{secrets[2]}')")
        prod = p.connect(database="shop@prod")
        with prod.cursor() as cur:
            with pytest.raises(pymysql.err.MySQLError):
                cur.execute(f"SET PASSWORD FOR audit_pw_u@localhost = PASSWORD('{secrets[3]}')")
        prod.close()
    finally:
        servers.sql("dev", "DROP USER IF EXISTS audit_pw_u@localhost")
        conn.close()
    lines = read_lines(log, 5)
    text = log.read_text()
    for secret in secrets:
        assert secret not in text
    sqls = [x["sql"] for x in lines if x.get("sql")]
    assert "CREATE USER audit_pw_u@localhost IDENTIFIED <secret>" in sqls
    assert any(q.startswith("ALTER USER audit_pw_u@localhost IDENTIFIED <secret>; SELECT 'after'")
               for q in sqls), sqls
    assert "SELECT PASSWORD <secret>" in sqls
    refused = [x for x in lines if x.get("sql") == "SET PASSWORD <secret>"]
    assert refused and refused[0]["verdict"] == "refused"


def test_audit_log_reopened_on_sighup(make_proxy, tmp_path):
    log = tmp_path / "audit.jsonl"
    p = make_proxy(extra_yaml={"audit_log": str(log)})
    p.query("SELECT 'before'")
    # Wait for that very line (a driver's own statements, such as SET AUTOCOMMIT, come
    # first): a line still queued at the rename would go to the reopened file.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
            log.exists() and "SELECT 'before'" in log.read_text()):
        time.sleep(0.1)
    log.rename(tmp_path / "audit.jsonl.1")
    p.signal(signal.SIGHUP)
    time.sleep(0.5)
    p.query("SELECT 'after'")
    deadline = time.monotonic() + 5
    found = False
    while not found and time.monotonic() < deadline:
        found = log.exists() and any(json.loads(x).get("sql") == "SELECT 'after'"
                                     for x in log.read_text().splitlines())
        time.sleep(0.1)
    assert found
    old = (tmp_path / "audit.jsonl.1").read_text()
    assert "SELECT 'before'" in old and "SELECT 'after'" not in old
    assert p.alive()


def encrypt(p, password, key=KEY):
    env = dict(p.env, ENVPROXY_SECRET_KEY=key)
    r = subprocess.run([p.binary, "-c", str(p.config_path), "encrypt-secret", "--stdin"],
                       input=password + "\n", capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    value = r.stdout.strip().splitlines()[-1]
    assert value.startswith("enc:") and password not in value
    return value


def test_encrypted_backend_password_end_to_end(make_proxy):
    p = make_proxy(start=False)
    enc = encrypt(p, BACKEND_PASSWORD)
    p.write_config({"environments": {"dev": {"password": enc}, "prod": {"password": enc}}})
    p.env["ENVPROXY_SECRET_KEY"] = KEY
    p.start()
    assert p.query("SELECT 'decrypted'") == [("decrypted",)]
    assert enc not in p.log_text() and BACKEND_PASSWORD not in p.log_text()


def test_wrong_key_is_a_clear_error_without_the_value(make_proxy):
    p = make_proxy(start=False)
    enc = encrypt(p, BACKEND_PASSWORD)
    p.write_config({"environments": {"dev": {"password": enc}}})
    env = dict(p.env, ENVPROXY_SECRET_KEY="ab" * 32)
    r = subprocess.run([p.binary, "-c", str(p.config_path), "run"], capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 1
    assert "dev" in r.stderr and "wrong key" in r.stderr
    assert enc not in r.stderr and BACKEND_PASSWORD not in r.stderr


def make_certs(d):
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d,
                       timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out",
        "ca.pem", "-days", "3", "-subj", "/CN=envproxy test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem", "-out",
        "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,DNS:db.fast.test,IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-out", "server.pem", "-days", "3", "-extfile", "ext.cnf")
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-key.pem", "-out",
        "other-ca.pem", "-days", "3", "-subj", "/CN=another CA")
    return d


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("tlsdb")
    certs = make_certs(base / "certs")
    port = free_port()
    datadir = base / "srv"
    env = dict(os.environ, MARIADB_TEST_ARGS=(
        f"--ssl-ca={certs}/ca.pem --ssl-cert={certs}/server.pem "
        f"--ssl-key={certs}/server-key.pem --require-secure-transport=ON"))
    script = REPO / "scripts" / "mariadb-test.sh"
    subprocess.run([str(script), "start", str(datadir), str(port), "tlsdb",
                    str(REPO / "tests" / "fixtures" / "seed-prod.sql")], check=True, env=env,
                   capture_output=True, timeout=120)
    yield {"port": port, "certs": certs}
    subprocess.run([str(script), "stop", str(datadir)], capture_output=True, timeout=60)


def tls_env(tls_server, mode, ca=None):
    e = {"host": "127.0.0.1", "port": tls_server["port"], "user": "app",
         "password": "${TEST_DB_PASSWORD}", "database": "shop", "tls": {"mode": mode}}
    if ca:
        e["tls"]["ca"] = str(ca)
    return e


def backend_cipher(p, user="erin"):
    conn = p.connect(user=user, password="erin-pw", autocommit=None)
    with conn.cursor() as cur:
        cur.execute("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                    "WHERE VARIABLE_NAME = 'SSL_CIPHER'")
        cipher = cur.fetchall()[0][0]
        cur.execute("SELECT seq FROM seq_1_to_20000")  # a long result over TLS
        assert len(cur.fetchall()) == 10000  # the default max_rows
    conn.close()
    return cipher


@pytest.mark.parametrize("mode", ["required", "verify_ca", "verify_full"])
def test_tls_to_the_backend(make_proxy, tls_server, mode):
    p = make_proxy(extra_yaml={"environments": {
        "secure": tls_env(tls_server, mode, tls_server["certs"] / "ca.pem")}})
    p.add_user("erin", "erin-pw", "secure", {"secure": "read"})
    time.sleep(1.2)
    assert backend_cipher(p)


@pytest.mark.parametrize("host,ok", [("db.fast.test", True), ("other.fast.test", False)])
def test_tls_verify_full_checks_the_host_name(make_proxy, tls_server, host, ok):
    """The connection goes to the address the proxy's resolver keeps, and verify_full still
    compares the certificate with the configured host name: db.fast.test is in its
    subjectAltName, other.fast.test (resolving to the same server) is not."""
    env = tls_env(tls_server, "verify_full", tls_server["certs"] / "ca.pem")
    env["host"] = host
    p = make_proxy(extra_yaml={"environments": {"secure": env}},
                   env_overrides=shim_env(envproxy_bin()))
    p.add_user("erin", "erin-pw", "secure", {"secure": "read"})
    time.sleep(1.2)
    if ok:
        assert backend_cipher(p)
        return
    conn = p.connect(user="erin", password="erin-pw", autocommit=None)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("SELECT 1")
        assert "'secure'" in e.value.args[1] and "other.fast.test" in e.value.args[1]
    conn.close()


def test_tls_verify_ca_refuses_an_unknown_ca(make_proxy, tls_server):
    p = make_proxy(extra_yaml={"environments": {
        "secure": tls_env(tls_server, "verify_ca", tls_server["certs"] / "other-ca.pem")}})
    p.add_user("erin", "erin-pw", "secure", {"secure": "read"})
    time.sleep(1.2)
    conn = p.connect(user="erin", password="erin-pw", autocommit=None)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("SELECT 1")
        assert "'secure'" in e.value.args[1]
    conn.close()


def test_tls_disabled_cannot_reach_a_tls_only_server(make_proxy, tls_server):
    p = make_proxy(extra_yaml={"environments": {"secure": tls_env(tls_server, "disabled")}})
    p.add_user("erin", "erin-pw", "secure", {"secure": "read"})
    time.sleep(1.2)
    conn = p.connect(user="erin", password="erin-pw", autocommit=None)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("SELECT 1")
    conn.close()
