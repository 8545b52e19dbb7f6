"""The HTTP front door (/api/v1) against real MariaDB servers: every statement goes through
the proxy's one statement path, so grants, the read-only policy, limits and the audit log
hold exactly as on the MySQL port."""
import http.client
import json
import time

import pytest

from harness import free_port


def call(port, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
    """One request; returns (status, parsed JSON or None, response headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return r.status, parsed, hdrs


def login(port, user="alice", password="alice-pw"):
    s, b, h = call(port, "POST", "/api/v1/session", {"user": user, "password": password})
    assert s == 200, b
    return b["token"]


@pytest.fixture(scope="module")
def api(make_module_proxy, tmp_path_factory):
    port = free_port()
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    p = make_module_proxy({"http": f"127.0.0.1:{port}", "audit_log": str(audit),
                           "limits": {"max_rows": 50, "statement_timeout": "2s"}})
    p.http_port = port
    p.audit_path = audit
    p.alice = login(port)
    return p


def q(api, body, token=None):
    return call(api.http_port, "POST", "/api/v1/query", body, token=token or api.alice)


def test_login_sets_an_httponly_strict_cookie_and_bad_passwords_get_401(api):
    """A login answers a token and the cookie; a wrong password is 401 with MySQL's 1045."""
    s, b, h = call(api.http_port, "POST", "/api/v1/session",
                   {"user": "alice", "password": "alice-pw"})
    assert s == 200 and b["token"].startswith("eps_") and b["expires_at"].endswith("Z")
    cookie = h["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and b["token"] in cookie
    s, b, _ = call(api.http_port, "POST", "/api/v1/session",
                   {"user": "alice", "password": "wrong"})
    assert s == 401 and b["error"]["code"] == 1045 and b["error"]["sqlstate"] == "28000"
    s, b, _ = call(api.http_port, "POST", "/api/v1/session", {"user": "nobody", "password": "x"})
    assert s == 401 and b["error"]["code"] == 1045


def test_requests_without_valid_credentials_get_401(api):
    """No token, a made-up token, and a logged-out session are all refused."""
    for tok in (None, "eps_" + "0" * 64, "ept_nothing", "garbage"):
        s, b, _ = call(api.http_port, "GET", "/api/v1/environments", token=tok)
        assert s == 401 and b["error"]["code"] == 1045, (tok, b)
    tok = login(api.http_port)
    assert call(api.http_port, "GET", "/api/v1/environments", token=tok)[0] == 200
    assert call(api.http_port, "DELETE", "/api/v1/session", token=tok)[0] == 200
    assert call(api.http_port, "GET", "/api/v1/environments", token=tok)[0] == 401


def test_cookie_session_needs_the_csrf_token_for_posts(api):
    """A browser cookie authenticates GETs; a POST also needs X-CSRF-Token from the login."""
    s, b, h = call(api.http_port, "POST", "/api/v1/session",
                   {"user": "alice", "password": "alice-pw"})
    cookie = {"Cookie": "envproxy_session=" + b["token"]}
    assert call(api.http_port, "GET", "/api/v1/environments", headers=cookie)[0] == 200
    body = {"env": "dev", "sql": "SELECT 1 AS one"}
    s, e, _ = call(api.http_port, "POST", "/api/v1/query", body, headers=cookie)
    assert s == 403
    s, e, _ = call(api.http_port, "POST", "/api/v1/query", body,
                   headers=dict(cookie, **{"X-CSRF-Token": b["csrf_token"],
                                           "Origin": "http://evil.example"}))
    assert s == 403
    s, r, _ = call(api.http_port, "POST", "/api/v1/query", body,
                   headers=dict(cookie, **{"X-CSRF-Token": b["csrf_token"]}))
    assert s == 200 and r["rows"] == [[1]]


def test_api_tokens_from_the_cli(api):
    """`user token` prints a token once (stored hashed), list shows it, revoke ends it."""
    r = api.cli("user", "token", "bob", "--expires", "30d")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("ept_")
    assert token.encode() not in api.accounts_path.read_bytes()
    s, b, _ = call(api.http_port, "GET", "/api/v1/environments", token=token)
    assert s == 200 and [e["name"] for e in b["environments"]] == ["prod"]
    listing = api.cli("user", "token", "list", "bob").stdout
    assert "bob" in listing and token not in listing
    tid = [l.split()[0] for l in listing.splitlines()[1:] if " bob " in l][-1]
    assert api.cli("user", "token", "revoke", tid).returncode == 0
    deadline = time.time() + 5
    while time.time() < deadline:
        if call(api.http_port, "GET", "/api/v1/environments", token=token)[0] == 401:
            break
        time.sleep(0.2)
    assert call(api.http_port, "GET", "/api/v1/environments", token=token)[0] == 401
    assert api.cli("user", "token", "nosuchuser").returncode == 1


def test_environments_databases_and_schema(api):
    """The account's environments, their databases, and a schema with keys and foreign keys."""
    s, b, _ = call(api.http_port, "GET", "/api/v1/environments", token=api.alice)
    assert s == 200
    names = {e["name"]: e for e in b["environments"]}
    assert set(names) == {"dev", "prod"} and names["prod"]["access"] == "read"
    s, b, _ = call(api.http_port, "GET", "/api/v1/environments/dev/databases", token=api.alice)
    assert s == 200 and "shop" in b["databases"] and "analytics" in b["databases"]
    assert "__envs" not in b["databases"] and "__queries" not in b["databases"]
    # shop has more columns than this proxy's max_rows (50): the schema is an error, never a
    # part of it that reads as the whole.
    path = "/api/v1/environments/dev/databases/shop/schema"
    s, b, _ = call(api.http_port, "GET", path, token=api.alice)
    assert s != 200 and b["error"]["code"] == 1104, b
    assert api.cli("user", "limits", "alice", "--max-rows", "0").returncode == 0
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s, b, _ = call(api.http_port, "GET", path, token=api.alice)
            if s == 200:
                break
            time.sleep(0.2)
    finally:
        assert api.cli("user", "limits", "alice", "--max-rows", "default").returncode == 0
    assert s == 200, b
    schema = b
    deadline = time.monotonic() + 10  # the cap is back before the next test
    while call(api.http_port, "GET", path, token=api.alice)[0] == 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    b = schema
    t = {x["name"]: x for x in b["tables"]}
    n_columns = sum(len(x["columns"]) for x in b["tables"])
    assert n_columns > 50, n_columns
    orders = t["orders"]
    assert orders["type"] == "table" and orders["primary_key"] == ["id"]
    cols = {c["name"]: c for c in orders["columns"]}
    assert cols["note"]["nullable"] is True and cols["id"]["key"] == "PRI"
    assert cols["total"]["type"] == "decimal(10,2)"
    fk = orders["foreign_keys"][0]
    assert fk == {"name": "fk_orders_customer", "columns": ["customer_id"],
                  "ref_table": "customers", "ref_columns": ["id"]}
    assert any(i["name"] == "uq_products_sku" and i["unique"] for i in t["products"]["indexes"])
    # Unknown environment or database, or one without a grant: 404.
    bob = login(api.http_port, "bob", "bob-pw")
    for path, tok in (("/api/v1/environments/dev/databases", bob),
                      ("/api/v1/environments/nope/databases", api.alice),
                      ("/api/v1/environments/dev/databases/nope/schema", api.alice)):
        s, b, _ = call(api.http_port, "GET", path, token=tok)
        assert s == 404, (path, b)


def test_query_values_map_to_json(api):
    """NULL, integers, big integers, DECIMAL, floats, dates, text and binary map as specified."""
    s, b, _ = q(api, {"env": "dev", "database": "shop", "sql":
                      "SELECT 1 AS i, NULL AS n, 9007199254740993 AS big, CAST(1.50 AS DECIMAL(5,2)) AS d,"
                      " 0.5e0 AS f, DATE'2024-02-29' AS dt, 'Zoë' AS t, X'00FF' AS bin"})
    assert s == 200, b
    assert b["rows"] == [[1, None, "9007199254740993", "1.50", 0.5, "2024-02-29", "Zoë",
                          {"base64": "AP8="}]]
    assert [c["name"] for c in b["columns"]] == ["i", "n", "big", "d", "f", "dt", "t", "bin"]
    assert b["row_count"] == 1 and b["truncated"] is False and b["env"] == "dev"
    assert isinstance(b["execution_time_ms"], (int, float))


def test_params_are_bound_server_side_and_a_quote_stays_a_value(api):
    """'?' parameters are bound by COM_STMT_EXECUTE: an injection attempt is just a string."""
    s, b, _ = q(api, {"env": "dev", "database": "shop",
                      "sql": "SELECT id, name FROM customers WHERE name = ? OR id = ?",
                      "params": ["O'Brien & Sons", 2]})
    assert s == 200, b
    assert b["rows"] == [[2, "Bob Dupont"], [7, "O'Brien & Sons"]]
    s, b, _ = q(api, {"env": "dev", "database": "shop",
                      "sql": "SELECT count(*) AS n FROM customers WHERE name = ?",
                      "params": ["x' OR '1'='1"]})
    assert s == 200 and b["rows"] == [[0]]
    s, b, _ = q(api, {"env": "dev", "database": "shop", "sql": "SELECT ?+0 AS a, ? AS b",
                      "params": [1.25, None]})
    assert s == 200 and b["rows"][0][1] is None
    s, b, _ = q(api, {"env": "dev", "sql": "SELECT ? AS a", "params": [1, 2]})
    assert s == 400 and b["error"]["code"] == 1210
    s, b, _ = q(api, {"env": "dev", "sql": "SELECT ? AS a", "params": [{"x": 1}]})
    assert s == 400


def test_refused_write_in_prod_is_403_with_1290(api, servers):
    """A write in the read-only environment: ERR 1290 as on the MySQL port, HTTP 403."""
    before = servers.sql("prod", "SELECT count(*) FROM shop.orders")
    s, b, _ = q(api, {"env": "prod", "database": "shop", "sql": "DELETE FROM orders"})
    assert s == 403 and b["error"]["code"] == 1290 and b["error"]["env"] == "prod"
    assert "read-only" in b["error"]["message"]
    s, b, _ = q(api, {"env": "prod", "database": "shop", "sql": "DELETE FROM orders WHERE id = ?",
                      "params": [1]})
    assert s == 403 and b["error"]["code"] == 1290
    assert servers.sql("prod", "SELECT count(*) FROM shop.orders") == before


def test_writes_in_dev_report_affected_rows(api, servers):
    """A write where the grant allows it runs and says how many rows it changed."""
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.http_scratch (id INT PRIMARY KEY, v TEXT)")
    servers.sql("dev", "DELETE FROM shop.http_scratch")
    s, b, _ = q(api, {"env": "dev", "database": "shop",
                      "sql": "INSERT INTO http_scratch VALUES (?, ?), (?, ?)",
                      "params": [1, "a", 2, "b"]})
    assert s == 200 and b["affected_rows"] == 2 and b["columns"] == []
    servers.sql("dev", "DROP TABLE shop.http_scratch")


def test_max_rows_truncates(api):
    """The request's max_rows and the proxy's max_rows both cut the answer, saying so."""
    s, b, _ = q(api, {"env": "dev", "sql": "SELECT seq FROM seq_1_to_100", "max_rows": 5})
    assert s == 200 and b["row_count"] == 5 and b["truncated"] is True
    s, b, _ = q(api, {"env": "dev", "sql": "SELECT seq FROM seq_1_to_100"})
    assert s == 200 and b["row_count"] == 50 and b["truncated"] is True
    assert any("max_rows" in w["message"] for w in b["warnings"])


def test_statement_timeout_is_504(api):
    """statement_timeout kills the statement: ERR 3024 as HTTP 504."""
    t0 = time.time()
    s, b, _ = q(api, {"env": "dev", "sql": "SELECT SLEEP(10)"})
    assert s == 504 and b["error"]["code"] == 3024
    assert time.time() - t0 < 8


def test_fan_out_and_compare(api):
    """envs fans out (one answer per environment); compare returns __compare.query's rows."""
    s, b, _ = q(api, {"envs": ["dev", "prod"], "database": "shop",
                      "sql": "SELECT status FROM orders WHERE id = ?", "params": [3]})
    assert s == 200
    assert b["results"]["dev"]["rows"] == [["pending"]]
    assert b["results"]["prod"]["rows"] == [["shipped"]]
    s, b, _ = q(api, {"envs": ["dev", "prod"], "sql": "DELETE FROM shop.orders WHERE id = -1"})
    assert s == 200 and b["results"]["prod"]["error"]["code"] == 1290
    s, b, _ = q(api, {"compare": {"envs": ["dev", "prod"], "key": "id"},
                      "sql": "SELECT id, status FROM shop.orders"})
    assert s == 200, b
    names = [c["name"] for c in b["columns"]]
    assert names[:2] == ["_diff", "_env"]
    diffs = {(r[0], r[2]) for r in b["rows"]}
    assert ("only_left", 11) in diffs and ("only_right", 12) in diffs and ("changed", 3) in diffs


def test_unreachable_environment_is_503(make_proxy, servers):
    """An environment whose server is down answers 503 (fan-out: an error for that one)."""
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                               "environments": {"prod": {"port": free_port()}}})
    tok = login(port)
    s, b, _ = call(port, "POST", "/api/v1/query", {"env": "prod", "sql": "SELECT 1"}, token=tok)
    assert s == 503 and b["error"]["code"] == 2003 and b["error"]["env"] == "prod"
    s, b, _ = call(port, "POST", "/api/v1/query", {"envs": ["dev", "prod"], "sql": "SELECT 1 AS x"},
                   token=tok)
    assert s == 200 and b["results"]["dev"]["rows"] == [[1]]
    assert b["results"]["prod"]["error"]["code"] == 2003


def test_bad_requests_get_400(api):
    """Malformed JSON, wrong types, unknown fields and huge bodies are refused clearly."""
    port = api.http_port
    for raw in (b"{", b"[]", b"{\"sql\": 1}", b"{\"sql\": \"SELECT 1\", \"zzz\": 1}",
                b"{\"sql\": \"SELECT 1\", \"max_rows\": -1}", b"\xff\xfe"):
        s, b, _ = call(port, "POST", "/api/v1/query", raw=raw, token=api.alice)
        assert s == 400 and "error" in b, raw
    try:
        s, _, _ = call(port, "POST", "/api/v1/query",
                       raw=b"{\"sql\":\"" + b"x" * (2 << 20) + b"\"}", token=api.alice)
        assert s in (400, 413)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before the whole body was sent
    assert call(port, "GET", "/api/v1/nothing", token=api.alice)[0] == 404
    assert call(port, "GET", "/api/v1/query", token=api.alice)[0] == 405
    # The proxy still serves.
    assert q(api, {"env": "dev", "sql": "SELECT 1 AS x"})[0] == 200


def test_audit_lines_say_via_http(api):
    """Statements from the HTTP API are audited like MySQL ones, with via=http."""
    marker = "SELECT 'audit-marker-42' AS m"
    assert q(api, {"env": "dev", "sql": marker})[0] == 200
    deadline = time.time() + 5
    lines = []
    while time.time() < deadline:
        lines = [json.loads(x) for x in api.audit_path.read_text().splitlines() if x.strip()]
        if any(x.get("sql") == marker for x in lines):
            break
        time.sleep(0.1)
    line = [x for x in lines if x.get("sql") == marker][0]
    assert line["via"] == "http" and line["user"] == "alice" and line["env"] == "dev"
    assert line["verdict"] == "allowed" and line["client"].startswith("127.0.0.1:")
    conn = api.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 'audit-marker-43'")
    conn.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        lines = [json.loads(x) for x in api.audit_path.read_text().splitlines() if x.strip()]
        if any(x.get("sql") == "SELECT 'audit-marker-43'" for x in lines):
            break
        time.sleep(0.1)
    assert [x for x in lines if x.get("sql") == "SELECT 'audit-marker-43'"][0]["via"] == "mysql"


def test_failed_http_logins_share_the_mysql_throttle(make_proxy):
    """Failed HTTP logins count in the same throttle as MySQL logins (1129 / 429)."""
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                               "login_throttle": {"max_failures": 3, "window": "60s",
                                                  "block": "60s"}})
    for _ in range(3):
        assert call(port, "POST", "/api/v1/session", {"user": "alice", "password": "x"})[0] == 401
    s, b, _ = call(port, "POST", "/api/v1/session", {"user": "alice", "password": "alice-pw"})
    assert s == 429 and b["error"]["code"] == 1129
    import pymysql
    with pytest.raises(pymysql.err.OperationalError) as e:
        p.connect()
    assert e.value.args[0] == 1129


def test_named_queries_cli_rest_and_run(api, tmp_path, servers):
    """Named queries: made by the CLI or REST, listed, run with typed bound parameters and
    pages; a quote in a parameter stays a value; a wrong type is a 400 naming the parameter."""
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT id, name FROM customers WHERE id >= :min_id "
                   "AND name <> ':not_a_param' /* :nor_this */ ORDER BY id")
    r = api.cli("query", "add", "customers_from", "--sql-file", str(sql),
                "--param", "min_id:int:1", "--database", "shop",
                "--description", "customers from an id on")
    assert r.returncode == 0, r.stderr
    assert "customers_from" in api.cli("query", "list").stdout
    shown = json.loads(api.cli("query", "show", "customers_from").stdout)
    assert shown["params"] == [{"name": "min_id", "type": "int", "required": False,
                                "default": "1"}]
    port = api.http_port
    time.sleep(1.2)  # the proxy sees the store change within a second
    s, b, _ = call(port, "GET", "/api/v1/queries/customers_from", token=api.alice)
    assert s == 200 and b["database"] == "shop"
    s, b, _ = call(port, "POST", "/api/v1/queries/customers_from/run",
                   {"env": "dev", "params": {"min_id": 6}, "page": 1, "page_size": 2},
                   token=api.alice)
    assert s == 200, b
    assert b["rows"] == [[6, "Ода Нобунага"], [7, "O'Brien & Sons"]] and b["next_page"] == 2
    s, b, _ = call(port, "POST", "/api/v1/queries/customers_from/run",
                   {"env": "dev", "params": {"min_id": 6}, "page": 2, "page_size": 2},
                   token=api.alice)
    assert b["rows"] == [[8, "Test Account"]] and b["next_page"] is None
    s, b, _ = call(port, "POST", "/api/v1/queries/customers_from/run",
                   {"env": "dev", "params": {"min_id": "1 OR 1=1"}}, token=api.alice)
    assert s == 400 and "min_id" in b["error"]["message"]
    s, b, _ = call(port, "POST", "/api/v1/queries/customers_from/run",
                   {"env": "dev", "params": {"other": 1}}, token=api.alice)
    assert s == 400 and "other" in b["error"]["message"]
    # REST: create, run with a string parameter holding quotes, update, delete.
    d = {"name": "by_name", "sql": "SELECT id FROM customers WHERE name = :name",
         "params": [{"name": "name", "type": "string"}], "database": "shop",
         "environments": ["dev", "prod"], "description": "exact name"}
    s, b, _ = call(port, "POST", "/api/v1/queries", d, token=api.alice)
    assert s == 201 and b["owner"] == "alice"
    assert call(port, "POST", "/api/v1/queries", d, token=api.alice)[0] == 409
    for env in ("dev", "prod"):
        s, b, _ = call(port, "POST", "/api/v1/queries/by_name/run",
                       {"env": env, "params": {"name": "O'Brien & Sons"}}, token=api.alice)
        assert s == 200 and b["rows"] == [[7]], b
    s, b, _ = call(port, "POST", "/api/v1/queries/by_name/run",
                   {"env": "dev", "params": {"name": "x' OR '1'='1"}}, token=api.alice)
    assert s == 200 and b["rows"] == []
    s, b, _ = call(port, "POST", "/api/v1/queries/by_name/run", {"env": "dev"}, token=api.alice)
    assert s == 400 and "'name' is required" in b["error"]["message"]
    bob = login(port, "bob", "bob-pw")
    s, b, _ = call(port, "PUT", "/api/v1/queries/by_name", d, token=bob)
    assert s == 403
    d["description"] = "changed"
    s, b, _ = call(port, "PUT", "/api/v1/queries/by_name", d, token=api.alice)
    assert s == 200 and b["description"] == "changed"
    s, b, _ = call(port, "GET", "/api/v1/queries", token=api.alice)
    assert {"by_name", "customers_from"} <= {x["name"] for x in b["queries"]}
    assert call(port, "DELETE", "/api/v1/queries/by_name", token=api.alice)[0] == 200
    assert call(port, "GET", "/api/v1/queries/by_name", token=api.alice)[0] == 404
    assert api.cli("query", "del", "customers_from").returncode == 0


def test_named_query_writes_are_checked_when_saved_and_when_run(api, servers):
    """A write is saved only for read_write environments, and refused (1290) in prod anyway."""
    port = api.http_port
    bad = {"name": "wipe", "sql": "DELETE FROM orders WHERE id = :id",
           "params": [{"name": "id", "type": "int"}], "environments": ["prod"]}
    s, b, _ = call(port, "POST", "/api/v1/queries", bad, token=api.alice)
    assert s == 400 and "read-only" in b["error"]["message"]
    bad["environments"] = []
    assert call(port, "POST", "/api/v1/queries", bad, token=api.alice)[0] == 400
    for sql, why in (("SELECT :a", "not declared"), ("SELECT 1 WHERE 'x", "cannot be read"),
                     ("SELECT ?", "not '?'")):
        s, b, _ = call(port, "POST", "/api/v1/queries", {"name": "z", "sql": sql},
                       token=api.alice)
        assert s == 400 and why in b["error"]["message"], (sql, b)
    ok = {"name": "upd", "sql": "UPDATE orders SET note = note WHERE id = :id",
          "params": [{"name": "id", "type": "int"}], "environments": ["dev"],
          "database": "shop"}
    assert call(port, "POST", "/api/v1/queries", ok, token=api.alice)[0] == 201
    s, b, _ = call(port, "POST", "/api/v1/queries/upd/run", {"env": "prod", "params": {"id": 1}},
                   token=api.alice)
    assert s == 403
    s, b, _ = call(port, "POST", "/api/v1/queries/upd/run", {"env": "dev", "params": {"id": 1}},
                   token=api.alice)
    assert s == 200 and b["columns"] == []
    carol = login(port, "carol", "carol-pw")  # read grant on dev only
    s, b, _ = call(port, "POST", "/api/v1/queries/upd/run", {"env": "dev", "params": {"id": 1}},
                   token=carol)
    assert s == 403 and b["error"]["code"] == 1290
    assert call(port, "DELETE", "/api/v1/queries/upd", token=api.alice)[0] == 200


def test_named_queries_from_sql(api, tmp_path, servers):
    """From any MySQL client: SELECT * FROM __queries.queries lists them, and
    CALL __queries.NAME(...) runs one with typed arguments (a quote stays a value) in the
    environment of the routing hint, under the same read-only policy."""
    import pymysql
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT id, name FROM customers WHERE name = :who OR id = :id ORDER BY id")
    assert api.cli("query", "add", "sql_find", "--sql-file", str(sql), "--param", "who:string",
                   "--param", "id:int:0", "--database", "shop", "--env", "dev",
                   "--env", "prod").returncode == 0
    sql.write_text("DELETE FROM orders WHERE id = :id")
    assert api.cli("query", "add", "sql_wipe", "--sql-file", str(sql), "--param", "id:int",
                   "--database", "shop", "--env", "dev").returncode == 0
    time.sleep(1.2)
    conn = api.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT name, owner FROM __queries.queries WHERE name LIKE 'sql\\_%' "
                    "ORDER BY name")
        assert cur.fetchall() == (("sql_find", "cli"), ("sql_wipe", "cli"))
        cur.execute("CALL __queries.sql_find('O''Brien & Sons')")
        assert cur.fetchall() == ((7, "O'Brien & Sons"),)
        cur.execute("/* env=prod */ CALL __queries.sql_find('x'' OR ''1''=''1', 3)")
        assert cur.fetchall() == ((3, "Zoë Ångström"),)
        for bad, code in (("CALL __queries.sql_find('a', 'x')", 1210),
                          ("CALL __queries.sql_find()", 1210),
                          ("CALL __queries.nope()", 1305),
                          ("CALL __queries.sql_find('a\\\\b')", 1064),
                          ("/* env=prod */ CALL __queries.sql_wipe(1)", 1044)):
            with pytest.raises(pymysql.err.MySQLError) as e:
                cur.execute(bad)
            assert e.value.args[0] == code, (bad, e.value.args)
    conn.close()
    # carol has only a read grant on dev: the write inside the named query is refused.
    before = servers.sql("dev", "SELECT count(*) FROM shop.orders")
    conn = api.connect(user="carol", password="carol-pw")
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("CALL __queries.sql_wipe(1)")
        assert e.value.args[0] == 1290
    conn.close()
    assert servers.sql("dev", "SELECT count(*) FROM shop.orders") == before
    api.cli("query", "del", "sql_find")
    api.cli("query", "del", "sql_wipe")


def test_queries_schema_is_listed_and_usable(api, tmp_path):
    """__queries is listed by SHOW DATABASES and the GUI's information_schema.SCHEMATA list,
    like __envs and __compare; USE __queries (and the handshake's or COM_INIT_DB's database)
    makes SHOW TABLES, DESCRIBE and SELECT over its one table work unqualified, while a
    statement that is not over it still goes to the environment."""
    import pymysql
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT id FROM customers WHERE id = :id")
    assert api.cli("query", "add", "use_find", "--sql-file", str(sql), "--param", "id:int",
                   "--database", "shop").returncode == 0
    time.sleep(1.2)
    conn = api.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        names = [r[0] for r in cur.fetchall()]
        assert names[-3:] == ["__compare", "__envs", "__queries"] and "shop" in names
        cur.execute("SHOW DATABASES LIKE '\\_\\_q%'")
        assert cur.fetchall() == (("__queries",),)
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        assert [r[0] for r in cur.fetchall()][-3:] == ["__compare", "__envs", "__queries"]
        cur.execute("USE __queries")
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == (("queries",),)
        cur.execute("SELECT name, owner FROM queries WHERE name = 'use_find'")
        assert cur.fetchall() == (("use_find", "cli"),)
        cur.execute("DESCRIBE queries")
        assert "sql" in [r[0] for r in cur.fetchall()]
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT * FROM nosuch")
        assert e.value.args[0] == 1146
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("DELETE FROM queries")
        cur.execute("SELECT 1 + 1")
        assert cur.fetchall() == ((2,),)
        cur.execute("CALL __queries.use_find(3)")
        assert cur.fetchall() == ((3,),)
        cur.execute("USE shop")
        cur.execute("SELECT count(*) FROM customers WHERE id = 3")
        assert cur.fetchall() == ((1,),)
        conn.select_db("__QUERIES")
        cur.execute("SELECT count(*) FROM queries WHERE name = 'use_find'")
        assert cur.fetchall() == ((1,),)
    conn.close()
    conn = api.connect(database="__queries")
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == (("queries",),)
    conn.close()
    api.cli("query", "del", "use_find")


def test_client_that_goes_away_has_its_statement_killed(make_proxy, servers):
    """An HTTP client that disconnects mid-statement: the statement is killed on the server."""
    import socket
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                               "limits": {"statement_timeout": "60s"}})
    tok = login(port)
    body = json.dumps({"env": "dev", "sql": "SELECT SLEEP(40) AS marker_http_gone"}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode()
              + b"\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    running = ("SELECT count(*) FROM information_schema.PROCESSLIST "
               "WHERE INFO LIKE '%marker_http_gone%' AND INFO NOT LIKE '%PROCESSLIST%'")

    def count():
        return servers.sql("dev", running)[0][0]

    deadline = time.time() + 10
    while time.time() < deadline and count() == 0:
        time.sleep(0.2)
    assert count() == 1
    s.close()
    deadline = time.time() + 15
    while time.time() < deadline and count() != 0:
        time.sleep(0.3)
    assert count() == 0
    # The proxy still serves.
    assert call(port, "POST", "/api/v1/query", {"env": "dev", "sql": "SELECT 1 AS x"},
                token=tok)[0] == 200


def test_metrics_count_statements_per_door(api):
    """/metrics counts statements by the door they came in by, and the API's answers."""
    def metrics():
        conn = http.client.HTTPConnection("127.0.0.1", api.http_port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        vals = {}
        for line in text.splitlines():
            if line.startswith(("envproxy_statements_by_door_total", "envproxy_http_api_resp")):
                k, v = line.rsplit(" ", 1)
                vals[k] = float(v)
        return vals
    before = metrics()
    for _ in range(3):
        assert q(api, {"env": "dev", "sql": "SELECT 1 AS x"})[0] == 200
    assert q(api, {"env": "prod", "sql": "DELETE FROM shop.orders"})[0] == 403
    conn = api.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
    after = metrics()
    http_key = 'envproxy_statements_by_door_total{via="http"}'
    mysql_key = 'envproxy_statements_by_door_total{via="mysql"}'
    assert after[http_key] - before[http_key] == 4
    assert after[mysql_key] - before[mysql_key] >= 1
    assert after['envproxy_http_api_responses_total{status="2xx"}'] - \
        before['envproxy_http_api_responses_total{status="2xx"}'] == 3
    assert after['envproxy_http_api_responses_total{status="4xx"}'] - \
        before['envproxy_http_api_responses_total{status="4xx"}'] == 1


def test_oversized_headers_are_refused_and_the_proxy_goes_on(api):
    """Request headers are bounded: 200 KiB of them is refused, and others are still served."""
    import socket
    s = socket.create_connection(("127.0.0.1", api.http_port), timeout=10)
    try:
        s.sendall(b"GET /api/v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + api.alice.encode() + b"\r\n")
        for i in range(200):
            s.sendall(b"X-Filler-%d: " % i + b"a" * 1000 + b"\r\n")
        s.sendall(b"\r\n")
        reply = s.recv(200)
    except (BrokenPipeError, ConnectionResetError):
        reply = b"closed"
    finally:
        s.close()
    assert not reply.startswith(b"HTTP/1.1 200"), reply
    assert call(api.http_port, "GET", "/api/v1/environments", token=api.alice)[0] == 200


def test_a_statement_longer_than_the_listener_deadline_is_answered(make_proxy):
    """The listener closes connections that complete no request in 10 s; a statement that
    runs longer (within statement_timeout) is still answered, and keep-alive goes on."""
    port = free_port()
    make_proxy(extra_yaml={"http": f"127.0.0.1:{port}", "limits": {"statement_timeout": "60s"}})
    tok = login(port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=40)
    h = {"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
    conn.request("POST", "/api/v1/query", body=json.dumps(
        {"env": "dev", "sql": "SELECT SLEEP(12) AS s"}), headers=h)
    r = conn.getresponse()
    b = json.loads(r.read())
    assert r.status == 200 and b["rows"] == [[0]], b
    conn.request("POST", "/api/v1/query", body=json.dumps({"env": "dev", "sql": "SELECT 2 AS x"}),
                 headers=h)
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["rows"] == [[2]]
    conn.close()


def test_fan_out_cut_to_max_rows_is_flagged_truncated(api):
    """A fan-out statement whose parts max_rows (50) cut comes back with truncated true and
    the proxy's note; one under the cap with truncated false. Before, the note was missing
    from SHOW WARNINGS and the answer said truncated false with rows missing."""
    s, b, _ = q(api, {"env": "dev", "sql": "/* env=* */ SELECT seq FROM seq_1_to_80"})
    assert s == 200, b
    assert b["row_count"] == 100 and b["truncated"] is True, b["truncated"]
    assert any("truncated to 50 rows" in w["message"] for w in b["warnings"]), b["warnings"]
    s, b, _ = q(api, {"env": "dev", "sql": "/* env=* */ SELECT seq FROM seq_1_to_20"})
    assert s == 200 and b["row_count"] == 40 and b["truncated"] is False, b


def test_a_locked_account_store_does_not_stop_mysql_logins(api):
    """Another program holding the account store's lock (an operator's sqlite3 shell in a
    transaction, a backup tool) makes SQLite wait up to its busy timeout. That wait happens on
    the store's own thread: MySQL clients, accepted on the main loop, log in meanwhile, and
    the HTTP write waiting for the lock is answered 503 once the wait ends. A client that
    goes away while its write waits does not take the proxy with it."""
    import socket
    import sqlite3
    import threading
    import pymysql
    lock = sqlite3.connect(str(api.accounts_path), isolation_level=None, timeout=5)
    answers = {}
    try:
        lock.execute("BEGIN EXCLUSIVE")

        def write():
            answers["write"] = call(api.http_port, "POST", "/api/v1/history",
                                    {"sql": "SELECT 'while locked'"}, token=api.alice)
            answers["write_done"] = time.monotonic()

        t = threading.Thread(target=write)
        t.start()
        # One more write whose client leaves at once: its answer has nowhere to go.
        s = socket.create_connection(("127.0.0.1", api.http_port), timeout=5)
        body = json.dumps({"sql": "SELECT 'gone'"}).encode()
        s.sendall(b"POST /api/v1/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  api.alice.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.2)
        s.close()
        for _ in range(5):
            conn = pymysql.connect(host="127.0.0.1", port=api.port, user="alice",
                                   password="alice-pw", connect_timeout=5, read_timeout=5)
            conn.close()
        logins_done = time.monotonic()
        t.join(30)
        assert not t.is_alive()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # Ordering, not speed: SQLite gives up on the lock only after its busy timeout (2 s);
    # the five logins were all done before that.
    assert logins_done < answers["write_done"]
    status, b, _ = answers["write"]
    assert status == 503 and "locked" in b["error"]["message"], answers["write"]
    # The store is free again: writes and reads go through, the proxy still serves.
    s, b, _ = call(api.http_port, "POST", "/api/v1/history", {"sql": "SELECT 'after'"},
                   token=api.alice)
    assert s == 201 and b["id"] > 0
    s, b, _ = call(api.http_port, "GET", "/api/v1/history?limit=5", token=api.alice)
    assert s == 200 and b["history"][0]["sql"] == "SELECT 'after'"
