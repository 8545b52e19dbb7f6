"""Faults at the HTTP front door hit only the request that meets them: a backend that stops
(SIGSTOP) or dies (kill -9) under a streamed /api/v1/query answer ends that answer with the
JSON "error" member naming the environment, within statement_timeout; abandoned /mcp
sessions cannot lock other accounts out; oversized, deeply nested and over-parameterized
bodies get a clear 4xx. After each attack a fresh client is served in both environments.

Servers are stopped or killed only by the PID the harness started them with, and always
continued (or started again) in a finally."""
import json
import socket
import time

from harness import free_port
from test_faults import eventually_serves, kill_and_restart, stopped
from test_http_api import call, login
from test_http_mcp import post, rpc
from test_http_stream import post_raw, rss_kib

SLOW = ("SELECT seq, REPEAT('x', 200) AS v FROM seq_1_to_400000 /* %s */ "
        "WHERE SLEEP(0.00002) = 0")


def start(make_proxy, timeout="2s"):
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                               "limits": {"max_rows": 0, "statement_timeout": timeout},
                               "environments": {"dev": {"pool": {"connect_timeout": "1s",
                                                                 "wait_timeout": "3s"}}}})
    p.http_port = port
    p.tok = login(port)
    return p


def read_stream(s, seconds):
    """Everything the server sends on s until it closes or seconds pass; (bytes, took)."""
    s.settimeout(1)
    data = b""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            chunk = s.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
        if data.endswith(b"\r\n0\r\n\r\n"):
            break
    return data, time.monotonic() - start


def dechunk(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    out = b""
    while body:
        line, _, rest = body.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2:]
    return head, out


def both_served(p):
    eventually_serves(p)
    eventually_serves(p, env_db="shop@prod")
    for env in ("dev", "prod"):
        st, b, _ = call(p.http_port, "POST", "/api/v1/query", {"env": env, "sql": "SELECT 1 AS x"},
                        token=p.tok)
        assert st == 200 and b["rows"] == [[1]], (env, st, b)


def streamed_error(p, servers, marker, fault):
    s = post_raw(p.http_port, p.tok, {"env": "dev", "sql": SLOW % marker})
    first, _ = b"", None
    s.settimeout(10)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200") and b"chunked" in first.lower(), first[:300]
    with fault():
        data, took = read_stream(s, 12)
    s.close()
    head, body = dechunk(first + data)
    doc = json.loads(body)
    return doc, took


def test_stopped_backend_ends_a_streamed_answer_with_error(make_proxy, servers):
    """SIGSTOP of the backend while a streamed answer flows: the answer ends within
    statement_timeout (2 s) plus the kill's grace with a complete JSON document whose
    "error" names the environment and "truncated" is true; once the server runs again both
    environments serve fresh clients."""
    p = start(make_proxy)
    doc, took = streamed_error(p, servers, "stopped mid-stream", lambda: stopped(servers["dev"]))
    assert took < 8, took
    assert doc["truncated"] is True and doc["error"]["env"] == "dev", doc.get("error")
    assert doc["error"]["code"] in (3024, 2013), doc["error"]
    both_served(p)


def test_killed_backend_ends_a_streamed_answer_with_error(make_proxy, servers):
    """kill -9 of the backend while a streamed answer flows: the JSON document ends with
    "error" naming the environment (2013), not with a cut connection."""
    p = start(make_proxy, timeout="30s")
    from contextlib import contextmanager

    @contextmanager
    def killed():
        kill_and_restart(servers["dev"])
        yield

    doc, took = streamed_error(p, servers, "killed mid-stream", killed)
    assert doc["truncated"] is True and doc["error"]["env"] == "dev", doc.get("error")
    assert doc["error"]["code"] == 2013 and "'dev'" in doc["error"]["message"], doc["error"]
    both_served(p)


def test_abandoned_mcp_sessions_lock_nobody_out(make_proxy, servers):
    """One account opens 300 /mcp sessions and abandons them: the proxy's memory stays
    bounded, another account still gets a session (and runs a tool in it), and so does the
    first account; the oldest abandoned sessions are ended to make room (404 afterwards)."""
    p = start(make_proxy)
    for user in ("alice", "bob"):
        r = p.cli("user", "token", user)
        assert r.returncode == 0, r.stderr
        setattr(p, user, r.stdout.strip().splitlines()[-1])
    init = rpc(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "t", "version": "1"}})
    rss0 = rss_kib(p.pid)
    sids = []
    for i in range(300):
        st, b, h = post(p.http_port, init, p.alice)
        if st == 200:
            sids.append(h["mcp-session-id"])
    grew = rss_kib(p.pid) - rss0
    assert grew < 64 * 1024, f"300 sessions grew the proxy by {grew} KiB"
    st, b, h = post(p.http_port, init, p.bob)
    assert st == 200, (st, b)
    sid = h["mcp-session-id"]
    post(p.http_port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, p.bob, sid)
    st, b, _ = post(p.http_port, rpc(2, "tools/call", {"name": "execute_query", "arguments": {
        "environment": "prod", "sql": "SELECT 1 AS x"}}), p.bob, sid)
    assert st == 200 and not b["result"]["isError"], b
    st, b, h = post(p.http_port, init, p.alice)
    assert st == 200, (st, b)
    st, b, _ = post(p.http_port, rpc(3, "tools/list"), p.alice, sids[0])
    assert st == 404, (st, b)
    both_served(p)


def test_oversized_and_hostile_bodies_get_a_clear_error(make_proxy, servers):
    """A 10 MB body, a body nested 100,000 deep and a query with 70,000 parameters each get
    a 4xx with a JSON error saying what is wrong; the proxy stays up and serves both
    environments."""
    p = start(make_proxy)
    big = json.dumps({"env": "dev", "sql": "SELECT 1", "pad": "x" * (10 << 20)}).encode()
    s = socket.create_connection(("127.0.0.1", p.http_port), timeout=10)
    try:
        s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + p.tok.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(big)).encode() + b"\r\n\r\n")
        try:
            s.sendall(big)  # the proxy may answer and close before taking it all
        except OSError:
            pass
        answer, _ = read_stream(s, 10)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    deep = b'{"env":"dev","sql":"SELECT 1","params":' + b"[" * 100000 + b"]" * 100000 + b"}"
    st, b, _ = call(p.http_port, "POST", "/api/v1/query", raw=deep, token=p.tok)
    assert st == 400 and "nesting" in json.dumps(b), (st, b)
    n = 70000
    sql = "SELECT " + ",".join(["?"] * n)
    st, b, _ = call(p.http_port, "POST", "/api/v1/query",
                    {"env": "dev", "sql": sql, "params": [1] * n}, token=p.tok)
    assert st == 400 and "params" in json.dumps(b), (st, b)
    st, b, _ = call(p.http_port, "POST", "/api/v1/query",
                    {"env": "dev", "sql": "SELECT " + ",".join(["?"] * 300),
                     "params": [1] * 300}, token=p.tok)
    assert st in (200, 400), (st, b)
    assert p.alive()
    both_served(p)


def test_an_http_request_holds_no_transaction_past_its_end(make_proxy, servers):
    """POST /api/v1/query runs each request in its own internal session: a BEGIN is answered
    and ends with its request, so an INSERT of a later request is committed at once (visible
    on the server directly) and a COMMIT after a backend restart has nothing to lose; the
    proxy never claims a transaction spans requests."""
    servers.sql("dev", "CREATE DATABASE IF NOT EXISTS fdf")
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS fdf.t (v VARCHAR(20)) ENGINE=InnoDB")
    servers.sql("dev", "DELETE FROM fdf.t")
    try:
        p = start(make_proxy)
        q = lambda sql: call(p.http_port, "POST", "/api/v1/query",  # noqa: E731
                             {"env": "dev", "database": "fdf", "sql": sql}, token=p.tok)
        st, b, _ = q("BEGIN")
        assert st == 200, b
        st, b, _ = q("INSERT INTO t VALUES ('kept')")
        assert st == 200 and b["affected_rows"] == 1, b
        assert servers.sql("dev", "SELECT v FROM fdf.t") == [("kept",)]
        kill_and_restart(servers["dev"])
        eventually_serves(p)
        st, b, _ = q("COMMIT")
        assert st == 200, b
        assert servers.sql("dev", "SELECT v FROM fdf.t") == [("kept",)]
        both_served(p)
    finally:
        servers.sql("dev", "DROP DATABASE IF EXISTS fdf")
