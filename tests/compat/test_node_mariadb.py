"""Node.js `mariadb` connector (MariaDB's own driver for Node).

tests/compat/node/mariadb_connector.js runs each check against this module's proxy and
prints one JSON line per check. `npm ci` installs the connector from
tests/compat/node/package-lock.json the first time.
"""

import pytest

from compat_helpers import run_checks

NODE_RUN_TIMEOUT = 120


@pytest.fixture(scope="module")
def connector(proxy, node_dir):
    cmd = ["node", str(node_dir / "mariadb_connector.js"), str(proxy.port)]
    return run_checks("mariadb (node)", cmd, cwd=node_dir, timeout=NODE_RUN_TIMEOUT)


def test_execute_pipelines_prepare_and_execute_of_the_last_statement(connector):
    """execute() sends PREPARE and EXECUTE with statement id 0xFFFFFFFF back to back: the
    proxy runs the statement just prepared, for a new text and for a cached one."""
    connector.check("execute_pipelined_in_prod")


def test_refused_prepare_leaves_no_statement_for_the_pipelined_execute(connector):
    """An UPDATE prepared in read-only prod gets 1290; the EXECUTE(-1) the connector sent
    behind it must not run the statement prepared before, and the connection goes on."""
    connector.check("execute_refused_write_does_not_run_previous_statement")


def test_execute_writes_where_the_account_may_write(connector):
    """An INSERT through execute() in dev (alice has write there, a scratch table) adds one
    row, read back with another execute()."""
    connector.check("execute_write_in_dev")


def test_typed_parameters_on_a_table_envproxy_answers(connector):
    """execute() on __envs.environments with a string, a double, a datetime and a NULL
    bound: each binary value becomes a literal of envproxy's own reader and the filter
    holds (1.5 > 1 keeps prod's row, 0.5 > 1 drops it)."""
    connector.check("execute_virtual_table_with_typed_parameters")
