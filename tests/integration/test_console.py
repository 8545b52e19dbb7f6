"""The web console (GET / on the http: listener) in real headless Chromium against the real
MariaDB servers: a person logs in, browses the schema, writes and runs SQL in dev and prod,
sees a refusal, fans out, opens the diff views, runs a named query through its form, exports
CSV and logs out. Every step leaves a screenshot in build/artifacts/console/ and is checked for
overlapping panels, console errors and failed requests. Also measured: the cold page load and
the longest task while a 10,000-row result renders. The assets' headers and the history routes
are tested over plain HTTP."""
import csv
import gzip
import http.client
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from harness import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CONSOLE_ARTIFACTS", ROOT / "build" / "artifacts" / "console"))


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = dict(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    raw = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, raw, hdrs


def jcall(port, method, path, body=None, headers=None):
    s, raw, h = call(port, method, path, body, headers)
    return s, (json.loads(raw) if raw else None), h


@pytest.fixture(scope="module")
def cproxy(make_module_proxy):
    port = free_port()
    p = make_module_proxy({"http": f"127.0.0.1:{port}", "limits": {"max_rows": 20000}})
    p.http_port = port
    p.base = f"http://127.0.0.1:{port}"
    return p


def login_cookie(port, user="alice", password="alice-pw"):
    s, b, h = jcall(port, "POST", "/api/v1/session", {"user": user, "password": password})
    assert s == 200, b
    return {"Cookie": "envproxy_session=" + b["token"], "X-CSRF-Token": b["csrf_token"]}, b


# ---- over plain HTTP ---------------------------------------------------------------------------

def test_console_assets_are_served_from_the_binary_with_strict_headers(cproxy):
    """GET / and the assets come from the binary with a strict CSP (no inline script, no
    eval, no framing), nosniff, an ETag that gives 304, and gzip when the client takes it."""
    port = cproxy.http_port
    s, body, h = call(port, "GET", "/")
    assert s == 200 and h["content-type"].startswith("text/html")
    assert b'src="/assets/app.js"' in body and b"<script>" not in body
    csp = h["content-security-policy"]
    for part in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
                 "object-src 'none'"):
        assert part in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert h["x-content-type-options"] == "nosniff"
    s, js, h2 = call(port, "GET", "/assets/app.js")
    assert s == 200 and h2["content-type"].startswith("text/javascript") and len(js) > 10000
    s, _, h3 = call(port, "GET", "/assets/app.js", headers={"If-None-Match": h2["etag"]})
    assert s == 304
    s, gz, h4 = call(port, "GET", "/assets/app.js", headers={"Accept-Encoding": "gzip"})
    assert s == 200 and h4["content-encoding"] == "gzip" and gzip.decompress(gz) == js
    s, css, h5 = call(port, "GET", "/assets/app.css", headers={"Accept-Encoding": "gzip;q=0"})
    assert s == 200 and "content-encoding" not in h5 and h5["content-type"].startswith("text/css")
    assert call(port, "POST", "/")[0] == 405
    assert call(port, "GET", "/assets/nothing.js")[0] == 404
    assert call(port, "GET", "/assets/app.js/../../etc/passwd")[0] == 404


def test_session_route_tells_a_reloaded_page_who_it_is(cproxy):
    """GET /api/v1/session answers the cookie session's user and CSRF token (what a reloaded
    page needs), {"user":null} without one, and nothing after logout."""
    port = cproxy.http_port
    s, b, _ = jcall(port, "GET", "/api/v1/session")
    assert s == 200 and b == {"user": None}
    hdr, login = login_cookie(port)
    s, b, h = jcall(port, "GET", "/api/v1/session", headers={"Cookie": hdr["Cookie"]})
    assert s == 200 and b["user"] == "alice" and b["csrf_token"] == login["csrf_token"]
    assert h["cache-control"] == "no-store"
    assert jcall(port, "DELETE", "/api/v1/session", headers=hdr)[0] == 200
    s, b, _ = jcall(port, "GET", "/api/v1/session", headers={"Cookie": hdr["Cookie"]})
    assert b == {"user": None}


def test_history_is_per_account_bounded_and_csrf_protected(cproxy):
    """POST /api/v1/history stores an entry for the caller only; GET lists the caller's,
    newest first; a cookie POST without the CSRF token is refused; bad fields are 400; the
    store keeps at most 200 entries per account; DELETE clears one or all."""
    port = cproxy.http_port
    alice, _ = login_cookie(port)
    bob, _ = login_cookie(port, "bob", "bob-pw")
    jcall(port, "DELETE", "/api/v1/history", headers=alice)
    jcall(port, "DELETE", "/api/v1/history", headers=bob)
    entry = {"sql": "SELECT 'it''s' AS x", "env": "dev", "database": "shop",
             "execution_time_ms": 1.5, "error_code": 0}
    s, b, _ = jcall(port, "POST", "/api/v1/history", entry, headers=alice)
    assert s == 201 and b["id"] > 0
    s, b, _ = jcall(port, "POST", "/api/v1/history", entry,
                    headers={"Cookie": alice["Cookie"]})
    assert s == 403
    s, b, _ = jcall(port, "GET", "/api/v1/history", headers=alice)
    assert [e["sql"] for e in b["history"]] == [entry["sql"]]
    assert b["history"][0]["env"] == "dev" and b["history"][0]["execution_time_ms"] == 1.5
    assert jcall(port, "GET", "/api/v1/history", headers=bob)[1]["history"] == []
    for bad in ({"sql": ""}, {"sql": 5}, {"sql": "x", "env": "a b"}, {"sql": "x", "nope": 1},
                {"sql": "x", "error_code": -1}, {"sql": "x" * 70000}, {"env": "dev"}):
        s, b, _ = jcall(port, "POST", "/api/v1/history", bad, headers=alice)
        assert s == 400, bad
    assert jcall(port, "GET", "/api/v1/history?limit=0", headers=alice)[0] == 400
    assert jcall(port, "GET", "/api/v1/history?limit=x", headers=alice)[0] == 400
    for i in range(210):
        s, _, _ = jcall(port, "POST", "/api/v1/history", {"sql": f"SELECT {i}"}, headers=alice)
        assert s == 201
    s, b, _ = jcall(port, "GET", "/api/v1/history?limit=200", headers=alice)
    assert len(b["history"]) == 200 and b["history"][0]["sql"] == "SELECT 209"
    assert b["history"][-1]["sql"] == "SELECT 10"
    one = b["history"][0]["id"]
    assert jcall(port, "DELETE", f"/api/v1/history/{one}", headers=bob)[0] == 200
    assert len(jcall(port, "GET", "/api/v1/history?limit=200", headers=alice)[1]["history"]) == 200
    assert jcall(port, "DELETE", f"/api/v1/history/{one}", headers=alice)[0] == 200
    assert len(jcall(port, "GET", "/api/v1/history?limit=200", headers=alice)[1]["history"]) == 199
    assert jcall(port, "DELETE", "/api/v1/history", headers=alice)[0] == 200
    assert jcall(port, "GET", "/api/v1/history", headers=alice)[1]["history"] == []
    assert jcall(port, "GET", "/api/v1/history")[0] == 401
