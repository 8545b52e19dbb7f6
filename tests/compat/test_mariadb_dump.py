"""mariadb-dump through envproxy (docs/compat.md, README "Backups"): --single-transaction
dumps of db@env (also --no-data and --all-databases) restore into a scratch server with the
same table checksums, in read-only prod; a dump is never cut short by max_rows; the default
(LOCK TABLES) dump is told to use --single-transaction."""

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
from harness import MariaDB, free_port  # noqa: E402

DUMP_TIMEOUT = 120
BIG_ROWS = 20000

# Prod is read-only; its row cap is lifted here so that a dump can be whole (the default
# cap of 10000 is exercised by test_dump_over_max_rows_fails_loudly).
NO_CAP = {"environments": {"prod": {"limits": {"max_rows": 0}}}}


@pytest.fixture(scope="module")
def dumpsrc(servers):
    """Database dumpsrc in prod: 20,000 rows, a foreign key, a view, JSON, a trigger."""
    for stmt in [
        "DROP DATABASE IF EXISTS dumpsrc",
        "CREATE DATABASE dumpsrc CHARACTER SET utf8mb4",
        "CREATE TABLE dumpsrc.parent (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, "
        "doc JSON NULL) ENGINE=InnoDB",
        "CREATE TABLE dumpsrc.big (id INT PRIMARY KEY, parent_id INT NOT NULL, "
        "payload VARCHAR(100) NOT NULL, amount DECIMAL(12,2) NOT NULL, "
        "KEY (parent_id), CONSTRAINT fk_big_parent FOREIGN KEY (parent_id) "
        "REFERENCES dumpsrc.parent (id)) ENGINE=InnoDB",
        "INSERT INTO dumpsrc.parent SELECT seq, CONCAT('p', seq), "
        "JSON_OBJECT('n', seq, 'tag', 'x''y') FROM seq_1_to_50",
        f"INSERT INTO dumpsrc.big SELECT seq, 1 + seq % 50, CONCAT('row ', seq, ' é東'), "
        f"seq / 7 FROM seq_1_to_{BIG_ROWS}",
        "CREATE VIEW dumpsrc.v_parent AS SELECT id, name FROM dumpsrc.parent WHERE id < 10",
        "CREATE TRIGGER dumpsrc.big_bi BEFORE INSERT ON dumpsrc.big FOR EACH ROW "
        "SET NEW.payload = TRIM(NEW.payload)",
    ]:
        servers.sql("prod", stmt, database="mysql")  # a database for seq_1_to_N
    yield "dumpsrc"
    servers.sql("prod", "DROP DATABASE IF EXISTS dumpsrc")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A MariaDB server of its own to restore into (stopped at the end of the module)."""
    base = tmp_path_factory.mktemp("scratch")
    seed = base / "empty.sql"
    seed.write_text("SELECT 1;\n")
    server = MariaDB("scratch", base, free_port(), seed)
    server.start()
    yield server
    server.stop()


def dump(proxy, *args, user="alice", password="alice-pw"):
    cmd = ["mariadb-dump", "--no-defaults", "-h127.0.0.1", f"-P{proxy.port}", f"-u{user}",
           f"-p{password}", "--default-character-set=utf8mb4"] + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=DUMP_TIMEOUT, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def restore(server, data, database=None):
    cmd = ["mariadb", "--no-defaults", "-uroot", f"--socket={server.socket}",
           "--default-character-set=utf8mb4"] + ([database] if database else [])
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=DUMP_TIMEOUT)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")


def checksums(server, db):
    """{table: CHECKSUM TABLE value} for the base tables of db."""
    tables = [r[0] for r in server.sql(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %r "
        "AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1" % db)]
    return {t: server.sql(f"CHECKSUM TABLE `{db}`.`{t}`")[0][1] for t in tables}


def structure(server, db):
    """SHOW CREATE of every table and view of db."""
    out = {}
    for name, kind in server.sql(f"SHOW FULL TABLES FROM `{db}`"):
        row = server.sql(f"SHOW CREATE TABLE `{db}`.`{name}`")[0]
        out[name] = row[1]
    return out


def test_single_transaction_dump_of_db_at_env_restores_identically(make_proxy, servers,
                                                                   dumpsrc, scratch):
    """`mariadb-dump --single-transaction dumpsrc@prod` exits 0 in read-only prod; restored
    into a scratch server, every table has prod's checksum (all 20,000 rows)."""
    p = make_proxy(extra_yaml=NO_CAP)
    rc, out, err = dump(p, "--single-transaction", "--routines", "--triggers", "dumpsrc@prod")
    assert rc == 0, err
    # The same name on the scratch server: the view and the trigger name their database.
    scratch.sql("DROP DATABASE IF EXISTS dumpsrc")
    scratch.sql("CREATE DATABASE dumpsrc CHARACTER SET utf8mb4")
    restore(scratch, out, "dumpsrc")
    want = checksums(servers.prod, "dumpsrc")
    assert want and checksums(scratch, "dumpsrc") == want
    assert scratch.sql("SELECT COUNT(*) FROM dumpsrc.big")[0][0] == BIG_ROWS
    assert scratch.sql("SELECT COUNT(*) FROM dumpsrc.v_parent")[0][0] == 9
    assert scratch.sql("SELECT COUNT(*) FROM information_schema.TRIGGERS "
                       "WHERE TRIGGER_SCHEMA = 'dumpsrc'")[0][0] == 1


def test_no_data_dump_restores_the_structure(make_proxy, servers, dumpsrc, scratch):
    """--no-data: the same table and view definitions, no rows."""
    p = make_proxy(extra_yaml=NO_CAP)
    rc, out, err = dump(p, "--single-transaction", "--no-data", "dumpsrc@prod")
    assert rc == 0, err
    assert b"INSERT INTO" not in out
    scratch.sql("DROP DATABASE IF EXISTS dumpsrc")
    scratch.sql("CREATE DATABASE dumpsrc CHARACTER SET utf8mb4")
    restore(scratch, out, "dumpsrc")
    got = structure(scratch, "dumpsrc")
    want = structure(servers.prod, "dumpsrc")
    assert got == want
    assert scratch.sql("SELECT COUNT(*) FROM dumpsrc.big")[0][0] == 0


def test_all_databases_dump_of_prod_restores_and_skips_virtual_schemas(make_proxy, servers,
                                                                        dumpsrc, scratch):
    """--all-databases with the login name alice@prod: prod's databases (shop, billing,
    dumpsrc), never __envs or __compare; restored, shop and dumpsrc have prod's checksums."""
    p = make_proxy(extra_yaml=NO_CAP)
    rc, out, err = dump(p, "--single-transaction", "--all-databases", "--ignore-database=mysql",
                        user="alice@prod")
    assert rc == 0, err
    text = out.decode("utf-8", "replace")
    for db in ("shop", "billing", "dumpsrc"):
        assert f"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `{db}`" in text, db
    assert "__envs" not in text and "__compare" not in text
    assert "`analytics`" not in text  # dev's database
    for db in ("shop", "billing", "dumpsrc"):
        scratch.sql(f"DROP DATABASE IF EXISTS `{db}`")
    restore(scratch, out)
    for db in ("shop", "dumpsrc", "billing"):
        assert checksums(scratch, db) == checksums(servers.prod, db), db


def test_dump_over_max_rows_fails_loudly(make_proxy, dumpsrc):
    """With prod's default cap of 10,000 rows the 20,000-row table cannot be dumped whole:
    mariadb-dump exits non-zero naming max_rows, instead of writing 10,000 rows."""
    p = make_proxy()
    rc, out, err = dump(p, "--single-transaction", "dumpsrc@prod")
    assert rc != 0
    assert "max_rows" in err and "1104" in err, err


def test_default_dump_with_lock_tables_is_told_to_use_single_transaction(make_proxy, dumpsrc):
    """Without --single-transaction mariadb-dump locks tables: refused in read-only prod with
    1290, and the message names --single-transaction."""
    p = make_proxy(extra_yaml=NO_CAP)
    rc, out, err = dump(p, "dumpsrc@prod")
    assert rc != 0
    assert "1290" in err and "--single-transaction" in err, err


def test_backup_account_with_max_rows_override_dumps_everything(make_proxy, servers, dumpsrc,
                                                                 scratch):
    """With prod's default cap (10,000 rows) left in place, an account given
    `user limits NAME --max-rows 0` dumps the 20,000-row table whole (restored checksums equal
    prod's), while alice, without the override, still gets the max_rows error."""
    p = make_proxy(start=False)
    p.add_user("backup", "backup-pw", "prod", {"prod": "read"})
    p._cli_ok("user", "limits", "backup", "--max-rows", "0")
    p.start()
    rc, out, err = dump(p, "--single-transaction", "dumpsrc", user="backup",
                        password="backup-pw")
    assert rc == 0, err
    scratch.sql("DROP DATABASE IF EXISTS dumpsrc")
    scratch.sql("CREATE DATABASE dumpsrc CHARACTER SET utf8mb4")
    restore(scratch, out, "dumpsrc")
    assert scratch.sql("SELECT COUNT(*) FROM dumpsrc.big")[0][0] == BIG_ROWS
    assert checksums(scratch, "dumpsrc") == checksums(servers.prod, "dumpsrc")
    rc, out, err = dump(p, "--single-transaction", "dumpsrc@prod")
    assert rc != 0 and "max_rows" in err and "1104" in err, err
