"""Hostile and malformed input on the http: listener: requests a careful client never sends.
Each answer must be safe (no request read two ways, no error answered as success) and the
proxy must go on serving everyone else."""
import http.client
import json
import socket
import time

import pytest

from harness import free_port, server_state, state_diff


def call(port, method, path, body=None, token=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read()
    conn.close()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return r.status, parsed


def exchange(port, data, timeout=10):
    """Sends raw bytes and reads until the proxy closes the connection (bounded in time)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


@pytest.fixture(scope="module")
def api(make_module_proxy):
    port = free_port()
    p = make_module_proxy({"http": f"127.0.0.1:{port}"})
    p.http_port = port
    s, b = call(port, "POST", "/api/v1/session", {"user": "alice", "password": "alice-pw"})
    assert s == 200, b
    p.alice = b["token"]
    return p


def test_conflicting_body_lengths_are_refused_and_the_connection_closed(api):
    """Two Content-Length headers, or a Transfer-Encoding other than chunked, make the body's
    end a matter of opinion: a proxy in front may frame it otherwise and have the rest read as
    a second request. Such a request is answered 400 and nothing after it on the connection is
    read."""
    auth = b"Authorization: Bearer " + api.alice.encode() + b"\r\n"
    body = b'{"env":"dev","sql":"SELECT 1"}'
    smuggled = (b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\n" + auth +
                b"Content-Length: 0\r\n\r\n")
    cases = [
        b"Content-Length: %d\r\nContent-Length: 5\r\n" % len(body),
        b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body)),
        b"Content-Length: %d\r\nTransfer-Encoding: gzip, chunked\r\n" % len(body),
    ]
    for hdrs in cases:
        req = (b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\n" + auth + hdrs + b"\r\n" + body)
        out = exchange(api.http_port, req + smuggled)
        assert out.startswith(b"HTTP/1.1 400 "), (hdrs, out[:200])
        assert out.count(b"HTTP/1.1 ") == 1, (hdrs, out)
    chunked = (b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\n" + auth +
               b"Transfer-Encoding: gzip, chunked\r\n\r\n%x\r\n" % len(body) + body +
               b"\r\n0\r\n\r\n")
    out = exchange(api.http_port, chunked + smuggled)
    assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1, out[:300]
    for path in (b"/health", b"/"):
        out = exchange(api.http_port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 0\r\nContent-Length: 3\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), (path, out[:200])
    # One of each is fine, and the proxy still answers.
    req = (b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\n" + auth +
           b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    out = exchange(api.http_port, req)
    assert out.startswith(b"HTTP/1.1 200 "), out[:300]
    s, r = call(api.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 2 AS two"},
                token=api.alice)
    assert s == 200 and r["rows"] == [[2]]


def test_one_account_logging_in_over_and_over_ends_only_its_own_sessions(api):
    """The session table is shared: an account that logs in thousands of times (a script, or
    someone hostile with any account at all) gives way its own oldest sessions, never those
    of others."""
    victim = call(api.http_port, "POST", "/api/v1/session",
                  {"user": "alice", "password": "alice-pw"})[1]["token"]
    conn = http.client.HTTPConnection("127.0.0.1", api.http_port, timeout=30)
    body = json.dumps({"user": "bob", "password": "bob-pw"})
    first = None
    for _ in range(4200):
        conn.request("POST", "/api/v1/session", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        answer = json.loads(r.read())
        assert r.status == 200, answer
        first = first or answer["token"]
    conn.close()
    assert call(api.http_port, "GET", "/api/v1/environments", token=victim)[0] == 200
    assert call(api.http_port, "GET", "/api/v1/environments", token=api.alice)[0] == 200
    assert call(api.http_port, "GET", "/api/v1/environments", token=first)[0] == 401
    assert call(api.http_port, "GET", "/api/v1/environments", token=answer["token"])[0] == 200


def test_silent_connections_do_not_lock_everyone_out(api):
    """Connections past the listener's bound close the one idle the longest, not the
    newcomer: sockets opened and left silent (no credentials needed) cannot keep others out,
    and a request being answered is never the one that gives way."""
    import threading
    slow = {}

    def run_slow():
        slow["answer"] = call(api.http_port, "POST", "/api/v1/query",
                              {"env": "dev", "sql": "SELECT SLEEP(2) AS s"}, token=api.alice)

    t = threading.Thread(target=run_slow)
    t.start()
    time.sleep(0.5)
    silent = []
    try:
        for _ in range(40):
            silent.append(socket.create_connection(("127.0.0.1", api.http_port), timeout=5))
        time.sleep(0.3)
        for _ in range(3):
            s, b = call(api.http_port, "GET", "/health")
            assert s == 200 and b["status"] == "serving"
        s, b = call(api.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 3"},
                    token=api.alice)
        assert s == 200 and b["rows"] == [[3]]
    finally:
        for sock in silent:
            sock.close()
    t.join(30)
    assert slow["answer"][0] == 200 and slow["answer"][1]["rows"] == [[0]], slow


def test_a_number_no_double_holds_is_a_bad_parameter_not_null(api):
    """JSON allows 1e999; bound as a double it would reach the server as NULL (so `x = ?`
    would silently match nothing). It is a 400 naming the parameter; large exact numbers stay
    exact."""
    for raw in (b'{"env":"dev","sql":"SELECT ? AS v","params":[1e999]}',
                b'{"env":"dev","sql":"SELECT ? AS v","params":[-1E400]}'):
        conn = http.client.HTTPConnection("127.0.0.1", api.http_port, timeout=30)
        conn.request("POST", "/api/v1/query", body=raw,
                     headers={"Authorization": "Bearer " + api.alice,
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        b = json.loads(r.read())
        conn.close()
        assert r.status == 400 and "params[0]" in b["error"]["message"], (raw, b)
    s, b = call(api.http_port, "POST", "/api/v1/query",
                {"env": "dev", "sql": "SELECT ? AS v, ? AS w", "params": [1.5e300, 2.5]},
                token=api.alice)
    assert s == 200 and b["rows"] == [[1.5e300, "2.5"]], b  # 2.5 goes as an exact DECIMAL


def test_a_named_query_cannot_route_itself_out_of_its_environments(api):
    """A named query limited to prod whose SQL starts with its own `/* env=dev */` ran in dev,
    and its answer still said "env": "prod". Such SQL is refused when saved."""
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "hop", "sql": "/* env=dev */ SELECT @@port AS p",
                 "environments": ["prod"]}, token=api.alice)
    assert s == 400 and "routing comment" in b["error"]["message"], b
    assert call(api.http_port, "POST", "/api/v1/queries/hop/run", {}, token=api.alice)[0] == 404
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "hop", "sql": "/* the port */ SELECT @@port AS p",
                 "environments": ["prod"]}, token=api.alice)
    assert s == 201, b
    s, b = call(api.http_port, "POST", "/api/v1/queries/hop/run", {}, token=api.alice)
    s2, b2 = call(api.http_port, "POST", "/api/v1/query", {"env": "prod", "sql": "SELECT @@port"},
                  token=api.alice)
    assert s == 200 and b["env"] == "prod" and b["rows"] == b2["rows"], (b, b2)
    assert call(api.http_port, "DELETE", "/api/v1/queries/hop", token=api.alice)[0] == 200


def test_the_answer_names_where_a_routing_comment_sent_the_statement(api):
    """`/* env=dev */` at the start of the SQL decides where it runs, as on the MySQL port. The
    answer said "env": "prod" (the request's env) over dev's rows, and a fan-out labelled dev's
    rows as prod's. The answer now names where it ran; with envs or compare it is a 400."""
    def port_of(env):
        s, b = call(api.http_port, "POST", "/api/v1/query",
                    {"env": env, "sql": "SELECT @@port AS p"}, token=api.alice)
        assert s == 200, b
        return b["rows"][0][0]
    dev, prod = port_of("dev"), port_of("prod")
    assert dev != prod
    s, b = call(api.http_port, "POST", "/api/v1/query",
                {"env": "prod", "sql": "/* env=dev */ SELECT @@port AS p"}, token=api.alice)
    assert s == 200 and b["rows"] == [[dev]] and b["env"] == "dev", b
    for body in ({"envs": ["dev", "prod"], "sql": "/* env=dev */ SELECT @@port AS p"},
                 {"compare": {"envs": ["dev", "prod"]}, "sql": "/* env=dev */ SELECT 1 AS id"}):
        s, b = call(api.http_port, "POST", "/api/v1/query", body, token=api.alice)
        assert s == 400 and "routing comment" in b["error"]["message"], (body, b)
    s, b = call(api.http_port, "POST", "/api/v1/query",
                {"env": "dev", "sql": "/* env=dev,prod */ SELECT @@port AS p"}, token=api.alice)
    assert s == 200 and b["env"] == "dev,prod", b
    assert sorted(r[0] for r in b["rows"]) == ["dev", "prod"]
    bob = call(api.http_port, "POST", "/api/v1/session",
               {"user": "bob", "password": "bob-pw"})[1]["token"]
    s, b = call(api.http_port, "POST", "/api/v1/query",
                {"env": "prod", "sql": "/* env=dev */ SELECT 1"}, token=bob)
    assert s == 404 and b["error"]["code"] == 1044 and b["error"]["env"] == "dev", b
    # A comment that routes nothing changes nothing.
    s, b = call(api.http_port, "POST", "/api/v1/query",
                {"env": "prod", "sql": "/* the port */ SELECT @@port AS p"}, token=api.alice)
    assert s == 200 and b["rows"] == [[prod]] and b["env"] == "prod", b


def test_a_named_query_name_cannot_be_taken_again_in_another_case(api, tmp_path):
    """CALL __queries.NAME finds a query whatever the case of NAME (as MySQL finds a
    procedure). Another account could save "Orders_week" next to "orders_week", and
    `CALL __queries.orders_week()` then ran the other account's SQL, with the caller's
    grants. A name that differs only in case is now taken (409); CALL prefers the exact
    name."""
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "orders_week", "sql": "SELECT 'mine' AS who"}, token=api.alice)
    assert s == 201, b
    bob = call(api.http_port, "POST", "/api/v1/session",
               {"user": "bob", "password": "bob-pw"})[1]["token"]
    for name in ("Orders_week", "ORDERS_WEEK"):
        s, b = call(api.http_port, "POST", "/api/v1/queries",
                    {"name": name, "sql": "SELECT 'theirs' AS who"}, token=bob)
        assert s == 409 and "already exists" in b["error"]["message"], (name, b)
    assert api.query("CALL __queries.orders_week()") == [("mine",)]
    assert api.query("CALL __queries.ORDERS_WEEK()") == [("mine",)]
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT 'cli' AS who")
    r = api.cli("query", "add", "Orders_Week", "--sql-file", str(sql))
    assert r.returncode != 0 and "already exists" in r.stderr, (r.stdout, r.stderr)
    assert call(api.http_port, "DELETE", "/api/v1/queries/orders_week", token=api.alice)[0] == 200


def test_a_named_query_needs_the_savers_grants_on_its_environments(api):
    """Named queries run with the caller's grants. An account could save one for an
    environment it has no grant on, or a write where it may only read, and leave it for
    someone who may write there to run (as a tool with a harmless description, say). Each
    listed environment now needs the saver's grant, and a write grant for SQL that writes."""
    carol = call(api.http_port, "POST", "/api/v1/session",
                 {"user": "carol", "password": "carol-pw"})[1]["token"]
    bob = call(api.http_port, "POST", "/api/v1/session",
               {"user": "bob", "password": "bob-pw"})[1]["token"]
    cases = [(bob, {"name": "bq1", "sql": "SELECT 1", "environments": ["dev"]},
              "not a configured environment"),
             (bob, {"name": "bq2", "sql": "UPDATE shop.orders SET note = note",
                    "environments": ["dev"]}, "not a configured environment"),
             (carol, {"name": "cq1", "sql": "UPDATE shop.orders SET note = note",
                      "environments": ["dev"]}, "may only read")]
    for tok, body, why in cases:
        s, b = call(api.http_port, "POST", "/api/v1/queries", body, token=tok)
        assert s == 400 and why in b["error"]["message"], (body, b)
        assert call(api.http_port, "GET", "/api/v1/queries/" + body["name"],
                    token=api.alice)[0] == 404
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "cq2", "sql": "SELECT 1 AS one", "environments": ["dev"]}, token=carol)
    assert s == 201, b
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "aq1", "sql": "UPDATE shop.orders SET note = note WHERE id = 0",
                 "environments": ["dev"]}, token=api.alice)
    assert s == 201, b
    for name, tok in (("cq2", carol), ("aq1", api.alice)):
        assert call(api.http_port, "DELETE", "/api/v1/queries/" + name, token=tok)[0] == 200


def test_one_account_cannot_hold_every_connection_with_slow_statements(api):
    """The listener's 32 connections are shared: an account running slow statements on all
    of them kept every other account out until they ended. An account now has at most 8
    requests running at once (the API and MCP together); more are 429 at once, and another
    account is still served."""
    import threading
    results = []

    def slow():
        results.append(call(api.http_port, "POST", "/api/v1/query",
                            {"env": "dev", "sql": "SELECT SLEEP(3) AS s"}, token=api.alice))

    threads = [threading.Thread(target=slow) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    s, b = call(api.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 1"},
                token=api.alice)
    assert s == 429 and b["error"]["code"] == 1203, b
    mcp = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    s, b = call(api.http_port, "POST", "/mcp",
                {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18"}}, token=api.alice, headers=mcp)
    assert s == 429, b
    bob = call(api.http_port, "POST", "/api/v1/session",
               {"user": "bob", "password": "bob-pw"})[1]["token"]
    s, b = call(api.http_port, "POST", "/api/v1/query", {"env": "prod", "sql": "SELECT 2"},
                token=bob)
    assert s == 200 and b["rows"] == [[2]], b
    for t in threads:
        t.join(30)
    assert [r[0] for r in results] == [200] * 8, results
    s, b = call(api.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 3"},
                token=api.alice)
    assert s == 200 and b["rows"] == [[3]]


def test_a_named_query_another_account_cannot_see_is_404_to_change_too(api):
    """GET answers 404 for a named query the account may not see (it lists only environments
    the account has no grant on), but PUT and DELETE answered 403 naming its owner, telling
    that it exists and whose it is. They are 404 too."""
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "dev_only", "sql": "SELECT 1 AS one", "environments": ["dev"]},
                token=api.alice)
    assert s == 201, b
    bob = call(api.http_port, "POST", "/api/v1/session",
               {"user": "bob", "password": "bob-pw"})[1]["token"]
    assert call(api.http_port, "GET", "/api/v1/queries/dev_only", token=bob)[0] == 404
    for method, body in (("PUT", {"sql": "SELECT 2 AS two"}), ("DELETE", None)):
        s, b = call(api.http_port, method, "/api/v1/queries/dev_only", body, token=bob)
        assert s == 404 and "alice" not in b["error"]["message"], (method, b)
    # Visible to carol (dev read) but not hers: 403.
    carol = call(api.http_port, "POST", "/api/v1/session",
                 {"user": "carol", "password": "carol-pw"})[1]["token"]
    s, b = call(api.http_port, "DELETE", "/api/v1/queries/dev_only", token=carol)
    assert s == 403, b
    assert call(api.http_port, "DELETE", "/api/v1/queries/dev_only", token=api.alice)[0] == 200


HTTP_WALL_ATTACKS = [
    "UPDATE orders SET note = 'changed' WHERE id = 1",
    "/*!99999 SELECT 1 */ UPDATE orders SET note = 'x'",
    "/*! UPDATE orders SET note = 'x' */",
    "/*M!100000 DELETE FROM orders */",
    "SELECT 1; UPDATE orders SET note = 'x'",
    "SET GLOBAL net_read_timeout = 41",
    "SET @@global.net_read_timeout = 41",
    "SET STATEMENT max_statement_time=1 FOR UPDATE orders SET note = 'x'",
    "SELECT * FROM orders INTO OUTFILE '/tmp/envproxy-http-wall'",
    "SELECT * FROM orders FOR UPDATE",
    "SELECT * FROM orders LOCK IN SHARE MODE",
    "CREATE TEMPORARY TABLE t_http (a INT)",
    "CREATE TABLE t_http (a INT)",
    "CALL mysql.nonexistent()",
    "LOAD DATA INFILE '/etc/hostname' INTO TABLE orders",
    "PREPARE s FROM 'UPDATE orders SET note = 1'",
    "EXECUTE IMMEDIATE 'UPDATE orders SET note = 1'",
    "WITH a AS (SELECT 1) UPDATE orders SET note = 'x'",
    "DO GET_LOCK('http-wall', 0)",
    "SELECT GET_LOCK('http-wall', 0)",
    "SELECT NEXTVAL(seq_http)",
    "XA START 'http'",
    "LOCK TABLES orders WRITE",
    "FLUSH TABLES",
    "ANALYZE TABLE orders",
    "OPTIMIZE TABLE orders",
    "HANDLER orders OPEN",
    "GRANT ALL ON *.* TO 'x'@'%' IDENTIFIED BY 'x'",
    "INSTALL SONAME 'ha_blackhole'",
    "BEGIN NOT ATOMIC UPDATE orders SET note = 'x'; END",
    "SET PASSWORD = PASSWORD('x')",
    "SET SESSION TRANSACTION READ WRITE",
    "START TRANSACTION READ WRITE",
]


def test_the_read_only_wall_holds_on_every_http_door(api, servers):
    """prod's backend account can change anything: envproxy alone stands between an HTTP
    client and a change. Each attack goes through /api/v1/query (plain and with a bound
    parameter), a fan-out, compare, MCP's execute_query and a named query, and prod's whole
    state is compared before and after."""
    before = server_state(servers.prod)
    mcp_h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    conn = http.client.HTTPConnection("127.0.0.1", api.http_port, timeout=30)
    conn.request("POST", "/mcp", body=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18"}}),
        headers=dict(mcp_h, Authorization="Bearer " + api.alice))
    r = conn.getresponse()
    sid = r.getheader("Mcp-Session-Id")
    r.read()
    conn.close()
    assert r.status == 200 and sid
    for n, sql in enumerate(HTTP_WALL_ATTACKS):
        bodies = [{"env": "prod", "database": "shop", "sql": sql},
                  {"env": "prod", "database": "shop", "sql": sql + " -- ?", "params": [1]},
                  {"envs": ["prod"], "sql": sql},
                  {"compare": {"envs": ["prod", "dev"]}, "sql": sql}]
        for body in bodies:
            s, b = call(api.http_port, "POST", "/api/v1/query", body, token=api.alice)
            assert s != 200 or "results" in b or body.get("compare") or b.get("error"), (body, b)
        s, b = call(api.http_port, "POST", "/mcp",
                    {"jsonrpc": "2.0", "id": 10 + n, "method": "tools/call",
                     "params": {"name": "execute_query",
                                "arguments": {"environment": "prod", "database": "shop",
                                              "sql": sql}}},
                    token=api.alice, headers=dict(mcp_h, **{"Mcp-Session-Id": sid}))
        assert s == 200 and b["result"]["isError"] is True, (sql, b)
        s, b = call(api.http_port, "POST", "/api/v1/queries",
                    {"name": "wall_%d" % n, "sql": sql, "environments": ["prod"],
                     "database": "shop"}, token=api.alice)
        if s == 201:  # read-only by the lexer: then it must not change prod when run
            call(api.http_port, "POST", "/api/v1/queries/wall_%d/run" % n, {}, token=api.alice)
            call(api.http_port, "DELETE", "/api/v1/queries/wall_%d" % n, token=api.alice)
    diff = state_diff(before, server_state(servers.prod))
    assert not diff, f"prod changed: {diff}"


def test_an_account_made_again_does_not_inherit_the_old_ones_sessions(api):
    """Login sessions were only refused while their account was missing: one deleted and
    made again under the same name (for someone else) found the old sessions valid again.
    They now end when the store is read without the account."""
    api.add_user("dave", "dave-pw", "dev", {"dev": "read"})
    deadline = time.time() + 10
    while time.time() < deadline:
        s, b = call(api.http_port, "POST", "/api/v1/session",
                    {"user": "dave", "password": "dave-pw"})
        if s == 200:
            break
        time.sleep(0.2)
    old = b["token"]
    assert call(api.http_port, "GET", "/api/v1/environments", token=old)[0] == 200
    assert api.cli("user", "del", "dave").returncode == 0
    deadline = time.time() + 10
    while time.time() < deadline:
        if call(api.http_port, "GET", "/api/v1/environments", token=old)[0] == 401:
            break
        time.sleep(0.2)
    time.sleep(1.5)  # the store has certainly been read again
    api.add_user("dave", "other-pw", "dev", {"dev": "write"})
    deadline = time.time() + 10
    while time.time() < deadline:
        if call(api.http_port, "POST", "/api/v1/session",
                {"user": "dave", "password": "other-pw"})[0] == 200:
            break
        time.sleep(0.2)
    s, b = call(api.http_port, "GET", "/api/v1/environments", token=old)
    assert s == 401, b


def test_named_queries_an_account_saves_are_bounded(api):
    """Every definition is held in memory by every snapshot of the store, and any account
    may save named queries: 60 with a 900 KB description took the proxy from 12 MB to 136 MB.
    A description is now at most 4 KiB and an account owns at most 200 queries."""
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "long_desc", "sql": "SELECT 1", "description": "x" * 4097},
                token=api.alice)
    assert s == 400 and "description" in b["error"]["message"], b
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "long_default", "sql": "SELECT :s AS s",
                 "params": [{"name": "s", "type": "string", "default": "y" * 200000}]},
                token=api.alice)
    assert s == 400 and "larger than" in b["error"]["message"], b
    bob = call(api.http_port, "POST", "/api/v1/session",
               {"user": "bob", "password": "bob-pw"})[1]["token"]
    conn = http.client.HTTPConnection("127.0.0.1", api.http_port, timeout=30)
    h = {"Authorization": "Bearer " + bob, "Content-Type": "application/json"}
    for i in range(200):
        conn.request("POST", "/api/v1/queries", body=json.dumps(
            {"name": "bq_%d" % i, "sql": "SELECT %d AS n" % i, "description": "d" * 4096}),
            headers=h)
        r = conn.getresponse()
        assert r.status == 201, (i, r.read())
        r.read()
    s, b = call(api.http_port, "POST", "/api/v1/queries",
                {"name": "bq_200", "sql": "SELECT 1"}, token=bob)
    assert s == 403 and b["error"]["code"] == 1226, b
    # Another account is not held back; replacing one's own still works.
    s, b = call(api.http_port, "POST", "/api/v1/queries", {"name": "aq_x", "sql": "SELECT 1"},
                token=api.alice)
    assert s == 201, b
    s, b = call(api.http_port, "PUT", "/api/v1/queries/bq_0", {"sql": "SELECT 0 AS zero"},
                token=bob)
    assert s == 200, b
    for i in range(200):
        conn.request("DELETE", "/api/v1/queries/bq_%d" % i, headers=h)
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    conn.close()
    assert call(api.http_port, "DELETE", "/api/v1/queries/aq_x", token=api.alice)[0] == 200
