"""Prepared statements on what envproxy answers itself: __envs, __compare and the local
answers (CONNECTION_ID(), @@version_comment). Clients that prepare every statement (PDO
without emulation, Go's driver with arguments, DBD with server-side prepare, Connector/C
here) must read them as they read them with the text protocol: the proxy answers PREPARE
with the placeholders, binds the EXECUTE values itself and sends binary-protocol rows."""

from test_prepared import drv  # noqa: F401  (the same Connector/C driver fixture)


def test_environments_with_a_bound_name(drv, proxy):
    """SELECT ... FROM __envs.environments WHERE name = ?: one parameter at PREPARE, the
    row of the bound environment at EXECUTE, equal to what the text protocol returns;
    executed again with another value (no types resent) it follows the new value."""
    d = drv(db="shop")
    assert d.cmd("prepare SELECT name, access, pool_max FROM __envs.environments "
                 "WHERE name = ?") == ("OK", "1", "0")
    kind, rows = d.cmd("exec s:prod")
    text = proxy.query("SELECT name, access, pool_max FROM __envs.environments "
                       "WHERE name = 'prod'")
    assert kind == "ROWS" and rows == [[str(v) for v in text[0]]]
    kind, rows = d.cmd("exec s:dev")
    assert kind == "ROWS" and rows[0][0] == "dev" and rows[0][1] == "write"
    kind, rows = d.cmd("exec s:nowhere")
    assert kind == "ROWS" and rows == []


def test_integer_and_null_parameters_and_binary_numbers(drv, proxy):
    """An integer parameter in LIMIT-free comparisons and a NULL: the LONGLONG column
    (pool_max) arrives as a binary number the driver converts back to the same text."""
    d = drv(db="shop")
    assert d.cmd("prepare SELECT name, pool_max FROM __envs.environments "
                 "WHERE pool_max >= ? ORDER BY name")[0] == "OK"
    kind, rows = d.cmd("exec 0")
    assert kind == "ROWS" and [r[0] for r in rows] == ["dev", "prod"]
    assert all(r[1].isdigit() for r in rows)
    kind, rows = d.cmd("exec null")
    assert kind == "ROWS" and rows == []  # NULL compares as unknown


def test_session_and_databases_without_parameters(drv, servers):
    """__envs.session and __envs.databases (which asks every environment) prepared with no
    placeholder, executed twice."""
    d = drv(db="shop")
    assert d.cmd("prepare SELECT user, env, `database` FROM __envs.session") == \
        ("OK", "0", "0")
    for _ in range(2):
        kind, rows = d.cmd("exec")
        assert kind == "ROWS" and rows == [["alice", "dev", "shop"]]
    assert d.cmd("prepare SELECT env, `database` FROM __envs.databases "
                 "WHERE `database` = ? ORDER BY env")[0] == "OK"
    kind, rows = d.cmd("exec s:shop")
    assert kind == "ROWS" and rows == [["dev", "shop"], ["prod", "shop"]]


def test_compare_query_with_bound_environments_and_statement(drv, proxy):
    """__compare.query with envs, sql and key bound as parameters gives the rows the same
    text query gives; the bound statement still goes through the read-only check."""
    d = drv(db="shop")
    sql = "SELECT id, status FROM shop.orders ORDER BY id"
    assert d.cmd("prepare SELECT * FROM __compare.query WHERE envs = ? AND sql = ? "
                 "AND `key` = ?") == ("OK", "3", "0")
    bound_sql = sql.replace(" ", "\\x20")
    kind, rows = d.cmd(f"exec s:dev,prod s:{bound_sql} s:id")
    text = proxy.query("SELECT * FROM __compare.query WHERE envs = 'dev,prod' "
                       f"AND sql = '{sql}' AND `key` = 'id'")
    assert kind == "ROWS" and len(rows) == len(text) > 0
    assert sorted(tuple(r) for r in rows) == sorted(tuple("NULL" if v is None else str(v)
                                                          for v in t) for t in text)
    kind = d.cmd("exec s:dev,prod s:DELETE\\x20FROM\\x20shop.orders s:id")
    assert kind[0] == "ERR"


def test_a_quote_in_a_bound_value_stays_a_value(drv, servers):
    """A value with quotes and backslashes is bound, not spliced: it compares as the literal
    text and cannot end the string it becomes."""
    d = drv(db="shop")
    assert d.cmd("prepare SELECT name FROM __envs.environments WHERE name = ?")[0] == "OK"
    for value in ("prod' OR '1'='1", "prod\\' OR 1=1 -- ", "x\\", "prod\0"):
        kind, rows = d.cmd("exec s:" + "".join(f"\\x{ord(ch):02x}" for ch in value))
        assert kind == "ROWS" and rows == [], value


def test_local_answers_prepared(drv, proxy):
    """SELECT CONNECTION_ID() and SELECT @@version_comment prepared: the handshake's id and
    envproxy's comment, as with the text protocol."""
    d = drv(db="shop")
    assert d.cmd("prepare SELECT CONNECTION_ID()") == ("OK", "0", "0")
    kind, rows = d.cmd("exec")
    assert kind == "ROWS" and rows == [[str(d.thread_id)]]
    assert d.cmd("prepare SELECT @@version_comment")[0] == "OK"
    kind, rows = d.cmd("exec")
    assert kind == "ROWS" and "envproxy" in rows[0][0]


def test_statement_reset_and_close_of_a_local_statement(drv):
    """COM_STMT_RESET answers OK, COM_STMT_CLOSE forgets it (EXECUTE is then 1243), and the
    connection goes on to ordinary prepared statements on the backend."""
    d = drv(db="shop")
    assert d.cmd("prepare SELECT name FROM __envs.environments WHERE name = ?")[0] == "OK"
    assert d.cmd("reset") == ("OK",)
    kind, rows = d.cmd("exec s:dev")
    assert rows == [["dev"]]
    assert d.cmd("close") == ("OK",)
    assert d.cmd("prepare SELECT id FROM customers WHERE id = ?")[0] == "OK"
    kind, rows = d.cmd("exec 1")
    assert rows == [["1"]]
