"""Backups and exports through envproxy are whole or fail loudly (README "Backups").

- A result that passes limits.max_rows ends with ERR 1104, never cut short with only a
  note, for every program whose output nobody reads warnings in: a dump-shaped statement
  (SQL_NO_CACHE, as mysqldump, mydumper and scripts copying them send it) from a program
  that does not name itself (PyMySQL here), and the mariadb command line in batch mode
  (-e / -B, output to a file), in one environment or in a fan-out. The interactive command
  line and ordinary statements keep the truncated result with its note.
- An --all-databases dump that meets a server database named like a routing hint
  (`shop@dev` in prod) stops with an error instead of dumping dev's shop in its place.
- The binary log position a --single-transaction --master-data dump records is its
  snapshot's.
- Through a backend account without the TRIGGER privilege (one that changes nothing never
  has it), which the server shows no trigger, a dump's trigger query fails naming
  --skip-triggers; without SELECT on mysql.proc its routine listing fails: never a dump
  without triggers or routines and exit status 0.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
from harness import StmtDriver  # noqa: E402

ROWS = 3000
CAP = {"environments": {"prod": {"limits": {"max_rows": 1000}}}}
TIMEOUT = 60


@pytest.fixture(scope="module")
def dfx(servers):
    """Database dfx in prod: table t of 3,000 rows (three times the cap used here)."""
    for stmt in ["DROP DATABASE IF EXISTS dfx", "CREATE DATABASE dfx",
                 "CREATE TABLE dfx.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
                 f"INSERT INTO dfx.t SELECT seq, CONCAT('r', seq) FROM seq_1_to_{ROWS}"]:
        servers.sql("prod", stmt, database="mysql")
    yield "dfx"
    servers.sql("prod", "DROP DATABASE IF EXISTS dfx")


def cli(p, *args, stdin=subprocess.DEVNULL):
    cmd = ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{p.port}", "-ualice", "-palice-pw",
           "-D", "dfx@prod"] + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, stdin=stdin)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def test_dump_shaped_select_fails_at_the_cap_from_a_program_without_a_name(make_proxy, dfx):
    """PyMySQL sends no program_name: its SELECT /*!40001 SQL_NO_CACHE */ * (what a dump
    sends) passing the cap gets ERR 1104 naming max_rows instead of 1,000 of the 3,000 rows;
    the connection goes on, and an ordinary SELECT is still cut with its note."""
    p = make_proxy(extra_yaml=CAP)
    conn = p.connect(database="dfx@prod", read_timeout=TIMEOUT)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("SELECT /*!40001 SQL_NO_CACHE */ * FROM `t`")
        assert e.value.args[0] == 1104 and "max_rows" in e.value.args[1], e.value.args
        # Lower case, with a parameter (PyMySQL interpolates it into the text).
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("select sql_no_cache id from t where id > %s", (0,))
        assert e.value.args[0] == 1104
        # Under the cap it is answered whole.
        assert cur.execute("SELECT /*!40001 SQL_NO_CACHE */ * FROM t WHERE id <= 1000") == 1000
        # Not dump-shaped (the word inside a name): cut to the cap, with its note.
        assert cur.execute("SELECT id AS sql_no_cache_x FROM t") == 1000
        cur.execute("SHOW WARNINGS")
        assert "truncated to 1000 rows" in cur.fetchall()[0][2]
    conn.close()


def test_batch_command_line_export_fails_at_the_cap(make_proxy, dfx):
    """`mariadb -B -e "SELECT * FROM t" > file` (and a script on its input) exits non-zero with
    ERR 1104 instead of writing 1,000 of 3,000 rows with exit status 0; the interactive
    command line (a terminal, CLIENT_INTERACTIVE) still shows the cut result with its
    warning."""
    p = make_proxy(extra_yaml=CAP)
    rc, out, err = cli(p, "-B", "-N", "-e", "SELECT * FROM t")
    assert rc != 0 and "1104" in err and "max_rows" in err, (rc, err)
    assert out.count(b"\n") <= 1000
    r = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{p.port}", "-ualice",
                        "-palice-pw", "-D", "dfx@prod", "-N"], input=b"SELECT id FROM t;\n",
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode != 0 and b"1104" in r.stderr, r
    # Under the cap: whole, exit 0.
    rc, out, err = cli(p, "-B", "-N", "-e", "SELECT id FROM t WHERE id <= 1000")
    assert rc == 0 and out.count(b"\n") == 1000, err
    if not shutil.which("script"):
        return
    r = subprocess.run(["script", "-qec", f"mariadb --no-defaults -h127.0.0.1 -P{p.port} "
                        "-ualice -palice-pw -D dfx@prod", "/dev/null"],
                       input=b"SELECT id FROM t;\nquit\n", capture_output=True, timeout=TIMEOUT)
    assert b"1000 rows in set, 1 warning" in r.stdout, r.stdout[-400:]


def test_prepared_dump_shaped_select_fails_at_the_cap(make_proxy, dfx):
    """The same through COM_STMT_EXECUTE (binary rows): the prepared text is read, so a
    dump-shaped statement gets 1104 and an ordinary one its 1,000 rows."""
    p = make_proxy(extra_yaml=CAP)
    d = StmtDriver(p, db="dfx@prod")
    try:
        assert d.cmd("prepare SELECT SQL_NO_CACHE id FROM t")[0] == "OK"
        r = d.cmd("exec 1")
        assert r[0] == "ERR" and r[1] == "1104" and "max_rows" in r[2], r
        assert d.cmd("prepare SELECT id FROM t")[0] == "OK"
        r = d.cmd("exec 2")
        assert r[0] == "ROWS" and len(r[1]) == 1000, r[:1]
    finally:
        d.close()


@pytest.fixture
def hint_named_db(servers):
    """Database `shop@dev` in prod, with one table: its name reads as shop in dev."""
    servers.sql("prod", "CREATE DATABASE `shop@dev`")
    servers.sql("prod", "CREATE TABLE `shop@dev`.only_prod (x INT)")
    servers.sql("prod", "INSERT INTO `shop@dev`.only_prod VALUES (42)")
    yield "shop@dev"
    servers.sql("prod", "DROP DATABASE IF EXISTS `shop@dev`")


def dump(p, *args, user="alice@prod", password="alice-pw"):
    cmd = ["mariadb-dump", "--no-defaults", "-h127.0.0.1", f"-P{p.port}", f"-u{user}",
           f"-p{password}", "--default-character-set=utf8mb4"] + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def test_all_databases_dump_stops_at_a_database_named_like_a_routing_hint(make_proxy,
                                                                          hint_named_db):
    """prod's database `shop@dev`, met by --all-databases (here without a transaction, which
    would have refused the move to dev): the USE of it gets ERR 1105 naming the way out and
    mariadb-dump exits non-zero, instead of dumping dev's shop (CREATE DATABASE `shop`,
    USE `shop@dev`) into prod's backup with exit status 0. Left out with --ignore-database
    the dump is whole; dumped alone as shop@dev@prod it has prod's table."""
    p = make_proxy(extra_yaml={"environments": {"prod": {"limits": {"max_rows": 0}}}})
    base = ["--skip-lock-tables", "--all-databases", "--ignore-database=mysql"]
    rc, out, err = dump(p, *base)
    assert rc != 0 and "1105" in err and "--ignore-database=shop@dev" in err, (rc, err)
    rc, out, err = dump(p, *base, "--ignore-database=shop@dev")
    assert rc == 0, err
    assert "shop@dev" not in out and "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`" in out
    rc, out, err = dump(p, "--single-transaction", "shop@dev@prod")
    assert rc == 0, err
    assert "CREATE TABLE `only_prod`" in out and "(42)" in out


def test_fan_out_cut_to_the_cap_fails_for_an_export(make_proxy, servers, dfx):
    """A fan-out (/* env=dev,prod */) whose part in prod passes the cap: the batch command line
    and a dump-shaped statement get 1104 instead of an answer with prod's rows cut; an
    ordinary fan-out from PyMySQL keeps its cut answer and note."""
    servers.sql("dev", "CREATE DATABASE IF NOT EXISTS dfx")
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS dfx.t (id INT PRIMARY KEY, v VARCHAR(20))")
    try:
        p = make_proxy(extra_yaml=CAP)
        sql = "/* env=dev,prod */ SELECT id FROM dfx.t"
        rc, out, err = cli(p, "--comments", "-B", "-N", "-e", sql)
        assert rc != 0 and "1104" in err and "'prod'" in err, (rc, err)
        conn = p.connect(database="dfx@prod", read_timeout=TIMEOUT)
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as e:
                cur.execute("/* env=dev,prod */ SELECT SQL_NO_CACHE id FROM dfx.t")
            assert e.value.args[0] == 1104
            assert cur.execute(sql) == 1000
            cur.execute("SHOW WARNINGS")
            assert "truncated to 1000 rows" in cur.fetchall()[0][2]
        conn.close()
    finally:
        servers.sql("dev", "DROP DATABASE IF EXISTS dfx")


@pytest.fixture(scope="module")
def binlog_server(tmp_path_factory):
    """A MariaDB server of its own with the binary log on (prod's has none), seeded as prod."""
    import os
    from harness import MariaDB, free_port
    base = tmp_path_factory.mktemp("binlog")
    seed = HERE.parent / "fixtures" / "seed-prod.sql"
    server = MariaDB("binlog", base, free_port(), seed)
    old = os.environ.get("MARIADB_TEST_ARGS")
    os.environ["MARIADB_TEST_ARGS"] = ((old or "") + " --log-bin=binlog --server-id=1").strip()
    try:
        server.start()
    finally:
        if old is None:
            os.environ.pop("MARIADB_TEST_ARGS")
        else:
            os.environ["MARIADB_TEST_ARGS"] = old
    server.sql("CREATE TABLE shop.bl (id INT PRIMARY KEY)")
    server.sql("INSERT INTO shop.bl VALUES (1)")
    yield server
    server.stop()


def test_binlog_position_of_a_consistent_snapshot_is_the_snapshots(make_proxy, binlog_server):
    """mariadb-dump --single-transaction --master-data reads the binary log position of its
    snapshot with SHOW STATUS LIKE 'binlog_snapshot_%' right after START TRANSACTION WITH
    CONSISTENT SNAPSHOT. That SHOW begins the held-back transaction: a write between it and
    the first SELECT is neither in the rows nor before the position (before, the position
    was read outside any snapshot and the snapshot began at the SELECT, with the write in it:
    a replica built from the dump would apply that write twice)."""
    p = make_proxy(extra_yaml={"environments": {"prod": {
        "port": binlog_server.port, "limits": {"max_rows": 0}}}})
    conn = p.connect(database="shop@prod", autocommit=True, read_timeout=TIMEOUT)
    try:
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_position'")
            pos = int(cur.fetchall()[0][1])
            binlog_server.sql("INSERT INTO shop.bl VALUES (2)")
            after = int(binlog_server.sql("SHOW MASTER STATUS")[0][1])
            assert after > pos
            cur.execute("SELECT COUNT(*) FROM bl")
            assert cur.fetchall()[0][0] == 1  # the snapshot is from before the write
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_position'")
            assert int(cur.fetchall()[0][1]) == pos
            cur.execute("COMMIT")
        # The dump itself: whole, with the position as a comment.
        rc, out, err = dump(p, "--single-transaction", "--master-data=2", "shop",
                            user="alice@prod")
        assert rc == 0, err
        assert "-- CHANGE MASTER TO MASTER_LOG_FILE=" in out and "INSERT INTO `bl`" in out
    finally:
        conn.close()
        binlog_server.sql("DELETE FROM shop.bl WHERE id = 2")


@pytest.fixture
def reader_account(servers, dfx):
    """A backend account on prod that can change nothing (docs/policy.md): SELECT and SHOW VIEW
    on shop and dfx; dfx.t gets a trigger, which such an account is not shown."""
    for stmt in ["CREATE USER IF NOT EXISTS 'dumprd'@'%' IDENTIFIED BY 'dumprd-pw'",
                 "GRANT SELECT, SHOW VIEW ON shop.* TO 'dumprd'@'%'",
                 "GRANT SELECT, SHOW VIEW ON dfx.* TO 'dumprd'@'%'",
                 "CREATE TRIGGER dfx.t_bi BEFORE INSERT ON dfx.t FOR EACH ROW "
                 "SET NEW.v = TRIM(NEW.v)",
                 "CREATE FUNCTION dfx.f_one() RETURNS INT DETERMINISTIC RETURN 1"]:
        servers.sql("prod", stmt)
    yield {"environments": {"prod": {"user": "dumprd", "password": "dumprd-pw",
                                     "limits": {"max_rows": 0}}}}
    servers.sql("prod", "DROP TRIGGER IF EXISTS dfx.t_bi")
    servers.sql("prod", "DROP FUNCTION IF EXISTS dfx.f_one")
    servers.sql("prod", "DROP USER IF EXISTS 'dumprd'@'%'")


def test_dump_through_a_read_only_backend_account_does_not_drop_triggers(make_proxy, servers,
                                                                         reader_account):
    """Through a backend account that changes nothing (no TRIGGER privilege) the server shows
    no trigger, and mariadb-dump (triggers on by default) wrote a dump without dfx.t's
    trigger, exit status 0. Its trigger query now gets ERR 1105 naming --skip-triggers, and
    mariadb-dump exits non-zero; with --skip-triggers the dump is whole otherwise."""
    p = make_proxy(extra_yaml=reader_account)
    rc, out, err = dump(p, "--single-transaction", "dfx", user="alice@prod")
    assert rc != 0 and "1105" in err and "--skip-triggers" in err, (rc, err)
    rc, out, err = dump(p, "--single-transaction", "--skip-triggers", "dfx", user="alice@prod")
    assert rc == 0, err
    assert f"({ROWS},'r{ROWS}')" in out and "TRIGGER" not in out
    # An account that may write but has no TRIGGER privilege is shown no trigger either.
    p.stop()
    servers.sql("prod", "GRANT INSERT ON dfx.* TO 'dumprd'@'%'")
    p = make_proxy(extra_yaml=reader_account)
    rc, out, err = dump(p, "--single-transaction", "dfx", user="alice@prod")
    assert rc != 0 and "1105" in err and "--skip-triggers" in err, (rc, err)


def test_routines_dump_through_an_account_that_may_not_read_mysql_proc_fails(make_proxy, servers,
                                                                             reader_account):
    """Without SELECT on mysql.proc the server lists the backend account no stored routine:
    `--routines` wrote a dump without dfx.f_one, exit status 0. The listing now gets ERR 1105
    naming mysql.proc; once the account may read it (seen by the proxy's grants check), the
    function is in the dump."""
    p = make_proxy(extra_yaml=reader_account)
    rc, out, err = dump(p, "--single-transaction", "--skip-triggers", "--routines", "dfx",
                        user="alice@prod")
    assert rc != 0 and "1105" in err and "mysql.proc" in err, (rc, err)
    p.stop()
    servers.sql("prod", "GRANT SELECT ON mysql.proc TO 'dumprd'@'%'")
    p = make_proxy(extra_yaml=reader_account)
    rc, out, err = dump(p, "--single-transaction", "--skip-triggers", "--routines", "dfx",
                        user="alice@prod")
    assert rc == 0, err
    assert "FUNCTION `f_one`" in out
