"""`envproxy mcp`: the Model Context Protocol server over stdio (docs/mcp.md).

Each test starts `envproxy mcp` as an MCP client would (a child process, one JSON-RPC
message per line on stdin and stdout), pointed at a running envproxy, and checks the
replies. The MCP server is only a MySQL client of the proxy, so what the tests see is
also proof that the proxy's accounts, grants and read-only policy apply to it.

Every MCP process is ended by closing its stdin; it must then exit 0 with no sanitizer
report on stderr.
"""

import json
import os
import select
import subprocess
import time

import pytest

from harness import REPO, SANITIZER_MARKERS, envproxy_bin, free_port, is_sanitizer_build

READ_TIMEOUT = 30
PASSWORD_VAR = "MCP_TEST_PASSWORD"
TOOLS = {"list_environments", "health_check", "list_databases", "list_tables",
         "describe_table", "execute_query", "execute_query_multi_env", "compare_query",
         "compare_schema"}


class McpProcess:
    """One `envproxy mcp` child process and the client side of its stdio transport."""

    def __init__(self, port, stderr_path, user="alice", password="alice-pw", args=()):
        binary = envproxy_bin()
        cmd = [binary, "mcp", "--port", str(port), "--user", user,
               "--password-env", PASSWORD_VAR, *args]
        env = dict(os.environ)
        env.pop("ENVPROXY_PASSWORD", None)
        if password is not None:
            env[PASSWORD_VAR] = password
        if is_sanitizer_build(binary):
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
            env["UBSAN_OPTIONS"] = "print_stacktrace=1"
            supp = REPO / "tests" / "lsan.supp"
            if supp.exists():
                env["LSAN_OPTIONS"] = f"suppressions={supp}"
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env)
        self._buf = b""
        self._next_id = 1

    # ---- transport

    def send_raw(self, data):
        """Writes bytes (or text) followed by a newline, as one message line."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def send(self, message):
        self.send_raw(json.dumps(message))

    def read(self, timeout=READ_TIMEOUT):
        """The next message from stdout (parsed); fails the test after timeout seconds."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no reply from envproxy mcp within {timeout}s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    pytest.fail("envproxy mcp closed stdout; stderr:\n" + self.stderr_text())
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line.decode("utf-8"))  # strict UTF-8: fails on invalid output

    def nothing_to_read(self, seconds):
        """True when no byte arrives on stdout within seconds."""
        if self._buf:
            return False
        ready, _, _ = select.select([self.proc.stdout.fileno()], [], [], seconds)
        return not ready

    # ---- JSON-RPC

    def request(self, method, params=None, id=None):
        """Sends a request and returns its response, checking that the id matches."""
        if id is None:
            id = self._next_id
            self._next_id += 1
        message = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        reply = self.read()
        assert reply.get("jsonrpc") == "2.0"
        assert reply.get("id") == id, reply
        return reply

    def notify(self, method, params=None):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def initialize(self, version="2025-06-18"):
        reply = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                            "clientInfo": {"name": "pytest", "version": "1"}})
        self.notify("notifications/initialized")
        return reply["result"]

    def call(self, tool, arguments=None):
        """tools/call; returns (isError, the parsed JSON of the single text item)."""
        params = {"name": tool}
        if arguments is not None:
            params["arguments"] = arguments
        reply = self.request("tools/call", params)
        assert "result" in reply, reply
        content = reply["result"]["content"]
        assert len(content) == 1 and content[0]["type"] == "text"
        return reply["result"]["isError"], json.loads(content[0]["text"])

    def ok(self, tool, arguments=None):
        """A tool call that must succeed; returns its result object."""
        is_error, result = self.call(tool, arguments)
        assert not is_error, result
        return result

    def error(self, tool, arguments=None):
        """A tool call that must fail; returns the error object."""
        is_error, result = self.call(tool, arguments)
        assert is_error, result
        return result["error"]

    # ---- the process

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def close(self, timeout=20):
        """Closes stdin (end of input) and returns the exit code."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"envproxy mcp did not exit within {timeout}s of the end of its input")
        finally:
            self.proc.stdout.close()
            self._stderr.close()


@pytest.fixture
def start_mcp(tmp_path):
    """Factory: start_mcp(port, user=..., password=..., args=...) -> McpProcess. At the end
    of the test each process must exit 0 on end of input, without sanitizer output."""
    started = []

    def factory(port, **kw):
        m = McpProcess(port, tmp_path / f"mcp-{len(started)}.stderr", **kw)
        started.append(m)
        return m

    yield factory
    problems = []
    for m in started:
        rc = m.close()
        text = m.stderr_text()
        if rc != 0:
            problems.append(f"envproxy mcp exited {rc}; stderr:\n{text}")
        hits = [ln for ln in text.splitlines() if any(k in ln for k in SANITIZER_MARKERS)]
        if hits:
            problems.append("sanitizer report from envproxy mcp:\n" + text)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def mcp(proxy, start_mcp):
    """An initialized MCP server for alice (dev write, prod read) on the module proxy."""
    m = start_mcp(proxy.port)
    m.initialize()
    return m


def column_names(result):
    return [c["name"] for c in result["columns"]]


def as_dicts(result):
    names = column_names(result)
    return [dict(zip(names, row)) for row in result["rows"]]


# ---- the protocol


def test_initialize_negotiates_the_protocol_version(proxy, start_mcp):
    """initialize echoes a protocol version the server supports, answers an unknown one with
    its latest, and declares only the tools capability; the initialized notification gets
    no reply."""
    m = start_mcp(proxy.port)
    for version in ("2024-11-05", "2025-03-26", "2025-06-18"):
        result = m.request("initialize", {"protocolVersion": version, "capabilities": {},
                                          "clientInfo": {"name": "t", "version": "0"}})["result"]
        assert result["protocolVersion"] == version
    result = m.request("initialize", {"protocolVersion": "1999-01-01", "capabilities": {},
                                      "clientInfo": {"name": "t", "version": "0"}})["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    version = subprocess.run([envproxy_bin(), "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    assert result["serverInfo"] == {"name": "envproxy", "version": version}
    m.notify("notifications/initialized")
    assert m.nothing_to_read(0.3)
    assert m.request("ping")["result"] == {}


def test_tools_list_describes_all_nine_tools(mcp):
    """tools/list returns the nine tools, each with a description for the model and a JSON
    input schema that names its arguments and the required ones."""
    tools = mcp.request("tools/list")["result"]["tools"]
    assert {t["name"] for t in tools} == TOOLS
    by_name = {t["name"]: t for t in tools}
    for t in tools:
        assert len(t["description"]) > 80
        schema = t["inputSchema"]
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        for prop in schema["properties"].values():
            assert prop["type"] in ("string", "boolean", "array")
            assert prop["description"]
    required = {name: set(t["inputSchema"].get("required", [])) for name, t in by_name.items()}
    assert required == {
        "list_environments": set(), "health_check": set(), "list_databases": set(),
        "list_tables": {"environment", "database"},
        "describe_table": {"environment", "database", "table"},
        "execute_query": {"sql"},
        "execute_query_multi_env": {"sql", "environments"},
        "compare_query": {"sql", "environments"},
        "compare_schema": {"environments"},
    }
    envs = by_name["compare_query"]["inputSchema"]["properties"]["environments"]
    assert envs["type"] == "array" and envs["minItems"] == envs["maxItems"] == 2
    assert by_name["execute_query"]["annotations"]["readOnlyHint"] is False
    assert by_name["list_tables"]["annotations"]["readOnlyHint"] is True
    # The configured row cap is part of what the model reads.
    assert "1000 rows" in by_name["execute_query"]["description"]
    assert "1290" in by_name["execute_query"]["description"]


def test_ping(mcp):
    """ping answers an empty result, with a string id echoed as it was."""
    reply = mcp.request("ping", id="p-1")
    assert reply == {"jsonrpc": "2.0", "id": "p-1", "result": {}}


def test_notifications_get_no_reply(mcp):
    """Messages without an id are notifications: none of them is answered, not even one
    with an unknown method or a tools/call (which is not run); the next request's reply is
    the first line that comes back."""
    mcp.notify("notifications/initialized")
    mcp.notify("notifications/cancelled", {"requestId": 99, "reason": "test"})
    mcp.notify("no/such/method")
    mcp.notify("tools/call", {"name": "execute_query",
                              "arguments": {"sql": "SET @mcp_probe = 'ran'"}})
    assert mcp.nothing_to_read(0.5)
    assert mcp.request("ping", id=4242)["id"] == 4242
    assert mcp.ok("execute_query", {"sql": "SELECT @mcp_probe"})["rows"] == [[None]]


def test_bad_json_is_a_parse_error_and_the_server_goes_on(mcp):
    """Malformed JSON, invalid UTF-8, too-deep nesting and a line over 1 MiB each get a
    -32700 error with id null, and the server keeps answering."""
    bad = [b"{not json", b'{"jsonrpc": "2.0", "id": 1,', b"\xff\xfe", b'"\xc3\x28"',
           b"[" * 100 + b"]" * 100, b"x" * (1024 * 1024 + 10),
           b'{"jsonrpc":"2.0","id":1,"method":"ping"} trailing']
    replies = []
    for line in bad:
        mcp.send_raw(line)
        reply = mcp.read()
        assert reply["id"] is None
        assert reply["error"]["code"] == -32700, reply
        replies.append(reply["error"]["message"])
    assert "nesting deeper than 64" in replies[4]
    assert "longer than 1048576 bytes" in replies[5]
    mcp.send_raw(b"")  # an empty line is not a message
    mcp.send_raw(b"   \r")
    assert mcp.request("ping")["result"] == {}


def test_invalid_requests(mcp):
    """A message that is JSON but not a JSON-RPC 2.0 request gets -32600; params of the
    wrong shape get -32602; an empty batch is one -32600 error."""
    cases = [
        ({"id": 1, "method": "ping"}, -32600, 1),                    # no jsonrpc
        ({"jsonrpc": "1.0", "id": 2, "method": "ping"}, -32600, 2),  # wrong version
        ({"jsonrpc": "2.0", "id": 3, "method": 7}, -32600, 3),       # method not a string
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}, -32600, None),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, -32600, None),
        ({"jsonrpc": "2.0", "id": 4}, -32600, 4),                    # no method
        ({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": [1]}, -32602, 5),
        ({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {}}, -32602, 6),
        ({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
          "params": {"name": "execute_query", "arguments": "SELECT 1"}}, -32602, 7),
        ({"jsonrpc": "2.0", "id": 8, "method": "initialize",
          "params": {"protocolVersion": 2025}}, -32602, 8),
        (42, -32600, None),
        ([], -32600, None),
    ]
    for message, code, id in cases:
        mcp.send(message)
        reply = mcp.read()
        assert reply["error"]["code"] == code, (message, reply)
        assert reply["id"] == id, (message, reply)
    # A response sent to the server (it never asks anything) is ignored.
    mcp.send({"jsonrpc": "2.0", "id": 77, "result": {}})
    assert mcp.request("ping", id=78)["id"] == 78


def test_batch_gets_an_array_of_replies(mcp):
    """A batch (JSON array) gets one array with a reply per request, none for its
    notifications."""
    mcp.send([{"jsonrpc": "2.0", "id": "a", "method": "ping"},
              {"jsonrpc": "2.0", "method": "notifications/initialized"},
              {"jsonrpc": "2.0", "id": "b", "method": "nope"}])
    replies = mcp.read()
    assert isinstance(replies, list) and len(replies) == 2
    assert replies[0] == {"jsonrpc": "2.0", "id": "a", "result": {}}
    assert replies[1]["id"] == "b" and replies[1]["error"]["code"] == -32601


def test_unknown_method(mcp):
    """An unknown method is -32601 and names the method."""
    reply = mcp.request("resources/list")
    assert reply["error"]["code"] == -32601
    assert "resources/list" in reply["error"]["message"]


def test_unknown_tool(mcp):
    """An unknown tool is a JSON-RPC error -32602 (as the MCP specification does it)."""
    reply = mcp.request("tools/call", {"name": "drop_everything", "arguments": {}})
    assert reply["error"]["code"] == -32602
    assert "drop_everything" in reply["error"]["message"]


def test_wrong_argument_types_are_tool_errors(mcp):
    """Arguments of the wrong type, missing, empty, unknown or with a bad environment name
    are tool errors (isError) whose message says what is wrong, so a model can correct
    itself; nothing is sent to the proxy."""
    cases = [
        ("execute_query", {"sql": 5}, "'sql' must be a string"),
        ("execute_query", {}, "missing required argument 'sql'"),
        ("execute_query", {"sql": ""}, "must not be empty"),
        ("execute_query", {"sql": "SELECT 1", "env": "prod"}, "unknown argument"),
        ("execute_query", {"sql": "SELECT 1", "environment": ["prod"]}, "must be a string"),
        ("execute_query", {"sql": "SELECT 1", "environment": "prod */ DROP"},
         "not an environment name"),
        ("execute_query", {"sql": "SELECT 1", "database": "shop */"}, "cannot be used"),
        ("execute_query_multi_env", {"sql": "SELECT 1", "environments": "dev"},
         "must be an array of strings"),
        ("execute_query_multi_env", {"sql": "SELECT 1", "environments": ["dev", 3]},
         "item 1 is a number"),
        ("execute_query_multi_env", {"sql": "SELECT 1", "environments": []}, "1 to 32"),
        ("execute_query_multi_env", {"sql": "SELECT 1", "environments": ["dev"],
                                     "compare": "yes"}, "must be a boolean"),
        ("execute_query_multi_env", {"sql": "SELECT 1", "environments": ["*", "dev"]},
         "must be alone"),
        ("compare_query", {"sql": "SELECT 1", "environments": ["dev"]}, "exactly 2"),
        ("compare_schema", {"environments": ["dev", "prod", "dev"]}, "exactly 2"),
        ("describe_table", {"environment": "dev", "database": "shop"},
         "missing required argument 'table'"),
        ("list_environments", {"x": 1}, "takes no arguments"),
    ]
    for tool, arguments, text in cases:
        err = mcp.error(tool, arguments)
        assert text in err["message"], (tool, arguments, err)
    # null counts as absent for an optional argument.
    assert mcp.ok("execute_query", {"sql": "SELECT 1", "environment": None})["rows"] == [[1]]


# ---- the tools


def test_list_environments(mcp):
    """list_environments returns the __envs.environments columns: dev and prod, with what
    alice may do in each."""
    result = mcp.ok("list_environments")
    assert column_names(result) == ["name", "description", "status", "access",
                                    "server_version", "latency_ms"]
    rows = {r["name"]: r for r in as_dicts(result)}
    assert set(rows) == {"dev", "prod"}
    assert rows["dev"]["access"] == "write" and rows["prod"]["access"] == "read"
    assert rows["prod"]["description"] == "Production"
    assert result["row_count"] == 2 and result["truncated"] is False


def test_grants_apply_to_the_mcp_account(proxy, start_mcp):
    """The MCP server sees only what its account may see: bob (prod read) has no dev."""
    m = start_mcp(proxy.port, user="bob", password="bob-pw")
    m.initialize()
    names = [r[0] for r in m.ok("list_environments")["rows"]]
    assert names == ["prod"]
    err = m.error("execute_query", {"sql": "SELECT 1", "environment": "dev"})
    assert err["code"] == 1044 and err["environment"] == "dev"


def test_health_check(mcp):
    """health_check reports every environment, or one; an unknown one is an error."""
    result = mcp.ok("health_check")
    assert column_names(result) == ["name", "status", "latency_ms", "last_error",
                                    "checked_at"]
    assert {r[0] for r in result["rows"]} == {"dev", "prod"}
    one = as_dicts(mcp.ok("health_check", {"environment": "prod"}))
    assert len(one) == 1 and one[0]["name"] == "prod" and one[0]["status"] in ("up", "unknown")
    err = mcp.error("health_check", {"environment": "staging"})
    assert err["environment"] == "staging" and "does not exist" in err["message"]


def test_list_databases(mcp):
    """list_databases lists one environment's databases, or those of every environment."""
    prod = {r[1] for r in mcp.ok("list_databases", {"environment": "prod"})["rows"]}
    assert {"shop", "billing"} <= prod and "analytics" not in prod
    both = {(r[0], r[1]) for r in mcp.ok("list_databases")["rows"]}
    assert ("dev", "analytics") in both and ("prod", "billing") in both


def test_list_tables(mcp):
    """list_tables runs SHOW FULL TABLES in the given environment and database."""
    result = mcp.ok("list_tables", {"environment": "prod", "database": "shop"})
    assert result["environment"] == "prod"
    tables = {r[0]: r[1] for r in result["rows"]}
    assert {"customers", "orders", "products"} <= set(tables)
    assert tables["orders"] == "BASE TABLE"
    err = mcp.error("list_tables", {"environment": "dev", "database": "billing"})
    assert err["code"] == 1049 and err["environment"] == "dev"


def test_describe_table(mcp):
    """describe_table gives columns, keys and foreign keys from information_schema; the
    extra dev column shows in dev only; a table name is a SQL string literal, never SQL."""
    dev = mcp.ok("describe_table", {"environment": "dev", "database": "shop",
                                    "table": "products"})
    cols = {c["name"]: c for c in dev["columns"]}
    assert list(cols)[:3] == ["id", "sku", "name"]
    assert cols["discount"] == {"name": "discount", "type": "decimal(5,2)", "nullable": True,
                                "default": "NULL", "key": "", "extra": "", "comment": ""}
    assert cols["id"]["nullable"] is False and cols["id"]["key"] == "PRI"
    keys = {k["name"]: k for k in dev["keys"]}
    assert dev["keys"][0]["name"] == "PRIMARY"
    assert keys["uq_products_sku"]["unique"] is True
    assert keys["uq_products_sku"]["columns"] == ["sku"]
    assert keys["idx_products_name"]["unique"] is False
    prod = mcp.ok("describe_table", {"environment": "prod", "database": "shop",
                                     "table": "products"})
    assert "discount" not in {c["name"] for c in prod["columns"]}
    orders = mcp.ok("describe_table", {"environment": "prod", "database": "shop",
                                       "table": "orders"})
    assert orders["foreign_keys"] == [{"name": "fk_orders_customer", "columns": ["customer_id"],
                                       "referenced_database": "shop",
                                       "referenced_table": "customers",
                                       "referenced_columns": ["id"]}]
    for table in ("nope", "orders' OR '1'='1", "orders\\' OR 1=1 -- ", "x`; DROP TABLE t"):
        err = mcp.error("describe_table", {"environment": "dev", "database": "shop",
                                           "table": table})
        assert err["code"] == 1146 and err["environment"] == "dev", err


def test_execute_query_in_dev_and_prod(mcp):
    """execute_query runs in the environment asked for: order 3 is 'pending' in dev and
    'shipped' in prod; integers are JSON numbers, DECIMAL a string, NULL null, and text
    comes back as UTF-8."""
    sql = "SELECT id, status, total, note FROM shop.orders WHERE id = 3"
    dev = mcp.ok("execute_query", {"sql": sql, "environment": "dev"})
    prod = mcp.ok("execute_query", {"sql": sql, "environment": "prod"})
    assert dev["environment"] == "dev" and prod["environment"] == "prod"
    assert dev["rows"][0][:2] == [3, "pending"]
    assert prod["rows"][0][:2] == [3, "shipped"]
    assert isinstance(prod["rows"][0][2], str)  # DECIMAL stays exact
    assert [c["type"] for c in prod["columns"]] == ["INT", "VARCHAR", "DECIMAL", "TEXT"]
    assert prod["row_count"] == 1 and prod["truncated"] is False
    assert prod["execution_time_ms"] >= 0
    row = mcp.ok("execute_query", {"sql": "SELECT 'Zoë 東京 🚀', NULL, 2.5e0, -7",
                                   "environment": "prod"})["rows"][0]
    assert row == ["Zoë 東京 🚀", None, 2.5, -7]


def test_types_table_values(mcp):
    """Every type family of shop.types is returned as a JSON value of the right kind:
    integers of every width and sign as exact numbers, BIT as a number, binary bytes as
    0x hex, dates and DECIMAL as strings."""
    result = mcp.ok("execute_query", {"sql": "SELECT * FROM shop.types WHERE id = 1",
                                      "environment": "dev"})
    row = as_dicts(result)[0]
    types = {c["name"]: c["type"] for c in result["columns"]}
    assert row["c_bigint"] == -9223372036854775808
    assert row["c_bigint_u"] == 18446744073709551615
    assert types["c_bigint_u"] == "BIGINT UNSIGNED"
    assert row["c_tinyint"] == -128 and row["c_year"] == 2024
    assert row["c_double"] == 2.718281828459045 and row["c_float"] == 3.5
    assert row["c_decimal"] == "-12345678901234.567890"
    assert row["c_bit"] == 0b1010101010
    assert row["c_binary"] == "0x00FF0102" and row["c_varbinary"] == "0xDEADBEEF00"
    assert row["c_varchar"] == "Zoë 東京 🚀"
    assert row["c_datetime"] == "2024-02-29 13:45:59.123456"
    assert types["c_datetime"] == "DATETIME" and types["c_enum"] == "ENUM"
    assert row["c_text"] == "text with 'quotes' and \\ backslash"
    nulls = as_dicts(mcp.ok("execute_query", {"sql": "SELECT * FROM shop.types WHERE id = 2",
                                              "environment": "dev"}))[0]
    assert all(v is None for k, v in nulls.items() if k != "id")


def test_binary_text_that_looks_like_hex_is_not_mistaken_for_bytes(mcp):
    """A binary value is never ambiguous: printable bytes that themselves begin with "0x"
    are written as hex too, so "0x..." in a binary column always means hex and the text
    '0xDEADBEEF' does not come back as the 4 bytes DE AD BE EF (fails when only values that
    are not printable are hex-encoded)."""
    sql = ("SELECT CAST('0xDEADBEEF' AS BINARY) AS looks_hex, UNHEX('DEADBEEF') AS raw, "
           "CAST('abc' AS BINARY) AS plain, CAST('0x' AS BINARY) AS bare, "
           "CAST('0X41' AS BINARY) AS upper_x")
    row = as_dicts(mcp.ok("execute_query", {"sql": sql, "environment": "prod"}))[0]
    assert row["raw"] == "0xDEADBEEF"
    assert row["looks_hex"] == "0x" + b"0xDEADBEEF".hex().upper()
    assert row["looks_hex"] != row["raw"]
    assert row["bare"] == "0x3078"
    assert row["plain"] == "abc" and row["upper_x"] == "0X41"


def test_per_call_database_does_not_leak(mcp):
    """environment/database given to one call apply to that call only: the next call
    without them runs at the connection's own position (dev, shop)."""
    where = "SELECT DATABASE(), @@port"
    home = mcp.ok("execute_query", {"sql": where})["rows"][0]
    billing = mcp.ok("execute_query", {"sql": where, "environment": "prod",
                                       "database": "billing"})["rows"][0]
    assert billing[0] == "billing" and billing[1] != home[1]
    analytics = mcp.ok("execute_query", {"sql": where, "database": "analytics"})["rows"][0]
    assert analytics == ["analytics", home[1]]
    assert mcp.ok("execute_query", {"sql": where})["rows"][0] == home
    assert home[0] == "shop"
    session = as_dicts(mcp.ok("execute_query", {"sql": "SELECT env, `database` "
                                                       "FROM __envs.session"}))[0]
    assert session == {"env": "dev", "database": "shop"}
    # USE moves the connection itself, for the calls that follow.
    assert mcp.ok("execute_query", {"sql": "USE shop@prod"})["affected_rows"] == 0
    assert mcp.ok("execute_query", {"sql": "SELECT @@port"})["rows"][0][0] == billing[1]
    mcp.ok("execute_query", {"sql": "USE shop@dev"})


def test_write_in_dev_and_refused_in_prod(mcp):
    """A write runs where alice may write (dev: affected_rows), and is refused by the
    proxy's policy in prod: isError, code 1290, naming the environment."""
    result = mcp.ok("execute_query", {"sql": "UPDATE products SET stock = stock WHERE id = 1",
                                      "environment": "dev"})
    assert result["affected_rows"] == 0 and "Rows matched: 1" in result["info"]
    assert "columns" not in result
    err = mcp.error("execute_query", {"sql": "DELETE FROM orders WHERE id = 1",
                                      "environment": "prod"})
    assert err == {"environment": "prod", "code": 1290, "sqlstate": "HY000",
                   "message": "envproxy: environment 'prod' is read-only: DELETE is not "
                              "allowed"}
    assert mcp.ok("execute_query", {"sql": "SELECT COUNT(*) FROM orders WHERE id = 1",
                                    "environment": "prod"})["rows"] == [[1]]


def test_error_names_the_session_environment(mcp):
    """Without an environment argument, an error still says where it happened (the
    session's environment, or the one of the statement's own routing comment)."""
    err = mcp.error("execute_query", {"sql": "SELECT no_such_column FROM orders"})
    assert err["environment"] == "dev" and err["code"] == 1054
    err = mcp.error("execute_query", {"sql": "/* env=prod */ DELETE FROM orders"})
    assert err["environment"] == "prod" and err["code"] == 1290


def test_multi_env_fan_out(mcp):
    """execute_query_multi_env runs one statement in several environments and returns one
    result with _env and _error first; ["*"] means every readable environment; a write is
    refused."""
    sql = "SELECT status FROM shop.orders WHERE id = 3"
    result = mcp.ok("execute_query_multi_env", {"sql": sql, "environments": ["dev", "prod"]})
    assert column_names(result) == ["_env", "_error", "status"]
    assert sorted(result["rows"]) == [["dev", None, "pending"], ["prod", None, "shipped"]]
    star = mcp.ok("execute_query_multi_env", {"sql": sql, "environments": ["*"]})
    assert sorted(star["rows"]) == sorted(result["rows"])
    db = mcp.ok("execute_query_multi_env", {"sql": "SELECT DATABASE()",
                                            "environments": ["dev", "prod"],
                                            "database": "shop"})
    assert [r[2] for r in db["rows"]] == ["shop", "shop"]
    err = mcp.error("execute_query_multi_env", {"sql": "DELETE FROM shop.orders",
                                                "environments": ["dev", "prod"]})
    assert err["code"] and "environment" in err


def test_multi_env_compare(mcp):
    """compare=true with two environments returns only the rows that differ."""
    result = mcp.ok("execute_query_multi_env", {
        "sql": "SELECT id, status FROM shop.orders WHERE id IN (1, 2, 3)",
        "environments": ["dev", "prod"], "compare": True})
    assert column_names(result)[:2] == ["_diff", "_env"]
    assert sorted((r[1], r[2], r[3]) for r in result["rows"]) == [
        ("dev", 3, "pending"), ("prod", 3, "shipped")]
    err = mcp.error("execute_query_multi_env", {"sql": "SELECT 1", "compare": True,
                                                "environments": ["dev", "prod", "dev"]})
    assert "exactly two" in err["message"]


def test_compare_query_with_key(mcp):
    """compare_query matches rows on the key: order 3 'changed' (pending in dev, shipped in
    prod), 11 only in dev, 12 only in prod."""
    result = mcp.ok("compare_query", {"sql": "SELECT id, status FROM shop.orders",
                                      "environments": ["dev", "prod"], "key": "id"})
    assert column_names(result) == ["_diff", "_env", "id", "status"]
    rows = [tuple(r) for r in result["rows"]]
    assert ("changed", "dev", 3, "pending") in rows
    assert ("changed", "prod", 3, "shipped") in rows
    assert ("only_left", "dev", 11, "pending") in rows
    assert any(r[0] == "only_right" and r[2] == 12 for r in rows)
    assert len(rows) == 4


def test_compare_query_escapes_the_statement(mcp):
    """The statement travels as a SQL string literal: quotes and backslashes in it arrive
    intact (the same constants in both environments: no difference)."""
    sql = "SELECT 'it''s', 'a\\\\b', \"q\\\"\" AS x"
    result = mcp.ok("compare_query", {"sql": sql, "environments": ["dev", "prod"]})
    assert result["rows"] == []
    same = mcp.ok("execute_query", {"sql": sql})["rows"]
    assert same == [["it's", "a\\b", 'q"']]


def test_compare_schema(mcp):
    """compare_schema shows the dev-only column products.discount (and index)."""
    result = mcp.ok("compare_schema", {"environments": ["dev", "prod"], "database": "shop"})
    rows = as_dicts(result)
    discount = [r for r in rows if r["object_name"] == "discount"]
    assert len(discount) == 1
    assert discount[0]["table_name"] == "products"
    assert discount[0]["object_type"] == "column"
    assert discount[0]["_diff"] == "only_left"
    assert discount[0]["right_definition"] is None
    assert any(r["object_name"] == "idx_products_name" for r in rows)


def test_truncated_result(proxy, start_mcp):
    """--max-rows caps a result: 100 of 5000 rows, truncated true; the rest is read and
    dropped, and the connection serves the next call."""
    m = start_mcp(proxy.port, args=("--max-rows", "100"))
    m.initialize()
    result = m.ok("execute_query", {"sql": "SELECT seq FROM seq_1_to_5000"})
    assert result["row_count"] == 100 and len(result["rows"]) == 100
    assert result["rows"][0] == [1] and result["rows"][-1] == [100]
    assert result["truncated"] is True and result["truncated_by"] == "max_rows"
    exact = m.ok("execute_query", {"sql": "SELECT seq FROM seq_1_to_100"})
    assert exact["row_count"] == 100 and exact["truncated"] is False
    assert m.ok("execute_query", {"sql": "SELECT 1"})["rows"] == [[1]]


def test_proxy_row_cap_is_reported(make_proxy, start_mcp):
    """When envproxy's own max_rows cuts a result, the MCP result says truncated too (from
    the proxy's note in SHOW WARNINGS), and lists the note."""
    p = make_proxy(extra_yaml={"limits": {"max_rows": 7}})
    m = start_mcp(p.port)
    m.initialize()
    result = m.ok("execute_query", {"sql": "SELECT seq FROM seq_1_to_50",
                                    "environment": "prod"})
    assert result["row_count"] == 7
    assert result["truncated"] is True and result["truncated_by"] == "envproxy max_rows"
    assert any("truncated to 7 rows" in w["message"] for w in result["warnings"])


def test_proxy_down(start_mcp):
    """With nothing listening on --port, a tool call is an error result saying envproxy
    cannot be reached, and the server keeps answering."""
    port = free_port()
    m = start_mcp(port)
    m.initialize()
    for _ in range(2):
        err = m.error("list_environments")
        assert err["code"] in (2002, 2003)
        assert f"cannot connect to envproxy at 127.0.0.1:{port}" in err["message"]
    assert m.request("ping")["result"] == {}
    assert len(m.request("tools/list")["result"]["tools"]) == 9


def test_wrong_password(proxy, start_mcp):
    """A wrong password is the proxy's 1045, as a tool error; no password at all says which
    variable was not set."""
    m = start_mcp(proxy.port, password="wrong")
    m.initialize()
    err = m.error("list_environments")
    assert err["code"] == 1045
    m2 = start_mcp(proxy.port, password=None)
    m2.initialize()
    err = m2.error("list_environments")
    assert err["code"] == 1045 and f"{PASSWORD_VAR} is not set" in err["message"]


def test_reconnects_after_the_proxy_restarts(make_proxy, start_mcp):
    """A connection lost while the proxy restarts is replaced on the next call; while the
    proxy is down calls fail cleanly, and work again once it is back."""
    p = make_proxy()
    m = start_mcp(p.port)
    m.initialize()
    assert m.ok("execute_query", {"sql": "SELECT 1"})["rows"] == [[1]]
    p.stop()
    p.start()
    assert m.ok("execute_query", {"sql": "SELECT 2"})["rows"] == [[2]]
    p.stop()
    err = m.error("execute_query", {"sql": "SELECT 3"})
    assert err["code"] in (2002, 2003, 2006, 2013)
    assert m.request("ping")["result"] == {}
    p.start()
    assert m.ok("execute_query", {"sql": "SELECT 4"})["rows"] == [[4]]


def test_command_line(proxy, tmp_path):
    """The password is never accepted on the command line; a user is required; --help
    works without any configuration."""
    binary = envproxy_bin()
    env = {k: v for k, v in os.environ.items() if k not in ("ENVPROXY_USER",)}
    r = subprocess.run([binary, "mcp", "--user", "alice", "--password", "alice-pw"],
                       capture_output=True, text=True, timeout=10, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "never taken from the command line" in r.stderr
    r = subprocess.run([binary, "mcp"], capture_output=True, text=True, timeout=10, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "ENVPROXY_USER" in r.stderr
    r = subprocess.run([binary, "mcp", "--port", "0", "--user", "a"], capture_output=True,
                       text=True, timeout=10, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    r = subprocess.run([binary, "mcp", "--help"], capture_output=True, text=True, timeout=10,
                       env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert r.returncode == 0 and "--password-env" in r.stdout
    # The user may come from ENVPROXY_USER and the password from ENVPROXY_PASSWORD.
    env2 = dict(env, ENVPROXY_USER="bob", ENVPROXY_PASSWORD="bob-pw")
    if is_sanitizer_build(binary):
        env2["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "execute_query",
                                     "arguments": {"sql": "SELECT user FROM __envs.session"}}})
    r = subprocess.run([binary, "mcp", "--port", str(proxy.port)], input=request,
                       capture_output=True, text=True, timeout=30, env=env2, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not any(k in r.stderr for k in SANITIZER_MARKERS), r.stderr
    reply = json.loads(r.stdout)
    assert reply["result"]["isError"] is False, reply
    assert json.loads(reply["result"]["content"][0]["text"])["rows"] == [["bob"]]


def test_proxy_row_cap_of_a_fan_out_is_reported(make_proxy, start_mcp):
    """A fan-out whose parts envproxy's max_rows cut is reported as truncated, by MCP and to
    a plain client's SHOW WARNINGS; before, the warning count went up but SHOW WARNINGS was
    empty and execute_query said truncated false: rows missing without a word."""
    p = make_proxy(extra_yaml={"limits": {"max_rows": 4}})
    conn = p.connect()
    with conn.cursor() as cur:
        cur.execute("/* env=* */ SELECT seq FROM seq_1_to_20")
        assert len(cur.fetchall()) == 8
        cur.execute("SHOW WARNINGS")
        notes = cur.fetchall()
        assert any("truncated to 4 rows" in w[2] for w in notes), notes
        cur.execute("/* env=* */ SELECT seq FROM seq_1_to_4")
        assert len(cur.fetchall()) == 8
        cur.execute("SHOW WARNINGS")
        assert not any("truncated" in w[2] for w in cur.fetchall())
    conn.close()
    m = start_mcp(p.port)
    m.initialize()
    result = m.ok("execute_query", {"sql": "/* env=* */ SELECT seq FROM seq_1_to_20"})
    assert result["row_count"] == 8
    assert result["truncated"] is True and result["truncated_by"] == "envproxy max_rows"
    assert any("truncated to 4 rows" in w["message"] for w in result["warnings"])
    whole = m.ok("execute_query", {"sql": "/* env=* */ SELECT seq FROM seq_1_to_3"})
    assert whole["row_count"] == 6 and whole["truncated"] is False
