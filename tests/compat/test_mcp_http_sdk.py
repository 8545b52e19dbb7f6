"""MCP over Streamable HTTP with the official MCP TypeScript SDK client
(@modelcontextprotocol/sdk, StreamableHTTPClientTransport): initialize, tools/list with a
named-query tool, calls in dev and prod, a refused write, cancellation.

tests/compat/node/mcp_http_sdk.js runs the checks and prints one JSON line per check; `npm ci`
installs the SDK from tests/compat/node/package-lock.json the first time.
"""
import time

from compat_helpers import run_checks
from harness import free_port

NODE_RUN_TIMEOUT = 150


def test_mcp_over_http_with_the_typescript_sdk(make_proxy, node_dir, tmp_path):
    """The SDK's client works against /mcp, and what the proxy guarantees holds for it."""
    port = free_port()
    p = make_proxy(extra_yaml={"http": f"127.0.0.1:{port}",
                               "limits": {"statement_timeout": "60s"}})
    r = p.cli("user", "token", "alice", "--expires", "1d")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT status FROM orders WHERE id = :id")
    assert p.cli("query", "add", "sdk_status", "--sql-file", str(sql), "--param", "id:int",
                 "--database", "shop").returncode == 0
    time.sleep(1.2)
    res = run_checks("MCP TypeScript SDK", ["node", str(node_dir / "mcp_http_sdk.js"),
                                            str(port), token],
                     cwd=node_dir, timeout=NODE_RUN_TIMEOUT)
    res.check("initialize_and_list_tools")
    res.check("calls_in_dev_and_prod")
    assert "read-only" in res.check("refused_write_in_prod")
    res.check("cancellation_stops_the_statement")
