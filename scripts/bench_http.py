#!/usr/bin/python3
"""Measures the HTTP front door beside the MySQL port, on this machine, with the test
harness's MariaDB servers and the real binary; prints a Markdown table on stdout.

  scripts/bench_http.py            (ENVPROXY_BIN: the binary, default build/envproxy)

- point selects per second, one client, keep-alive: POST /api/v1/query with a bound
  parameter, against the same statement prepared through the MySQL port (PyMySQL sends it
  as text; MySQLdb's server-side prepare is not used so both are one round trip);
- rows per second of one 100,000-row JSON answer, and the proxy's RSS after it.
Not part of `make test`; it never fails on a number."""
import http.client
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("ENVPROXY_BIN", os.path.join(ROOT, "build", "envproxy"))

from harness import Proxy, Servers, free_port  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


def main():
    servers = Servers()
    servers.start_all()
    tmp = f"/tmp/envproxy-bench-http-{os.getpid()}"
    try:
        port = free_port()
        p = Proxy(tmp, servers, extra_yaml={"http": f"127.0.0.1:{port}",
                                             "limits": {"max_rows": 0}})
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call(body, token=None):
            h = {"Content-Type": "application/json"}
            if token:
                h["Authorization"] = "Bearer " + token
            c.request("POST", "/api/v1/query" if token else "/api/v1/session",
                      body=json.dumps(body), headers=h)
            r = c.getresponse()
            return r.status, r.read()

        _, t = call({"user": "alice", "password": "alice-pw"})
        tok = json.loads(t)["token"]
        q = {"env": "dev", "database": "shop",
             "sql": "SELECT id, name, email FROM customers WHERE id = ?", "params": [1]}
        n, t0 = 0, time.time()
        while time.time() - t0 < SECONDS:
            q["params"][0] = n % 8 + 1
            assert call(q, tok)[0] == 200
            n += 1
        http_qps = n / (time.time() - t0)

        conn = p.connect(database="shop@dev")
        cur = conn.cursor()
        n, t0 = 0, time.time()
        while time.time() - t0 < SECONDS:
            cur.execute("SELECT id, name, email FROM customers WHERE id = %s", (n % 8 + 1,))
            cur.fetchall()
            n += 1
        mysql_qps = n / (time.time() - t0)
        conn.close()

        big = {"env": "dev", "sql": "SELECT seq, seq * 2 AS twice, CONCAT('row-', seq) AS label "
                                    "FROM seq_1_to_100000"}
        t0 = time.time()
        status, body = call(big, tok)
        dt = time.time() - t0
        rows = len(json.loads(body)["rows"]) if status == 200 else 0
        rss = p.rss_kb()
        print("| figure | value |")
        print("|---|---|")
        print(f"| point selects/s, POST /api/v1/query (keep-alive, bound parameter) | {http_qps:.0f} |")
        print(f"| point selects/s, MySQL port (PyMySQL, same client machine) | {mysql_qps:.0f} |")
        print(f"| HTTP / MySQL | {http_qps / mysql_qps:.2f} |")
        print(f"| 100,000-row JSON answer: rows/s | {rows / dt:.0f} ({len(body) / 1e6:.1f} MB in {dt:.2f} s) |")
        print(f"| proxy RSS after it | {rss / 1024:.1f} MiB |")
        c.close()
        p.stop()
    finally:
        servers.stop_all()
        servers.cleanup()


if __name__ == "__main__":
    main()
