"""Transactions follow the session, and db@env wherever a client names a database
(SPEC section 8): BEGIN before USE shop@prod, moves inside a transaction, schema names in
SHOW and information_schema statements, the user@env login, harmless connect-time SETs."""

import pymysql
import pytest

from harness import StmtDriver, mariadb_cli


def _count(cur, sql):
    cur.execute(sql)
    return cur.fetchone()[0]


@pytest.fixture
def scratch_prod(servers):
    """A table in prod's shop that the test may change as root, dropped afterwards."""
    servers.sql("prod", "CREATE TABLE shop.follow_t (id INT PRIMARY KEY) ENGINE=InnoDB")
    servers.sql("prod", "INSERT INTO shop.follow_t VALUES (1), (2), (3)")
    yield "follow_t"
    servers.sql("prod", "DROP TABLE IF EXISTS shop.follow_t")


def test_begin_then_use_prod_reads_one_snapshot_of_prod(proxy, servers, scratch_prod):
    """START TRANSACTION WITH CONSISTENT SNAPSHOT sent in dev, then USE shop@prod: the
    snapshot is prod's (a row added in prod meanwhile stays invisible until COMMIT), and the
    SAVEPOINT / ROLLBACK TO SAVEPOINT pair mariadb-dump sends works there."""
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */")
        assert conn.server_status & 1  # the client sees a transaction
        cur.execute("USE shop@prod")
        assert _count(cur, "SELECT COUNT(*) FROM follow_t") == 3
        servers.sql("prod", "INSERT INTO shop.follow_t VALUES (4)")
        cur.execute("SAVEPOINT sp")
        assert _count(cur, "SELECT COUNT(*) FROM follow_t") == 3
        cur.execute("ROLLBACK TO SAVEPOINT sp")
        cur.execute("RELEASE SAVEPOINT sp")
        cur.execute("COMMIT")
        assert _count(cur, "SELECT COUNT(*) FROM follow_t") == 4
    conn.close()


@pytest.mark.parametrize("begin", ["START TRANSACTION WITH CONSISTENT SNAPSHOT", "BEGIN"])
def test_prepared_begin_is_held_back_like_the_text_form(proxy, servers, scratch_prod, begin):
    """A prepared START TRANSACTION (or BEGIN), executed in dev, then USE shop@prod: the
    transaction begins in prod with its first read (a row added in prod meanwhile stays
    invisible until the prepared COMMIT), not in dev (where it would make the USE a 1179)."""
    d = StmtDriver(proxy)
    try:
        assert d.cmd("prepare " + begin) == ("OK", "0", "0")
        assert d.cmd("exec") == ("AFFECTED", "0")
        assert d.cmd("query USE shop@prod") == ("AFFECTED", "0")
        assert d.cmd("prepare SELECT COUNT(*) FROM follow_t")[0] == "OK"
        assert d.cmd("exec") == ("ROWS", [["3"]])
        servers.sql("prod", "INSERT INTO shop.follow_t VALUES (4)")
        assert d.cmd("exec") == ("ROWS", [["3"]])
        assert d.cmd("prepare COMMIT") == ("OK", "0", "0")
        assert d.cmd("exec") == ("AFFECTED", "0")
        assert d.cmd("query SELECT COUNT(*) FROM follow_t") == ("ROWS", [["4"]])
    finally:
        d.close()


def test_prepared_transaction_statements_in_read_only_prod(proxy):
    """In read-only prod a prepared START TRANSACTION READ WRITE is refused as its text is
    (1290), and a prepared ROLLBACK of nothing is answered."""
    d = StmtDriver(proxy, user="bob", password="bob-pw", db="shop@prod")
    try:
        assert d.cmd("prepare START TRANSACTION READ WRITE") == ("OK", "0", "0")
        assert d.cmd("exec")[:2] == ("ERR", "1290")
        assert d.cmd("prepare ROLLBACK") == ("OK", "0", "0")
        assert d.cmd("exec") == ("AFFECTED", "0")
    finally:
        d.close()


def test_begin_and_commit_of_nothing_reach_no_backend(proxy):
    """BEGIN then COMMIT with nothing in between: answered, and the session goes on."""
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("COMMIT")
        assert not conn.server_status & 1
        cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cur.execute("START TRANSACTION READ ONLY")
        cur.execute("ROLLBACK")
        assert _count(cur, "SELECT COUNT(*) FROM customers") > 0
    conn.close()


def test_moving_inside_a_transaction_that_touched_data_is_1179(proxy):
    """After a read in dev inside BEGIN, USE shop@prod and a hinted statement for prod are
    refused with 1179 naming both environments; ROLLBACK ends it and the move works."""
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT COUNT(*) FROM customers")
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("USE shop@prod")
        assert e.value.args[0] == 1179
        assert "'dev'" in e.value.args[1] and "'prod'" in e.value.args[1]
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("/* env=prod */ SELECT COUNT(*) FROM customers")
        assert e.value.args[0] == 1179
        # Statements that touch no data may still go elsewhere.
        cur.execute("/* env=prod */ SELECT @@version")
        cur.execute("ROLLBACK")
        cur.execute("USE shop@prod")
        assert _count(cur, "SELECT COUNT(*) FROM customers") > 0
    conn.close()


def test_transaction_keeps_its_connection_after_a_statement_elsewhere(make_proxy, servers):
    """A statement that touches no data may go to another environment inside a transaction
    (a routing hint), but the transaction's connection stays with the session: it went back
    to the pool after such a statement, with the transaction open, so that the next
    session that took it saw the uncommitted row and its COMMIT committed it, and the first
    session's ROLLBACK rolled back nothing. One worker thread and a pool of two: the other
    session takes whatever the first one left parked."""
    servers.sql("dev", "CREATE TABLE shop.follow_k (id INT PRIMARY KEY) ENGINE=InnoDB")
    p = make_proxy(extra_yaml={"threads": 1, "environments": {"dev": {"pool": {"max": 2}}}})
    a = p.connect(autocommit=True)
    b = p.connect(autocommit=True)
    try:
        with a.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO follow_k VALUES (1)")
            cur.execute("/* env=prod */ SELECT @@version")
            cur.execute("/* env=prod */ SHOW VARIABLES LIKE 'version'")
        with b.cursor() as cur:
            cur.execute("SELECT @@in_transaction, (SELECT COUNT(*) FROM follow_k)")
            assert cur.fetchall() == ((0, 0),)
            cur.execute("COMMIT")
        assert servers.sql("dev", "SELECT COUNT(*) FROM shop.follow_k")[0][0] == 0
        with a.cursor() as cur:
            assert _count(cur, "SELECT @@in_transaction") == 1
            assert _count(cur, "SELECT COUNT(*) FROM follow_k") == 1
            cur.execute("ROLLBACK")
        assert servers.sql("dev", "SELECT COUNT(*) FROM shop.follow_k")[0][0] == 0
    finally:
        a.close()
        b.close()
        servers.sql("dev", "DROP TABLE IF EXISTS shop.follow_k")


def test_autocommit_off_reads_stay_free_and_a_write_binds(proxy, servers):
    """With autocommit=0 (DB-API drivers) plain reads in prod and dev go on side by side; a
    change of data in dev binds the session there: a read in prod is then refused with 1179,
    and COMMIT, sent from the prod session, goes to dev."""
    servers.sql("dev", "CREATE TABLE shop.follow_a (id INT PRIMARY KEY) ENGINE=InnoDB")
    conn = proxy.connect(database="shop@prod")
    try:
        with conn.cursor() as cur:
            cur.execute("SET autocommit = 0")
            cur.execute("SELECT COUNT(*) FROM orders")
            cur.execute("/* env=dev */ SELECT COUNT(*) FROM orders")
            cur.execute("SELECT COUNT(*) FROM orders")
            cur.execute("/* env=dev */ INSERT INTO follow_a VALUES (1)")
            with pytest.raises(pymysql.err.MySQLError) as e:
                cur.execute("SELECT COUNT(*) FROM orders")
            assert e.value.args[0] == 1179
            cur.execute("COMMIT")
            assert _count(cur, "SELECT COUNT(*) FROM orders") > 0
            cur.execute("ROLLBACK")
            cur.execute("SET autocommit = 1")
        assert servers.sql("dev", "SELECT COUNT(*) FROM shop.follow_a")[0][0] == 1
    finally:
        conn.close()
        servers.sql("dev", "DROP TABLE IF EXISTS shop.follow_a")


def test_write_inside_a_held_back_transaction_rolls_back(proxy, servers):
    """BEGIN; INSERT in dev; ROLLBACK: the row never lands (the transaction really began
    on the backend before the INSERT)."""
    servers.sql("dev", "CREATE TABLE shop.follow_w (id INT PRIMARY KEY) ENGINE=InnoDB")
    try:
        conn = proxy.connect()
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO follow_w VALUES (1)")
            assert _count(cur, "SELECT COUNT(*) FROM follow_w") == 1
            cur.execute("ROLLBACK")
        conn.close()
        assert servers.sql("dev", "SELECT COUNT(*) FROM shop.follow_w")[0][0] == 0
    finally:
        servers.sql("dev", "DROP TABLE IF EXISTS shop.follow_w")


def test_read_only_transaction_refuses_read_write_start(proxy):
    """START TRANSACTION READ WRITE in a prod session is refused at once (1290), as before;
    held back in a dev session, it is refused when the first read goes to prod."""
    conn = proxy.connect(database="shop@prod")
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("START TRANSACTION READ WRITE")
        assert e.value.args[0] == 1290
    conn.close()
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION READ WRITE")
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("/* env=prod */ SELECT COUNT(*) FROM orders")
        assert e.value.args[0] == 1290
    conn.close()


def test_show_statements_with_db_at_env(proxy):
    """SHOW TABLES FROM `shop@prod`, SHOW COLUMNS FROM `shop@prod`.`orders`, qualified
    names: prod's objects, from a session sitting in dev (billing exists only in prod).
    Autocommit is on: each read is its own transaction, so dev and prod may alternate."""
    conn = proxy.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES FROM `billing@prod`")
        assert ("invoices",) in cur.fetchall()
        cur.execute("SHOW COLUMNS FROM `shop@prod`.`products`")
        cols = [r[0] for r in cur.fetchall()]
        assert "discount" not in cols and "sku" in cols  # prod's products has no discount
        cur.execute("SHOW FULL COLUMNS FROM products FROM `shop@dev`")
        assert "discount" in [r[0] for r in cur.fetchall()]
        cur.execute("SELECT status FROM `shop@prod`.orders WHERE id = 3")
        assert cur.fetchone() == ("shipped",)
        cur.execute("SELECT status FROM shop.orders WHERE id = 3")
        assert cur.fetchone() == ("pending",)  # the session stayed in dev
        cur.execute("SHOW CREATE DATABASE `billing@prod`")
        assert "`billing`" in cur.fetchone()[1]
    conn.close()


def test_information_schema_schema_names_with_db_at_env(proxy):
    """TABLE_SCHEMA = 'shop@prod', SCHEMA_NAME IN (...), LIKE: rewritten and run in prod;
    an e-mail compared with a data column is left alone."""
    conn = proxy.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
                    "TABLE_SCHEMA = 'shop@prod' AND TABLE_NAME = 'products'")
        assert "discount" not in [r[0] for r in cur.fetchall()]
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME "
                    "IN ('billing@prod', 'shop@prod') ORDER BY 1")
        assert cur.fetchall() == (("billing",), ("shop",))
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA "
                    "LIKE 'billing@prod'")
        assert cur.fetchone()[0] >= 1
        cur.execute("SELECT COUNT(*) FROM customers WHERE email = 'alice@prod'")
        assert cur.fetchone()[0] == 0
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT 1 FROM `shop@prod`.orders a JOIN `shop@dev`.orders b")
        assert e.value.args[0] == 1064
    conn.close()


def test_rewritten_statement_is_checked_as_sent(proxy):
    """A write naming `shop@prod`.orders from a dev session is refused in prod (1290), and
    an account without a grant for the named environment gets 1044."""
    conn = proxy.connect()
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("DELETE FROM `shop@prod`.orders WHERE id = 3")
        assert e.value.args[0] == 1290
    conn.close()
    conn = proxy.connect(user="carol", password="carol-pw")
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SELECT * FROM `shop@prod`.orders")
        assert e.value.args[0] == 1044
    conn.close()


def test_login_name_with_env_selects_the_environment(proxy):
    """alice@prod as the login name starts in prod (its default database); with a database
    of its own the two combine; a database naming an environment wins."""
    rows = proxy.query("SELECT env, `database` FROM __envs.session", user="alice@prod")
    assert rows == [("prod", "shop")]
    rows = proxy.query("SELECT env, `database` FROM __envs.session", user="alice@prod",
                       database="billing")
    assert rows == [("prod", "billing")]
    rows = proxy.query("SELECT env FROM __envs.session", user="alice@prod",
                       database="shop@dev")
    assert rows == [("dev",)]
    with pytest.raises(pymysql.err.MySQLError) as e:
        proxy.connect(user="carol@prod", password="carol-pw")
    assert e.value.args[0] == 1044
    with pytest.raises(pymysql.err.MySQLError) as e:
        proxy.connect(user="alice@prod", password="wrong")
    assert e.value.args[0] == 1045
    rc, out, err = mariadb_cli(proxy, "alice@prod", "alice-pw", "-N",
                               "SELECT env FROM __envs.session")
    assert rc == 0 and out.strip() == "prod", err


def test_dbd_mariadb_connect_sets_pass_in_read_only_prod(proxy):
    """SET character_set_server = 'utf8mb4' (DBD::MariaDB on connect) and collation_server
    are not refused in prod; SET GLOBAL of them still is."""
    conn = proxy.connect(database="shop@prod")
    with conn.cursor() as cur:
        cur.execute("SET character_set_server = 'utf8mb4'")
        cur.execute("SET collation_server = utf8mb4_general_ci")
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("SET GLOBAL character_set_server = 'latin1'")
        assert e.value.args[0] == 1290
    conn.close()


def test_lock_tables_refusal_names_single_transaction(proxy):
    """LOCK TABLES in prod: 1290, and the message says how to take a backup instead."""
    conn = proxy.connect(database="shop@prod")
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("LOCK TABLES orders READ")
        assert e.value.args[0] == 1290 and "--single-transaction" in e.value.args[1]
    conn.close()


def test_user_functions_name_the_envproxy_account(proxy):
    """SELECT USER(), CURRENT_USER(), CURRENT_USER, SESSION_USER(), SYSTEM_USER() (with an
    alias too) name the envproxy account, not the backend's ('app')."""
    conn = proxy.connect(database="shop@prod")
    with conn.cursor() as cur:
        for sql, want in [("SELECT USER()", "alice@127.0.0.1"),
                          ("SELECT CURRENT_USER()", "alice@%"),
                          ("select current_user", "alice@%"),
                          ("SELECT SESSION_USER() AS who", "alice@127.0.0.1"),
                          ("SELECT SYSTEM_USER();", "alice@127.0.0.1")]:
            cur.execute(sql)
            assert cur.fetchone() == (want,), sql
        cur.execute("SELECT CURRENT_USER() AS me")
        assert cur.description[0][0] == "me"
    conn.close()


def test_gui_list_of_databases_from_schemata_shows_virtual_schemas(proxy):
    """SELECT SCHEMA_NAME FROM information_schema.SCHEMATA [ORDER BY SCHEMA_NAME] (Adminer's
    list of databases) has __compare, __envs and __queries after the environment's databases,
    as SHOW DATABASES has; a query with a WHERE clause is the server's alone."""
    conn = proxy.connect(database="shop@prod", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        names = [r[0] for r in cur.fetchall()]
        assert "billing" in names and "analytics" not in names
        assert names[-3:] == ["__compare", "__envs", "__queries"]
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME = 'billing'")
        assert cur.fetchall() == (("billing",),)
    conn.close()


def test_load_data_local_in_prod_is_refused_as_a_write(proxy):
    """In read-only prod, LOAD DATA LOCAL INFILE is refused by the policy (1290)."""
    conn = proxy.connect(database="shop@prod", local_infile=True)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as e:
            cur.execute("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE customers")
        assert e.value.args[0] == 1290
    conn.close()


def test_double_quoted_schema_names_under_ansi_quotes(proxy, servers):
    """With sql_mode=ANSI_QUOTES, "shop@prod" used as a schema is rewritten as `shop@prod`
    is: qualified names and SHOW ... FROM run in prod. Without it, "shop@prod".t stays a
    string (and the server says so)."""
    want = servers.sql("prod", "SELECT COUNT(*) FROM shop.orders")[0][0]
    conn = proxy.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ANSI_QUOTES'")
        for _ in range(2):  # with the connection held, and after it went back to the pool
            assert _count(cur, 'SELECT COUNT(*) FROM "shop@prod"."orders"') == want
            cur.execute('SHOW TABLES FROM "shop@prod"')
            assert ("orders",) in cur.fetchall()
            cur.execute('SHOW COLUMNS FROM "orders" IN "shop@prod"')
            assert len(cur.fetchall()) > 0
        cur.execute("SET SESSION sql_mode = DEFAULT")
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute('SELECT COUNT(*) FROM "shop@prod".orders')
    conn.close()


PMA_TREE = ("SELECT `SCHEMA_NAME` FROM `INFORMATION_SCHEMA`.`SCHEMATA`, (SELECT DB_first_level "
            "FROM ( SELECT DISTINCT SUBSTRING_INDEX(SCHEMA_NAME, '_', 1) DB_first_level "
            "FROM INFORMATION_SCHEMA.SCHEMATA WHERE TRUE ) t ORDER BY DB_first_level ASC "
            "LIMIT 0, 100) t2 WHERE TRUE AND 1 = LOCATE(CONCAT(DB_first_level, '_'), "
            "CONCAT(SCHEMA_NAME, '_')) ORDER BY SCHEMA_NAME ASC")
PMA_COUNT = ("SELECT COUNT(*) FROM ( SELECT DISTINCT SUBSTRING_INDEX(SCHEMA_NAME, '_', 1) "
             "DB_first_level FROM INFORMATION_SCHEMA.SCHEMATA WHERE TRUE ) t ")
PMA_FLAT = ("SELECT `SCHEMA_NAME` FROM `INFORMATION_SCHEMA`.`SCHEMATA` WHERE TRUE "
            "ORDER BY `SCHEMA_NAME` LIMIT 0, 100")


def test_phpmyadmin_navigation_tree_lists_the_virtual_schemas(proxy, servers):
    """phpMyAdmin's navigation tree (grouped by '_' prefix, its default; and flat) reads
    information_schema.SCHEMATA in subqueries: __envs and __compare are among its rows, as
    in SHOW DATABASES, the count of first-level groups includes theirs, and a filter on the
    name still applies. Other queries of SCHEMATA (aliased, qualified columns) see them
    too; mariadb-dump does not."""
    direct_groups = servers.sql("prod", PMA_COUNT)[0][0]
    conn = proxy.connect(database="shop@prod", autocommit=True)
    with conn.cursor() as cur:
        for sql in (PMA_TREE, PMA_FLAT):
            cur.execute(sql)
            names = [r[0] for r in cur.fetchall()]
            assert "__envs" in names and "__compare" in names and "shop" in names, names
        cur.execute("SHOW DATABASES")
        assert set(names) == {r[0] for r in cur.fetchall()}
        # '' is the first level of __envs and __compare: one more group.
        assert _count(cur, PMA_COUNT) == direct_groups + 1
        cur.execute("SELECT s.SCHEMA_NAME FROM information_schema.SCHEMATA s "
                    "WHERE s.SCHEMA_NAME LIKE '\\_\\_e%'")
        assert cur.fetchall() == (("__envs",),)
        cur.execute("select schemata.schema_name, default_character_set_name from "
                    "information_schema.schemata where schema_name = '__compare'")
        assert cur.fetchall() == (("__compare", "utf8mb4"),)
    conn.close()
    dump = proxy.connect(database="shop@prod", program_name="mariadb-dump")
    with dump.cursor() as cur:
        cur.execute(PMA_FLAT)
        assert "__envs" not in [r[0] for r in cur.fetchall()]
    dump.close()


def test_user_functions_inside_statements_name_the_envproxy_account(proxy):
    """USER(), SESSION_USER(), SYSTEM_USER() and CURRENT_USER[()] inside larger statements
    (with other columns, in WHERE, in functions, in a fan-out, in prod, prepared) name the
    envproxy account as the local answer to SELECT USER() does, never the backend's 'app'; a
    call alone in the select list keeps its column name; quoted text stays as written."""
    conn = proxy.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT USER(), 1 + 1, CURRENT_USER, SESSION_USER(), SYSTEM_USER()")
        assert cur.fetchall() == (("alice@127.0.0.1", 2, "alice@%", "alice@127.0.0.1",
                                   "alice@127.0.0.1"),)
        assert [d[0] for d in cur.description][:3] == ["USER()", "1 + 1", "CURRENT_USER"]
        cur.execute("SELECT COUNT(*) FROM customers WHERE SUBSTRING_INDEX(USER(), '@', 1) = "
                    "'alice'")
        assert cur.fetchone()[0] > 0
        cur.execute("SELECT 'USER()', CONCAT('[', current_user(), ']')")
        assert cur.fetchone() == ("USER()", "[alice@%]")
        cur.execute("SET @who = USER()")
        cur.execute("SELECT @who")
        assert cur.fetchone() == ("alice@127.0.0.1",)
        cur.execute("/* env=dev,prod */ SELECT USER() AS u, 1")
        assert {r[-2:] for r in cur.fetchall()} == {("alice@127.0.0.1", 1)}
        cur.execute("USE shop@prod")
        cur.execute("SELECT CURRENT_USER(), COUNT(*) FROM orders")
        assert cur.fetchone()[0] == "alice@%"
    conn.close()
    d = StmtDriver(proxy)
    try:
        assert d.cmd("prepare SELECT USER(), ?")[0] == "OK"
        assert d.cmd("exec 7") == ("ROWS", [["alice@127.0.0.1", "7"]])
    finally:
        d.close()


def test_prepared_statement_transaction_kind_follows_sql_mode(proxy):
    """The transaction kind of a prepared statement is read in the sql_mode of each EXECUTE,
    not remembered from the first one. `SELECT 'a\\' FROM customers -- '` is a SELECT of one
    string and no table by default (it touches no data: a held BEGIN stays held) and a read of
    customers under NO_BACKSLASH_ESCAPES (the held BEGIN goes first). The same statement,
    executed in both modes in turn inside BEGIN, begins the transaction only in the second;
    then, back in the default mode, it again leaves a new BEGIN held. (The classifier reads
    the text in the session's sql_mode at EXECUTE, as the text path does.)"""
    text = "SELECT 'a\\' FROM customers -- '"
    d = StmtDriver(proxy, user="bob", password="bob-pw", db="shop@prod")
    try:
        assert d.cmd("query SET sql_mode = ''") == ("AFFECTED", "0")
        assert d.cmd("prepare " + text)[0] == "OK"
        assert d.cmd("query BEGIN") == ("AFFECTED", "0")
        assert d.cmd("exec") == ("ROWS", [["a' FROM customers -- "]])
        assert d.cmd("query SELECT @@in_transaction") == ("ROWS", [["0"]])

        assert d.cmd("query SET sql_mode = 'NO_BACKSLASH_ESCAPES'") == ("AFFECTED", "0")
        assert d.cmd("exec")[0] == "ROWS"  # the server keeps the parse of its PREPARE
        assert d.cmd("query SELECT @@in_transaction") == ("ROWS", [["1"]])
        assert d.cmd("query COMMIT") == ("AFFECTED", "0")

        assert d.cmd("query SET sql_mode = ''") == ("AFFECTED", "0")
        assert d.cmd("query BEGIN") == ("AFFECTED", "0")
        assert d.cmd("exec") == ("ROWS", [["a' FROM customers -- "]])
        assert d.cmd("query SELECT @@in_transaction") == ("ROWS", [["0"]])
        assert d.cmd("query ROLLBACK") == ("AFFECTED", "0")
    finally:
        d.close()
