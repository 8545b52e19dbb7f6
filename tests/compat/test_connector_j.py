"""MariaDB Connector/J (JDBC), as Java programs, DBeaver, DataGrip and BI tools use it.

tests/compat/java/Compat.java runs every check once per module against this module's
proxy and prints one JSON line per check; each test below asserts one of them. The
program connects with URLs like jdbc:mariadb://127.0.0.1:PORT/shop@prod?user=alice&...
(the '@' written as it is: Connector/J sends the path unchanged, '%40' is not decoded).
"""

import pytest

from compat_helpers import CONNECTOR_J_JAR, run_checks

JAVA_RUN_TIMEOUT = 180


@pytest.fixture(scope="module")
def jdbc(proxy, servers, java_classes):
    direct_prod = (f"jdbc:mariadb://127.0.0.1:{servers.prod.port}/shop"
                   "?user=app&password=app-secret")
    cmd = ["java", "-cp", f"{CONNECTOR_J_JAR}:{java_classes}", "Compat",
           f"jdbc:mariadb://127.0.0.1:{proxy.port}", direct_prod]
    return run_checks("Connector/J", cmd, timeout=JAVA_RUN_TIMEOUT)


# ---- connecting and routing


def test_jdbc_url_with_database_at_env_connects_to_prod(jdbc):
    """jdbc:mariadb://.../shop@prod lands in prod's shop; the server version the driver
    sees ends with -envproxy."""
    jdbc.check("connect_database_at_env_in_url")


def test_jdbc_url_with_env_only_uses_the_env_default_database(jdbc):
    """jdbc:mariadb://.../@prod lands in prod's default database (shop)."""
    jdbc.check("connect_env_only_in_url")


def test_jdbc_tls_connection(jdbc):
    """useSsl=true&trustServerCertificate=true logs in over TLS and runs a query."""
    jdbc.check("connect_over_tls")


# ---- server-side prepared statements (binary protocol, COM_STMT_*)


def test_use_server_prep_stmts_really_prepares_on_the_server(jdbc):
    """With useServerPrepStmts=true, COM_STMT_PREPARE succeeds: the driver keeps a
    ServerSidePreparedStatement instead of silently falling back to client-side ones."""
    jdbc.check("server_prepared_statement_is_used")


def test_server_prepared_parameters_of_every_kind_round_trip(jdbc):
    """int, long, unicode string, NULL, decimal, date, timestamp(6), bytes, double,
    boolean and '' bound through COM_STMT_EXECUTE come back unchanged."""
    jdbc.check("server_prepared_parameter_types")


def test_server_prepared_read_of_every_column_type_matches_the_backend(jdbc):
    """Every column of shop.types (all rows: values, NULLs, zeros) read through the
    binary protocol equals what the same driver reads from the prod server directly."""
    jdbc.check("server_prepared_reads_every_column_type")


def test_server_prepared_stream_parameters_use_send_long_data(jdbc):
    """setBinaryStream / setCharacterStream parameters (COM_STMT_SEND_LONG_DATA) of
    1 MiB arrive whole."""
    jdbc.check("server_prepared_long_data_streams")


def test_server_prepared_statement_reexecuted_and_cached(jdbc):
    """One statement executed 200 times with new parameters, and one SQL text prepared
    50 times (the driver's prepared-statement cache), all give the right rows."""
    jdbc.check("server_prepared_reexecute_and_cache")


def test_execute_batch_prepared_and_text(jdbc):
    """PreparedStatement.executeBatch of 50 inserts and Statement.executeBatch of three
    statements give the right update counts and rows (temporary table in dev)."""
    jdbc.check("execute_batch")


def test_prepared_write_in_prod_is_refused_with_1290(jdbc):
    """A prepared UPDATE in read-only prod fails with error code 1290, and nothing is
    changed."""
    jdbc.check("prepared_write_refused_in_prod_with_1290")


# ---- KILL, cancel and timeouts


def test_connection_id_is_the_handshake_thread_id_everywhere(jdbc):
    """SELECT CONNECTION_ID() equals the thread id of the handshake, in dev, after
    USE shop@prod, with an env hint, and after a reset (drivers KILL that id)."""
    jdbc.check("connection_id_is_the_handshake_thread_id")


def test_statement_cancel_interrupts_a_running_query(jdbc):
    """Statement.cancel() (KILL QUERY <handshake id> from a second connection)
    interrupts SELECT SLEEP(5) in dev within seconds; the connection stays usable."""
    jdbc.check("statement_cancel_kills_running_query")


def test_query_timeout_interrupts_a_slow_query_in_dev(jdbc):
    """setQueryTimeout(1) on SELECT SLEEP(4) ends with SQLTimeoutException after about
    a second."""
    jdbc.check("query_timeout_interrupts_sleep_in_dev")


def test_query_timeout_prefix_is_allowed_in_read_only_prod(jdbc):
    """setQueryTimeout makes the driver send SET STATEMENT max_statement_time=N FOR
    SELECT ...; read-only prod lets that through."""
    jdbc.check("query_timeout_prefix_allowed_in_prod")


# ---- DatabaseMetaData, as GUIs browse a schema


def test_metadata_catalogs_and_tables_of_prod(jdbc):
    """getCatalogs, getSchemas, getTables, getTableTypes, getProcedures, getFunctions,
    getTypeInfo in prod: prod's databases (billing, not dev's analytics) and tables."""
    jdbc.check("metadata_catalogs_and_tables")


def test_metadata_columns_keys_and_indexes_of_prod(jdbc):
    """getColumns, getPrimaryKeys, getImportedKeys, getExportedKeys, getIndexInfo show
    prod's schema (no dev-only column discount nor index idx_products_name)."""
    jdbc.check("metadata_columns_and_keys")


# ---- policy


def test_write_in_prod_is_refused_with_error_code_1290(jdbc):
    """DELETE in read-only prod raises SQLException with getErrorCode() == 1290 and the
    connection goes on working."""
    jdbc.check("write_refused_in_prod_with_1290")


# ---- connection pools


def test_reset_clears_session_state(jdbc):
    """MariaDbConnection.reset() with useResetConnection=true (COM_RESET_CONNECTION)
    drops user variables and temporary tables."""
    jdbc.check("reset_connection_clears_session_state")


def test_pool_datasource_hands_out_a_clean_connection(jdbc):
    """MariaDbPoolDataSource (maxPoolSize=1, useResetConnection=true): the next borrower
    of the same connection sees no user variable of the previous one and is back in dev
    after the previous one ran USE shop@prod."""
    jdbc.check("pool_datasource_resets_between_borrowers")
