"""What GUI and BI tools send on connect and while browsing a schema.

Every statement of tests/compat/gui_queries.sql runs through the proxy in read-only prod
(alice, database shop@prod): none may be refused (1290) or fail. Each one is first run
on the prod server itself, so that a statement MariaDB rejects is reported as a mistake
in the file, not in the proxy. Two statements are the proxy's own to answer:
SELECT @@version_comment and SHOW STATUS LIKE 'Ssl%' (the client's TLS, not the
backend's).
"""

import re
import ssl
from pathlib import Path

import pymysql
import pytest

QUERIES_FILE = Path(__file__).resolve().parent / "gui_queries.sql"


def load_queries():
    """[(tool, line number, statement)] from gui_queries.sql."""
    out = []
    tool = None
    for n, line in enumerate(QUERIES_FILE.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if text.startswith("-- tool:"):
            tool = text[len("-- tool:"):].strip()
            continue
        if not text or text.startswith("--"):
            continue
        out.append((tool or "?", n, text))
    return out


QUERIES = load_queries()


def _id(q):
    tool, n, _ = q
    name = re.sub(r"[^a-z0-9]+", "-", tool.split(" (")[0].lower()).strip("-")
    return f"{name}-line{n}"


def run(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
        while cur.nextset():
            pass
        return rows


@pytest.fixture(scope="module")
def direct_prod(servers):
    conn = pymysql.connect(host="127.0.0.1", port=servers.prod.port, user="app",
                           password="app-secret", database="shop", charset="utf8mb4",
                           connect_timeout=5, read_timeout=30)
    yield conn
    conn.close()


def test_the_query_file_has_every_tool():
    """gui_queries.sql covers the tools it is meant to (a guard against a bad edit)."""
    tools = " ".join(t for t, _, _ in QUERIES)
    for name in ("DBeaver", "Workbench", "HeidiSQL", "DataGrip", "Metabase", "Tableau",
                 "mariadb"):
        assert name in tools
    assert len(QUERIES) >= 80


@pytest.mark.parametrize("query", QUERIES, ids=[_id(q) for q in QUERIES])
def test_gui_statement_runs_in_read_only_prod(proxy, direct_prod, query):
    """The statement runs on MariaDB itself, and through the proxy in prod it is neither
    refused nor failing."""
    tool, line, sql = query
    try:
        run(direct_prod, sql)
    except pymysql.err.MySQLError as e:
        pytest.fail(f"gui_queries.sql:{line} ({tool}) fails on MariaDB itself, fix the "
                    f"file: {e.args}", pytrace=False)
    conn = proxy.connect(database="shop@prod")
    try:
        run(conn, sql)
    except pymysql.err.MySQLError as e:
        kind = "refused" if e.args[0] == 1290 else "failed"
        pytest.fail(f"gui_queries.sql:{line} ({tool}) {kind} through the proxy in prod: "
                    f"{e.args}\n{sql}", pytrace=False)
    finally:
        conn.close()


@pytest.mark.parametrize("sql", ["SELECT @@version_comment",
                                 "select @@version_comment limit 1"])
def test_version_comment_names_envproxy(proxy, sql):
    """@@version_comment, which the mysql/mariadb clients print on connect, is answered
    by the proxy and says envproxy (not the backend's 'Debian 12' or similar)."""
    conn = proxy.connect(database="shop@prod")
    try:
        rows = run(conn, sql)
    finally:
        conn.close()
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    assert "envproxy" in str(rows[0][0]), rows


def _tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.mark.parametrize("sql", ["SHOW STATUS LIKE 'Ssl%'",
                                 "SHOW SESSION STATUS LIKE 'Ssl_cipher'"])
def test_ssl_status_describes_the_clients_tls(proxy, sql):
    """Over TLS, SHOW STATUS LIKE 'Ssl%' (Workbench's TLS indicator) shows the cipher
    and protocol version the client negotiated with the proxy (Ssl_cipher, Ssl_version);
    without TLS, Ssl_cipher is empty."""
    tls = proxy.connect(database="shop@prod", ssl=_tls_context())
    plain = proxy.connect(database="shop@prod")
    try:
        assert isinstance(tls._sock, ssl.SSLSocket)
        status = dict(run(tls, sql))
        cipher, version, _bits = tls._sock.cipher()
        assert status.get("Ssl_cipher") == cipher, status
        if sql.endswith("'Ssl%'"):
            assert status.get("Ssl_version") == version, status
        plain_status = dict(run(plain, sql))
        assert plain_status.get("Ssl_cipher", "") == "", plain_status
    finally:
        tls.close()
        plain.close()
