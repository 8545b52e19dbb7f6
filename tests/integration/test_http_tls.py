"""The HTTP listener over TLS (http: {listen, tls: true}) with the MySQL port's certificate
(here the self-signed one made at start-up): login, queries, a streamed answer and MCP work
over HTTPS; plain HTTP on that port gets a clear refusal; TLS garbage and half-open
handshakes are dropped while everyone else is served."""
import http.client
import json
import socket
import ssl
import subprocess
import time

import pytest

from harness import envproxy_bin, free_port


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the self-signed pair made at start-up
    return ctx


def call(port, method, path, body=None, token=None, headers=None, timeout=30):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls_context())
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, (json.loads(text) if text else None), hdrs


@pytest.fixture(scope="module")
def https(make_module_proxy):
    port = free_port()
    p = make_module_proxy({"http": {"listen": f"127.0.0.1:{port}", "tls": True},
                           "limits": {"max_rows": 0, "statement_timeout": "30s"}})
    p.http_port = port
    return p


def login(port):
    s, b, h = call(port, "POST", "/api/v1/session", {"user": "alice", "password": "alice-pw"})
    assert s == 200, b
    return b, h


def test_login_and_queries_over_https(https):
    """A session login over TLS sets a Secure cookie; a query with a bound parameter and a
    200,000-row streamed answer both arrive whole over TLS; /health answers over TLS."""
    b, h = login(https.http_port)
    assert "Secure" in h["set-cookie"] and "HttpOnly" in h["set-cookie"]
    tok = b["token"]
    s, r, _ = call(https.http_port, "POST", "/api/v1/query",
                   {"env": "dev", "sql": "SELECT status FROM shop.orders WHERE id = ?",
                    "params": [3]}, token=tok)
    assert s == 200 and r["rows"] == [["pending"]], r
    s, r, h = call(https.http_port, "POST", "/api/v1/query",
                   {"env": "dev", "sql": "SELECT seq FROM seq_1_to_200000"}, token=tok,
                   timeout=120)
    assert s == 200 and h.get("transfer-encoding") == "chunked"
    assert r["row_count"] == 200000 and r["rows"][-1] == [200000] and "error" not in r
    s, r, _ = call(https.http_port, "GET", "/health")
    assert s == 200 and r["status"] == "serving"


def test_mcp_over_https(https):
    """MCP initialize, tools/list and a tools/call over TLS, with an API token."""
    out = https.cli("user", "token", "alice")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    h = {"Accept": "application/json, text/event-stream"}
    s, b, hd = call(https.http_port, "POST", "/mcp", {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}}, token=token, headers=h)
    assert s == 200 and b["result"]["protocolVersion"] == "2025-06-18"
    h["Mcp-Session-Id"] = hd["mcp-session-id"]
    s, b, _ = call(https.http_port, "POST", "/mcp", {"jsonrpc": "2.0", "id": 2,
                                                     "method": "tools/list"},
                   token=token, headers=h)
    assert s == 200 and any(t["name"] == "execute_query" for t in b["result"]["tools"])
    s, b, _ = call(https.http_port, "POST", "/mcp", {
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "execute_query", "arguments": {
            "environment": "prod", "database": "shop",
            "sql": "SELECT status FROM orders WHERE id = 3"}}}, token=token, headers=h)
    assert s == 200 and not b["result"]["isError"], b
    assert json.loads(b["result"]["content"][0]["text"])["rows"] == [["shipped"]]


def test_plain_http_on_the_https_port_is_refused_clearly(https):
    """A plain-HTTP request gets a plain-text 400 that says to use https://, and the
    connection closes; the HTTPS side keeps serving."""
    s = socket.create_connection(("127.0.0.1", https.http_port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    deadline = time.time() + 10
    while time.time() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got
    assert got.endswith(b"use https:// to reach it.\n")
    assert call(https.http_port, "GET", "/health")[0] == 200


def closed_soon(sock, limit=15):
    """Reads until the peer closes (True) or limit seconds pass (False); at most 64 KiB."""
    got = 0
    deadline = time.time() + limit
    sock.settimeout(limit)
    try:
        while time.time() < deadline and got < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                return True
            got += len(chunk)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def test_tls_garbage_and_stalled_handshakes_do_not_stop_the_listener(https):
    """Random bytes, a truncated ClientHello and a connection that never finishes its
    handshake are all closed by the proxy (the stalled one within its 10 s deadline), and
    others are served meanwhile."""
    junk = socket.create_connection(("127.0.0.1", https.http_port), timeout=10)
    junk.sendall(b"\x16\x03\x01\xff\xff" + b"\x00" * 300)  # a record longer than what follows
    garbage = socket.create_connection(("127.0.0.1", https.http_port), timeout=10)
    garbage.sendall(bytes(range(256)) * 4)
    stalled = socket.create_connection(("127.0.0.1", https.http_port), timeout=15)
    assert closed_soon(garbage)  # at most a TLS alert, then closed
    assert call(https.http_port, "GET", "/health")[0] == 200
    b, _ = login(https.http_port)
    t0 = time.time()
    assert stalled.recv(1) == b""  # closed by the proxy's deadline, not by us
    assert time.time() - t0 < 14
    assert closed_soon(junk)
    for sock in (junk, garbage, stalled):
        sock.close()
    assert call(https.http_port, "GET", "/health")[0] == 200


def test_http_tls_config_errors(tmp_path):
    """http: as a mapping needs listen, accepts only listen and tls, and tls is a boolean;
    `envproxy check` reports each with its position."""
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text("http:\n  tls: yes please\n  colour: 1\n"
                   "environments:\n  dev: {host: 127.0.0.1, port: 1, user: u}\n")
    r = subprocess.run([envproxy_bin(), "-c", str(cfg), "check", "--no-connect"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    f = str(cfg)
    assert f"{f}:2:8: http.tls: expected true or false, got 'yes please'" in r.stderr, r.stderr
    assert f"{f}:3:3: unknown key 'colour' in http (allowed: listen, tls)" in r.stderr
    assert f"{f}:2:3: http: missing required key 'listen'" in r.stderr


def test_mcp_tools_work_when_the_mysql_port_requires_tls(make_proxy, tmp_path):
    """With tls.require on the MySQL port, MCP over HTTP still runs its tools (they reach the
    port over TLS, pinned to the proxy's own certificate), a client without TLS is still
    refused, and `envproxy mcp --tls` over stdio works too while plain `envproxy mcp` gets
    the refusal."""
    import pymysql
    from test_http_mcp import post, rpc
    from test_mcp import McpProcess
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}", "tls": {"require": True}})
    with pytest.raises(pymysql.err.MySQLError) as e:
        p.connect()
    assert e.value.args[0] == 1045 or "TLS" in str(e.value), e.value
    out = p.cli("user", "token", "alice")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    s, b, h = post(port, rpc(1, "initialize", {"protocolVersion": "2025-06-18"}), token)
    assert s == 200
    sid = h["mcp-session-id"]
    for env, want in (("dev", [["pending"]]), ("prod", [["shipped"]])):
        s, b, _ = post(port, rpc(2, "tools/call", {"name": "execute_query", "arguments": {
            "environment": env, "database": "shop",
            "sql": "SELECT status FROM orders WHERE id = 3"}}), token, sid)
        assert s == 200 and not b["result"]["isError"], b
        assert json.loads(b["result"]["content"][0]["text"])["rows"] == want
    s, b, _ = post(port, rpc(3, "tools/call", {"name": "execute_query", "arguments": {
        "environment": "prod", "database": "shop", "sql": "DELETE FROM orders"}}), token, sid)
    assert b["result"]["isError"]
    assert json.loads(b["result"]["content"][0]["text"])["error"]["code"] == 1290
    m = McpProcess(p.port, tmp_path / "tls.stderr", args=("--tls",))
    try:
        m.initialize()
        assert m.ok("execute_query", {"environment": "prod", "database": "shop",
                                      "sql": "SELECT status FROM orders WHERE id = 3"}
                    )["rows"] == [["shipped"]]
    finally:
        assert m.close() == 0
    m = McpProcess(p.port, tmp_path / "plain.stderr")
    try:
        m.initialize()
        assert "TLS" in m.error("list_environments", {})["message"]
    finally:
        assert m.close() == 0


def test_stdio_mcp_tls_ca_checks_the_certificate(make_proxy, tmp_path):
    """`envproxy mcp --tls-ca FILE` connects when envproxy's certificate (tls.cert) is the
    one FILE vouches for, and refuses a proxy whose certificate FILE does not vouch for."""
    from test_mcp import McpProcess

    def pair(name):
        key, crt = tmp_path / f"{name}-key.pem", tmp_path / f"{name}.pem"
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                            str(crt), "-days", "2", "-subj", f"/CN={name}", "-addext",
                            "subjectAltName=IP:127.0.0.1"], capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return key, crt

    key, crt = pair("envproxy-test")
    _, other = pair("someone-else")
    p = make_proxy(extra_yaml={"tls": {"cert": str(crt), "key": str(key), "require": True}})
    m = McpProcess(p.port, tmp_path / "ok.stderr", args=("--tls-ca", str(crt)))
    try:
        m.initialize()
        assert m.ok("execute_query", {"environment": "prod", "database": "shop",
                                      "sql": "SELECT status FROM orders WHERE id = 3"}
                    )["rows"] == [["shipped"]]
    finally:
        assert m.close() == 0
    m = McpProcess(p.port, tmp_path / "bad.stderr", args=("--tls-ca", str(other)))
    try:
        m.initialize()
        e = m.error("list_environments", {})
        assert "cannot connect" in e["message"], e
    finally:
        assert m.close() == 0


def test_an_https_client_that_goes_away_has_its_statement_killed(https, servers):
    """Over TLS a client that leaves sends close_notify before its FIN: those bytes ended the
    watch for its going away (they looked like a next request), and its statement ran on to
    its end or its timeout. It is killed as over plain HTTP."""
    tok = login(https.http_port)[0]["token"]
    body = json.dumps({"env": "dev", "sql": "SELECT SLEEP(25) AS marker_https_gone"}).encode()
    raw = socket.create_connection(("127.0.0.1", https.http_port), timeout=5)
    s = tls_context().wrap_socket(raw)
    s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode()
              + b"\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    running = ("SELECT count(*) FROM information_schema.PROCESSLIST "
               "WHERE INFO LIKE '%marker_https_gone%' AND INFO NOT LIKE '%PROCESSLIST%'")

    def count():
        return servers.sql("dev", running)[0][0]

    deadline = time.time() + 10
    while time.time() < deadline and count() == 0:
        time.sleep(0.2)
    assert count() == 1
    s.settimeout(0.5)
    try:
        s.unwrap()  # close_notify, as browsers and curl send it (no answer comes)
    except (ssl.SSLError, OSError):
        pass
    s.close()
    deadline = time.time() + 8
    while time.time() < deadline and count() != 0:
        time.sleep(0.3)
    assert count() == 0
    assert call(https.http_port, "GET", "/health")[0] == 200
