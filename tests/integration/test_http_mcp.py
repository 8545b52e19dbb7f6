"""MCP over Streamable HTTP at /mcp, driven with raw HTTP: the session id, the protocol's
error cases, the tools of `envproxy mcp` running through the proxy's statement path (grants,
read-only policy, audit via=mcp), and cancellation."""
import http.client
import json
import threading
import time

import pytest

from harness import free_port, is_sanitizer_build


def post(port, body, token, sid=None, headers=None, method="POST", timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Authorization": "Bearer " + token, "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream"}
    if sid:
        h["Mcp-Session-Id"] = sid
    h.update(headers or {})
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None
                                                 else None)
    conn.request(method, "/mcp", body=data, headers=h)
    r = conn.getresponse()
    text = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, (json.loads(text) if text else None), hdrs


def rpc(id_, method, params=None):
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return m


@pytest.fixture(scope="module")
def mcp(make_module_proxy, tmp_path_factory):
    port = free_port()
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    p = make_module_proxy({"http": f"127.0.0.1:{port}", "audit_log": str(audit),
                           "limits": {"statement_timeout": "20s"}})
    p.http_port = port
    p.audit_path = audit
    r = p.cli("user", "token", "alice")
    assert r.returncode == 0, r.stderr
    p.token = r.stdout.strip().splitlines()[-1]
    time.sleep(0.1)
    return p


def start_session(mcp):
    s, b, h = post(mcp.http_port, rpc(1, "initialize", {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}), mcp.token)
    assert s == 200, b
    sid = h["mcp-session-id"]
    assert len(sid) == 64
    s, b, _ = post(mcp.http_port, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                   mcp.token, sid)
    assert s == 202 and b is None
    return sid


def call_tool(mcp, sid, name, args, id_=2):
    s, b, _ = post(mcp.http_port, rpc(id_, "tools/call", {"name": name, "arguments": args}),
                   mcp.token, sid)
    assert s == 200, b
    res = b["result"]
    return res["isError"], json.loads(res["content"][0]["text"])


def test_initialize_gives_a_session_and_lists_the_stdio_tools(mcp):
    """initialize answers the protocol version and a Mcp-Session-Id; tools/list has the same
    tools as `envproxy mcp`."""
    s, b, h = post(mcp.http_port, rpc(1, "initialize", {"protocolVersion": "2025-06-18"}),
                   mcp.token)
    assert s == 200 and b["result"]["protocolVersion"] == "2025-06-18"
    assert b["result"]["serverInfo"]["name"] == "envproxy"
    sid = h["mcp-session-id"]
    s, b, _ = post(mcp.http_port, rpc(2, "tools/list"), mcp.token, sid)
    names = {t["name"] for t in b["result"]["tools"]}
    assert {"list_environments", "execute_query", "describe_table", "compare_query"} <= names


def test_protocol_errors(mcp):
    """Missing or unknown session ids, no credentials, a foreign Origin, bad JSON, GET."""
    port = mcp.http_port
    s, b, _ = post(port, rpc(1, "tools/list"), mcp.token)
    assert s == 400 and b["error"]["code"] == -32600
    s, b, _ = post(port, rpc(1, "tools/list"), mcp.token, sid="0" * 64)
    assert s == 404
    s, b, _ = post(port, rpc(1, "tools/list"), "ept_wrong")
    assert s == 401
    s, b, _ = post(port, rpc(1, "initialize", {}), mcp.token,
                   headers={"Origin": "http://evil.example"})
    assert s == 403
    s, b, _ = post(port, b"{not json", mcp.token)
    assert s == 400 and b["error"]["code"] == -32700
    s, b, _ = post(port, None, mcp.token, method="GET")
    assert s == 405
    sid = start_session(mcp)
    s, b, _ = post(port, rpc(5, "no/such"), mcp.token, sid)
    assert s == 200 and b["error"]["code"] == -32601
    s, b, _ = post(port, rpc(5, "ping"), mcp.token, sid,
                   headers={"MCP-Protocol-Version": "1999-01-01"})
    assert s == 400
    # Another account cannot use the session.
    r = mcp.cli("user", "token", "bob")
    bob = r.stdout.strip().splitlines()[-1]
    time.sleep(0.1)
    assert post(port, rpc(6, "ping"), bob, sid)[0] == 404
    # DELETE ends it.
    assert post(port, None, mcp.token, sid, method="DELETE")[0] == 200
    assert post(port, rpc(7, "ping"), mcp.token, sid)[0] == 404


def test_input_that_is_no_message_is_refused_not_accepted(mcp):
    """202 means "notification or response taken": input that is neither (an empty batch, a
    number, an object without method or result, a response with both result and error) gets
    400 with a JSON-RPC Invalid Request, and the session goes on."""
    port = mcp.http_port
    sid = start_session(mcp)
    bad = [[], 5, "x", {"foo": 1}, [1], {"jsonrpc": "2.0"},
           {"jsonrpc": "1.0", "method": "notifications/initialized"},
           {"jsonrpc": "2.0", "id": 3, "result": {}, "error": {"code": 1, "message": "m"}},
           [{"jsonrpc": "2.0", "method": "notifications/initialized"}, {"nope": True}]]
    for body in bad:
        s, b, _ = post(port, json.dumps(body).encode(), mcp.token, sid)
        assert s == 400 and b["error"]["code"] == -32600 and b["id"] is None, (body, s, b)
    good = [{"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 9, "result": {}},
            {"jsonrpc": "2.0", "id": "a", "error": {"code": -1, "message": "no"}},
            [{"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
             {"jsonrpc": "2.0", "id": 9, "result": {}}]]
    for body in good:
        s, b, _ = post(port, body, mcp.token, sid)
        assert s == 202 and b is None, (body, s, b)
    s, b, _ = post(port, rpc(8, "ping"), mcp.token, sid)
    assert s == 200 and b["result"] == {}


def test_a_failed_initialize_starts_no_session(mcp):
    """An initialize answered with an error still made a session and sent its id; each took
    one of the account's 32 places, so a client retrying a bad initialize ended its own
    working sessions. Now it gets no Mcp-Session-Id and holds no place."""
    sid = start_session(mcp)
    for i in range(40):
        s, b, h = post(mcp.http_port, rpc(100 + i, "initialize", {"protocolVersion": 5}),
                       mcp.token)
        assert s == 200 and b["error"]["code"] == -32602, b
        assert "mcp-session-id" not in h, h
    s, b, _ = post(mcp.http_port, rpc(7, "ping"), mcp.token, sid)
    assert s == 200 and b["result"] == {}, (s, b)


def test_tools_run_through_the_proxy_with_its_policy(mcp, servers):
    """Calls in dev and prod; a write in prod is refused with 1290; audit lines say via mcp."""
    sid = start_session(mcp)
    err, envs = call_tool(mcp, sid, "list_environments", {})
    assert not err and {row[0] for row in envs["rows"]} == {"dev", "prod"}
    err, r = call_tool(mcp, sid, "execute_query",
                       {"environment": "prod", "database": "shop",
                        "sql": "SELECT status FROM orders WHERE id = 3"})
    assert not err and r["environment"] == "prod" and r["rows"] == [["shipped"]]
    before = servers.sql("prod", "SELECT count(*) FROM shop.orders")
    err, r = call_tool(mcp, sid, "execute_query",
                       {"environment": "prod", "database": "shop", "sql": "DELETE FROM orders"})
    assert err and r["error"]["code"] == 1290
    assert servers.sql("prod", "SELECT count(*) FROM shop.orders") == before
    deadline = time.time() + 5
    lines = []
    while time.time() < deadline:
        lines = [json.loads(x) for x in mcp.audit_path.read_text().splitlines() if x.strip()]
        if any(x.get("sql", "") and "DELETE FROM orders" in x["sql"] for x in lines):
            break
        time.sleep(0.1)
    refused = [x for x in lines if x.get("sql") and "DELETE FROM orders" in x["sql"]][0]
    assert refused["via"] == "mcp" and refused["verdict"] == "refused"
    assert refused["user"] == "alice"


def test_cancellation_stops_the_running_statement(mcp):
    """notifications/cancelled kills the statement of the session's running tool call."""
    sid = start_session(mcp)
    out = {}

    def slow():
        t0 = time.time()
        out["r"] = call_tool(mcp, sid, "execute_query",
                             {"environment": "dev", "sql": "SELECT SLEEP(15) AS s"}, id_=9)
        out["t"] = time.time() - t0

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(1.5)
    s, _, _ = post(mcp.http_port, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                   "params": {"requestId": 9}}, mcp.token, sid)
    assert s == 202
    t.join(30)
    assert not t.is_alive()
    assert out["t"] < 10
    # SLEEP interrupted by KILL QUERY returns 1 (or the statement fails): either way it ended.
    err, r = out["r"]
    assert err or r["rows"] == [[1]] or r["rows"] == [{"s": 1}], r


def test_a_cancellation_stops_only_the_request_it_names(mcp):
    """A notifications/cancelled for a request that already ended (or never ran) stopped
    whatever the session ran at the time. It is now ignored, as the protocol allows; one
    naming the running request (a string id too) still stops it."""
    sid = start_session(mcp)

    def run(id_, seconds, out):
        t0 = time.time()
        s, b, _ = post(mcp.http_port, rpc(id_, "tools/call", {
            "name": "execute_query",
            "arguments": {"environment": "dev", "sql": f"SELECT SLEEP({seconds}) AS s"}}),
            mcp.token, sid)
        out["answer"], out["t"] = (s, b), time.time() - t0

    def cancel(request_id):
        s, _, _ = post(mcp.http_port, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                       "params": {"requestId": request_id}}, mcp.token, sid)
        assert s == 202

    out = {}
    t = threading.Thread(target=run, args=(21, 3, out))
    t.start()
    time.sleep(1.0)
    for stale in (20, "21", 21.5, None):
        cancel(stale)
    t.join(30)
    s, b = out["answer"]
    text = json.loads(b["result"]["content"][0]["text"])
    assert s == 200 and text["rows"] == [[0]] and out["t"] >= 2.5, (out, text)
    out = {}
    t = threading.Thread(target=run, args=("job-22", 15, out))
    t.start()
    time.sleep(1.0)
    cancel("job-22")
    t.join(30)
    assert not t.is_alive() and out["t"] < 10, out


def test_named_queries_are_tools(mcp, tmp_path, servers):
    """Each named query is a tool nq_NAME with its parameters as the input schema; arguments
    are bound server-side (a quote stays a value) and typed; a write is refused in prod."""
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT id, name FROM customers WHERE name = :who OR id = :id ORDER BY id")
    r = mcp.cli("query", "add", "find_customer", "--sql-file", str(sql), "--param", "who:string",
                "--param", "id:int:0", "--database", "shop", "--env", "dev", "--env", "prod",
                "--description", "Find a customer")
    assert r.returncode == 0, r.stderr
    sql.write_text("UPDATE orders SET note = note WHERE id = :id")
    r = mcp.cli("query", "add", "touch_order", "--sql-file", str(sql), "--param", "id:int",
                "--database", "shop", "--env", "dev")
    assert r.returncode == 0, r.stderr
    time.sleep(1.2)
    sid = start_session(mcp)
    s, b, _ = post(mcp.http_port, rpc(2, "tools/list"), mcp.token, sid)
    tools = {t["name"]: t for t in b["result"]["tools"]}
    t = tools["nq_find_customer"]
    props = t["inputSchema"]["properties"]
    assert props["id"]["type"] == "integer" and props["who"]["type"] == "string"
    assert props["environment"]["enum"] == ["dev", "prod"]
    assert t["inputSchema"]["required"] == ["who"]
    err, r = call_tool(mcp, sid, "nq_find_customer",
                       {"environment": "prod", "who": "O'Brien & Sons"})
    assert not err and r["rows"] == [[7, "O'Brien & Sons"]], r
    err, r = call_tool(mcp, sid, "nq_find_customer", {"who": "x' OR '1'='1"})
    assert not err and r["rows"] == [] and r["environment"] == "dev"
    err, r = call_tool(mcp, sid, "nq_find_customer", {"who": "a", "id": "1 OR 1=1"})
    assert err and "id" in r["error"]["message"]
    err, r = call_tool(mcp, sid, "nq_touch_order", {"environment": "prod", "id": 1})
    assert err and "may not run" in r["error"]["message"]
    err, r = call_tool(mcp, sid, "nq_touch_order", {"id": 1})
    assert not err and r["affected_rows"] in (0, 1), r
    mcp.cli("query", "del", "find_customer")
    mcp.cli("query", "del", "touch_order")


def test_named_query_tools_are_bounded_like_execute_query(mcp, tmp_path):
    """A named query's rows are read as they come and cut past 1 MiB of text, as
    execute_query's are: a result of large values neither comes back whole nor is held
    whole in the proxy's memory first. Values longer than any before them come back intact."""
    sql = tmp_path / "big.sql"
    sql.write_text("SELECT seq, REPEAT('x', seq * 1000) AS v FROM seq_1_to_400 WHERE seq >= :n")
    r = mcp.cli("query", "add", "big_values", "--sql-file", str(sql), "--param", "n:int:1",
                "--env", "dev")
    assert r.returncode == 0, r.stderr
    time.sleep(1.2)
    sid = start_session(mcp)
    rss_before = mcp.rss_kb()
    err, r = call_tool(mcp, sid, "nq_big_values", {})
    assert not err, r
    assert r["truncated"] is True and r["truncated_by"] == "max_bytes", {
        k: v for k, v in r.items() if k != "rows"}
    assert 1 <= r["row_count"] < 400
    for seq, v in r["rows"]:
        assert v == "x" * (seq * 1000)
    text_len = len(json.dumps(r["rows"]))
    assert 1024 * 1024 <= text_len < 2 * 1024 * 1024
    if not is_sanitizer_build(mcp.binary):  # ASan keeps freed memory in quarantine
        assert mcp.rss_kb() - rss_before < 64 * 1024
    err, r = call_tool(mcp, sid, "nq_big_values", {"n": 399})
    assert not err and r["truncated"] is False and [x[0] for x in r["rows"]] == [399, 400]
    assert r["rows"][1][1] == "x" * 400000
    mcp.cli("query", "del", "big_values")


def test_stdio_mcp_offers_named_queries_too(mcp, tmp_path):
    """`envproxy mcp` over stdio reads __queries.queries and offers the same nq_ tools."""
    from test_mcp import McpProcess
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT status FROM orders WHERE id = :id")
    assert mcp.cli("query", "add", "stdio_status", "--sql-file", str(sql), "--param", "id:int",
                   "--database", "shop").returncode == 0
    time.sleep(1.2)
    m = McpProcess(mcp.port, tmp_path / "mcp.stderr")
    try:
        m.initialize()
        tools = {t["name"] for t in m.request("tools/list")["result"]["tools"]}
        assert "nq_stdio_status" in tools and "execute_query" in tools
        r = m.ok("nq_stdio_status", {"environment": "prod", "id": 3})
        assert r["rows"] == [["shipped"]]
        e = m.error("nq_stdio_status", {"id": "3; DROP TABLE orders"})
        assert "id" in e["message"]
    finally:
        assert m.close() == 0
        mcp.cli("query", "del", "stdio_status")
