"""Large answers of the HTTP front door are streamed (chunked) as rows arrive, within a memory
bound: reading from the internal session pauses while the HTTP client has much unread, so the
proxy's memory does not follow the size of the result; a client that goes away mid-answer has
its statement killed; an error after the first rows went out ends the JSON with "error"."""
import http.client
import json
import socket
import time

from harness import envproxy_bin, free_port, is_sanitizer_build
from test_http_api import call, login


def rss_kib(pid):
    """The proxy's resident set size (VmRSS of /proc/PID/status), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def start(make_proxy, timeout="60s", write_timeout="60s"):
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                               "client_write_timeout": write_timeout,
                               "limits": {"max_rows": 0, "statement_timeout": timeout}})
    p.http_port = port
    p.tok = login(port)
    return p


def post_raw(port, tok, body):
    """Sends POST /api/v1/query on a raw socket and returns the socket, nothing read."""
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode()
              + b"\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(data)).encode() + b"\r\n\r\n" + data)
    return s


def running(servers, marker):
    return servers.sql("dev", "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO "
                       f"LIKE '%{marker}%' AND INFO NOT LIKE '%PROCESSLIST%'")[0][0]


def wait_running(servers, marker, started, seconds, step=0.2):
    """Polls (at most seconds) until the statement carrying marker has started on dev
    (started) or is gone from it (not started); the caller asserts the outcome."""
    deadline = time.time() + seconds
    while time.time() < deadline and (running(servers, marker) == 0) == started:
        time.sleep(step)


def test_a_200000_row_answer_arrives_complete_and_chunked(make_proxy):
    """200,000 rows come whole, in order, as one JSON document sent chunked; the request's
    max_rows still cuts a streamed answer and says truncated."""
    p = start(make_proxy)
    conn = http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=120)
    h = {"Authorization": "Bearer " + p.tok, "Content-Type": "application/json"}
    sql = "SELECT seq AS n, CONCAT('row-', seq) AS label FROM seq_1_to_200000 ORDER BY seq"
    conn.request("POST", "/api/v1/query", body=json.dumps({"env": "dev", "sql": sql}), headers=h)
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Transfer-Encoding") == "chunked"
    b = json.loads(r.read())
    assert b["row_count"] == 200000 and len(b["rows"]) == 200000 and b["truncated"] is False
    assert b["columns"] == [{"name": "n", "type": "bigint unsigned"},
                            {"name": "label", "type": "varchar"}]
    assert b["rows"][0] == [1, "row-1"] and b["rows"][-1] == [200000, "row-200000"]
    assert all(row[0] == i + 1 for i, row in enumerate(b["rows"]))
    assert "error" not in b
    # The same keep-alive connection: a capped streamed answer.
    conn.request("POST", "/api/v1/query",
                 body=json.dumps({"env": "dev", "sql": sql, "max_rows": 150000}), headers=h)
    r = conn.getresponse()
    b = json.loads(r.read())
    assert r.status == 200 and b["row_count"] == 150000 and b["truncated"] is True
    assert b["rows"][-1] == [150000, "row-150000"]
    # A short answer is still whole, with a Content-Length.
    conn.request("POST", "/api/v1/query", body=json.dumps({"env": "dev", "sql": "SELECT 1 AS x"}),
                 headers=h)
    r = conn.getresponse()
    assert r.getheader("Content-Length") and json.loads(r.read())["rows"] == [[1]]
    conn.close()


def test_memory_stays_bounded_while_the_client_reads_slowly_or_not_at_all(make_proxy, servers):
    """A 2,000,000-row answer (about 100 MB of JSON) to a client that reads nothing, then
    reads slowly: the proxy's RSS grows by a few MiB, not with the answer, and the server's
    statement waits (back-pressure) instead of running ahead. When the client goes away, the
    statement is killed on the server."""
    p = start(make_proxy)
    marker = "marker_stream_slow"
    base = rss_kib(p.pid)
    s = post_raw(p.http_port, p.tok, {"env": "dev", "sql": f"SELECT seq, '{marker}' AS m, "
                                      "REPEAT('x', 20) AS pad FROM seq_1_to_2000000"})
    try:
        wait_running(servers, marker, True, 10)
        assert running(servers, marker) == 1
        peak = 0
        for _ in range(15):  # 3 s of reading nothing
            time.sleep(0.2)
            peak = max(peak, rss_kib(p.pid))
        got = 0
        s.settimeout(5)
        for _ in range(40):  # then 2 s of reading 16 KiB every 50 ms
            got += len(s.recv(16384))
            time.sleep(0.05)
            peak = max(peak, rss_kib(p.pid))
        assert got > 0
        # ASan keeps freed memory in quarantine, so its RSS follows what went through, not
        # what is held: a wider bound there, still below the 100 MB answer.
        bound = 64 if is_sanitizer_build(envproxy_bin()) else 16
        assert peak - base < bound * 1024, (base, peak)
        # Still running (held back), not finished into some buffer.
        assert running(servers, marker) == 1
    finally:
        s.close()
    wait_running(servers, marker, False, 15, 0.3)
    assert running(servers, marker) == 0
    assert call(p.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 1 AS x"},
                token=p.tok)[0] == 200


def test_a_client_that_disconnects_mid_answer_leaves_no_statement_running(make_proxy, servers):
    """A client that reads the start of a streamed answer and hangs up: the statement is gone
    from the server's processlist soon after, and the proxy serves the next request."""
    p = start(make_proxy)
    marker = "marker_stream_gone"
    s = post_raw(p.http_port, p.tok, {"env": "dev", "sql": f"SELECT seq, '{marker}' AS m "
                                      "FROM seq_1_to_5000000"})
    head = b""
    deadline = time.time() + 10
    while time.time() < deadline and b'"rows":[' not in head and len(head) < 1 << 20:
        head += s.recv(65536)
    assert b"HTTP/1.1 200" in head and b'"rows":[' in head
    assert running(servers, marker) == 1
    s.close()
    wait_running(servers, marker, False, 15, 0.3)
    assert running(servers, marker) == 0
    assert call(p.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 1 AS x"},
                token=p.tok)[0] == 200


def test_an_error_after_rows_went_out_ends_the_json_with_error(make_proxy):
    """The statement times out after 100,000 rows were streamed: the status was already 200,
    so the document ends with an "error" member (the MySQL code and message) and truncated
    true; it is still valid JSON. The same timeout before any row is a 504 as before."""
    p = start(make_proxy, timeout="2s")
    sql = "SELECT seq, IF(seq = 100000, SLEEP(10), 0) AS s FROM seq_1_to_200000"
    st, b, h = call(p.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": sql},
                    token=p.tok, timeout=60)
    assert st == 200 and h.get("transfer-encoding") == "chunked", (st, b)
    assert b["truncated"] is True and b["error"]["code"] == 3024, b["error"]
    assert b["error"]["env"] == "dev" and "execution time" in b["error"]["message"]
    assert 0 < b["row_count"] < 200000 and len(b["rows"]) == b["row_count"]
    assert b["rows"][0] == [1, 0]
    st, b, _ = call(p.http_port, "POST", "/api/v1/query",
                    {"env": "dev", "sql": "SELECT SLEEP(10) AS s"}, token=p.tok, timeout=60)
    assert st == 504 and b["error"]["code"] == 3024, b


def test_a_statement_silent_for_longer_than_the_http_idle_timeout_is_answered_whole(make_proxy):
    """100,000 rows go out, then the statement sends nothing for 11 s (longer than the HTTP
    port's 10 s idle timeout) before its last row, within statement_timeout 60s: the answer is
    not cut; the client gets the whole JSON with every row, and the keep-alive connection
    then answers another request."""
    p = start(make_proxy)
    conn = http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=60)
    h = {"Authorization": "Bearer " + p.tok, "Content-Type": "application/json"}
    sql = "SELECT seq, IF(seq = 100001, SLEEP(11), 0) AS s FROM seq_1_to_100001"
    t0 = time.time()
    conn.request("POST", "/api/v1/query", body=json.dumps({"env": "dev", "sql": sql}), headers=h)
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    b = json.loads(r.read())  # http.client.IncompleteRead: the connection was cut
    assert time.time() - t0 >= 11
    assert b["row_count"] == 100001 and len(b["rows"]) == 100001 and b["truncated"] is False
    assert b["rows"][0] == [1, 0] and b["rows"][-1] == [100001, 0] and "error" not in b
    conn.request("POST", "/api/v1/query", body=json.dumps({"env": "dev", "sql": "SELECT 1 AS x"}),
                 headers=h)
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["rows"] == [[1]]
    conn.close()


def test_an_http_1_0_client_gets_the_streamed_answer_ended_by_close(make_proxy):
    """HTTP/1.0 has no chunks: a streamed answer to an HTTP/1.0 client that asked for
    keep-alive says Connection: close and ends with the connection, at once, whole."""
    p = start(make_proxy)
    body = json.dumps({"env": "dev", "sql": "SELECT seq FROM seq_1_to_100000"}).encode()
    s = socket.create_connection(("127.0.0.1", p.http_port), timeout=8)
    s.sendall(b"POST /api/v1/query HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
              b"Authorization: Bearer " + p.tok.encode() + b"\r\nContent-Type: application/json"
              b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    t0 = time.time()
    while len(got) < 16 << 20:
        chunk = s.recv(65536)  # a socket.timeout here: the proxy kept the connection open
        if not chunk:
            break
        got += chunk
    s.close()
    assert time.time() - t0 < 5
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"connection: close" in head.lower()
    b = json.loads(rest)
    assert b["row_count"] == 100000 and b["rows"][-1] == [100000]


def test_a_client_that_stops_reading_is_dropped_within_the_write_deadline(make_proxy, servers):
    """A client that never reads its streamed answer (and never closes) holds nothing
    forever: once nothing could be written to it for client_write_timeout (10 s here) the
    proxy drops it, and its statement, held back until then, is killed on the server."""
    p = start(make_proxy, write_timeout="10s")
    marker = "marker_stream_stalled"
    s = post_raw(p.http_port, p.tok, {"env": "dev", "sql": f"SELECT seq, '{marker}' AS m, "
                                      "REPEAT('y', 40) AS pad FROM seq_1_to_5000000"})
    try:
        wait_running(servers, marker, True, 10)
        assert running(servers, marker) == 1
        t0 = time.time()
        wait_running(servers, marker, False, 30, 0.5)
        assert running(servers, marker) == 0
        assert 8 < time.time() - t0 < 30
    finally:
        s.close()
    assert call(p.http_port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 1 AS x"},
                token=p.tok)[0] == 200


def test_the_proxys_max_rows_cuts_a_streamed_answer(make_proxy):
    """The proxy's limits.max_rows (here 150,000) cuts a streamed answer as a whole one: the
    rows stop at the cap, truncated is true and the 1105 warning says why."""
    port = free_port()
    make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                           "limits": {"max_rows": 150000, "statement_timeout": "60s"}})
    tok = login(port)
    st, b, h = call(port, "POST", "/api/v1/query",
                    {"env": "dev", "sql": "SELECT seq FROM seq_1_to_200000"}, token=tok,
                    timeout=120)
    assert st == 200 and h.get("transfer-encoding") == "chunked"
    assert b["row_count"] == 150000 and len(b["rows"]) == 150000 and b["truncated"] is True
    assert any(w["code"] == 1105 and "max_rows" in w["message"] for w in b["warnings"])
    assert "error" not in b
