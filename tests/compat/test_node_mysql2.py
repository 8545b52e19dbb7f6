"""Node.js mysql2, as web back ends and scripts use it.

tests/compat/node/compat.js runs every check once per module against this module's
proxy and prints one JSON line per check; each test below asserts one of them.
`npm ci` installs mysql2 from tests/compat/node/package-lock.json the first time.
"""

import pytest

from compat_helpers import run_checks

NODE_RUN_TIMEOUT = 180


@pytest.fixture(scope="module")
def big_packets(servers):
    # Values over 16 MiB need a larger max_allowed_packet on the servers; set before
    # this module's proxy opens its backend connections.
    for env in ("dev", "prod"):
        servers.sql(env, "SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")


@pytest.fixture(scope="module")
def mysql2(big_packets, proxy, servers, node_dir):
    cmd = ["node", str(node_dir / "compat.js"), str(proxy.port), str(servers.prod.port)]
    return run_checks("mysql2", cmd, cwd=node_dir, timeout=NODE_RUN_TIMEOUT)


# ---- text protocol


def test_query_with_placeholders(mysql2):
    """connection.query with ? values (escaped by the driver) in dev."""
    mysql2.check("query_with_placeholders")


# ---- server-side prepared statements (execute)


def test_execute_binds_parameters_of_every_kind(mysql2):
    """connection.execute (COM_STMT_PREPARE + COM_STMT_EXECUTE) with int, negative int,
    bigint string, unicode string, NULL, decimal, Date, Buffer, double, boolean and ''."""
    mysql2.check("execute_parameter_types")


def test_execute_read_of_every_column_type_matches_the_backend(mysql2):
    """shop.types read with execute through the proxy equals the same read from the prod
    server directly: column definitions and every value of the three rows."""
    mysql2.check("execute_reads_every_column_type")


def test_execute_result_columns_follow_each_execution(mysql2):
    """SELECT ? executed ten times with values of repeated and changing types returns
    each value: every execution's column types reach the client, not the NULL type that
    PREPARE reported for `?`."""
    mysql2.check("execute_result_type_follows_the_parameter")


def test_execute_same_statement_300_times(mysql2):
    """The driver's statement cache: one prepared statement executed 300 times with new
    parameters returns the right row every time."""
    mysql2.check("execute_same_statement_many_times")


def test_statement_cache_eviction_keeps_the_server_bounded(mysql2):
    """With maxPreparedStatements: 5, 40 different statements are prepared and the evicted
    ones closed (COM_STMT_CLOSE): the server holds one statement per text on the backend
    connection (shared by sessions, at most 100 per connection), and a statement closed
    and prepared again runs."""
    mysql2.check("statement_cache_eviction_keeps_the_server_bounded")


def test_execute_with_env_hint_runs_in_that_env(mysql2):
    """execute('/* env=prod */ SELECT ...') runs in prod from a session sitting in dev."""
    mysql2.check("execute_with_env_hint")


def test_prepare_of_write_in_prod_is_refused_with_1290(mysql2):
    """connection.prepare of an UPDATE in prod is refused at PREPARE with 1290 (and
    execute of a DELETE too); the connection keeps working."""
    mysql2.check("prepare_of_write_refused_in_prod_with_1290")


# ---- COM_CHANGE_USER


def test_change_user_to_bob_moves_to_his_default_env(mysql2):
    """changeUser({user: 'bob'}): the session becomes bob's, in prod (his default),
    without alice's user variables, with bob's grants (USE shop@dev gets 1044), and
    execute works afterwards."""
    mysql2.check("change_user_to_another_account")


def test_change_user_with_database_at_env(mysql2):
    """changeUser({database: 'shop@prod'}) moves the session to prod's shop."""
    mysql2.check("change_user_with_database_target")


def test_change_user_into_an_env_without_grant_gets_1044(mysql2):
    """changeUser to bob keeping database shop@dev (mysql2 resends the current one)
    fails with 1044: bob has no grant for dev."""
    mysql2.check("change_user_to_env_without_grant_gets_1044")


def test_change_user_with_wrong_password_gets_1045(mysql2):
    """changeUser with a wrong password fails with 1045."""
    mysql2.check("change_user_wrong_password_gets_1045")


# ---- many commands, big packets


def test_queued_queries_and_executes_answer_in_order(mysql2):
    """100 query/execute calls issued at once on one connection resolve in order with
    their own results."""
    mysql2.check("queued_commands_run_in_order")


def test_query_value_over_16_mib(mysql2):
    """A 17 MiB value inside a COM_QUERY and a 17 MiB column in a text result."""
    mysql2.check("query_value_over_16_mib")


def test_execute_value_over_16_mib(mysql2):
    """A 17 MiB parameter inside COM_STMT_EXECUTE and a 17 MiB column in a binary
    result."""
    mysql2.check("execute_value_over_16_mib")


# ---- errors the driver maps


def test_env_without_grant_gets_1044(mysql2):
    """carol (no prod grant) connecting with database @prod: errno 1044,
    code ER_DBACCESS_DENIED_ERROR."""
    mysql2.check("error_1044_environment_without_grant")


def test_wrong_password_gets_1045(mysql2):
    """A wrong password: errno 1045, SQLSTATE 28000."""
    mysql2.check("error_1045_wrong_password")


def test_write_in_prod_gets_1290(mysql2):
    """DELETE in read-only prod: errno 1290; the connection keeps working."""
    mysql2.check("error_1290_write_in_prod")
