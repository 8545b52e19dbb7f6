"""PHP (mysqli, PDO emulated and server-side), Perl (DBD::MariaDB, DBD::mysql, client-side
and server-side prepares), Ruby (mysql2) and Go (go-sql-driver/mysql, interpolateParams
false and true) through envproxy.

Each language has one check program under tests/compat/<language>/ that connects to this
module's proxy with `shop@prod` as the database and prints one JSON line per check; each
test below asserts one check. scripts/install-deps.sh installs the Debian packages (php-cli
php-mysql, libdbd-mariadb-perl libdbd-mysql-perl, ruby-mysql2, golang-go
golang-github-go-sql-driver-mysql-dev); Go builds offline from /usr/share/gocode.

What every program checks, per driver and mode:
  connect_prod            the handshake's shop@prod: DATABASE() = shop, __envs.session env prod
  prepared_read           a read with a bound value returns prod's row
  prepared_envs           __envs with a bound value (PREPARE answered by the proxy)
  write_refused_1290      the driver's error number for a write in prod is 1290
  transaction_then_use    BEGIN in dev, USE shop@prod, read prod's row, COMMIT
  schema_names            `shop@prod`.t, SHOW TABLES FROM `x@prod`, TABLE_SCHEMA = 'x@prod'
"""

import os
import shutil

import pytest

from compat_helpers import HERE, run_checks
from harness import HarnessError

RUN_TIMEOUT = 180

CHECKS = ["connect_prod", "prepared_read", "prepared_envs", "write_refused_1290",
          "transaction_then_use_prod", "schema_names"]


def _need(tool):
    if not shutil.which(tool):
        raise HarnessError(f"{tool} not found (scripts/install-deps.sh installs it)")


@pytest.fixture(scope="module")
def php(proxy):
    _need("php")
    return run_checks("php", ["php", str(HERE / "php" / "compat.php"), str(proxy.port)],
                      timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def perl(proxy):
    _need("perl")
    return run_checks("perl", ["perl", str(HERE / "perl" / "compat.pl"), str(proxy.port)],
                      timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def ruby(proxy):
    _need("ruby")
    return run_checks("ruby", ["ruby", str(HERE / "ruby" / "compat.rb"), str(proxy.port)],
                      timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def go(proxy, tmp_path_factory):
    """Debian's go-sql-driver from /usr/share/gocode, no module download."""
    _need("go")
    env = dict(os.environ, GO111MODULE="off", GOFLAGS="-mod=mod", GOPATH="/usr/share/gocode",
               GOCACHE=str(tmp_path_factory.mktemp("gocache")))
    return run_checks("go", ["go", "run", str(HERE / "go" / "compat.go"), str(proxy.port)],
                      cwd=HERE / "go", timeout=RUN_TIMEOUT, env=env)


@pytest.mark.parametrize("check", ["connect_prod", "prepared_read", "prepared_envs",
                                   "write_refused_1290", "transaction_then_use_prod",
                                   "show_tables_from_db_at_env"])
def test_php_mysqli(php, check):
    """mysqli (real prepared statements) with shop@prod as the database."""
    php.check(f"mysqli_{check}")


@pytest.mark.parametrize("mode", ["emulated", "server"])
@pytest.mark.parametrize("check", ["prepared_read", "prepared_envs", "write_refused_1290",
                                   "information_schema_with_db_at_env", "transaction"])
def test_php_pdo(php, mode, check):
    """PDO with ATTR_EMULATE_PREPARES on (values in the text) and off (COM_STMT_PREPARE for
    every query, information_schema names included)."""
    php.check(f"pdo_{mode}_{check}")


@pytest.mark.parametrize("driver", ["mariadb", "mysql"])
@pytest.mark.parametrize("mode", ["client", "server"])
@pytest.mark.parametrize("check", CHECKS + ["use_statement"])
def test_perl_dbi(perl, driver, mode, check):
    """DBD::MariaDB and DBD::mysql, with <driver>_server_prepare off and on (a prepared USE
    gets 1295 and the drivers run it as a plain statement)."""
    perl.check(f"{driver}_{mode}_{check}")


@pytest.mark.parametrize("check", CHECKS)
def test_ruby_mysql2(ruby, check):
    """mysql2: query, prepare/execute, select_db('shop@prod') inside a transaction."""
    ruby.check(f"mysql2_{check}")


@pytest.mark.parametrize("mode", ["prepared", "interpolated"])
@pytest.mark.parametrize("check", ["connect_prod", "read_with_args", "envs_with_args",
                                   "write_refused_1290", "transaction_then_use_prod",
                                   "schema_names"])
def test_go_sql_driver(go, mode, check):
    """go-sql-driver/mysql with interpolateParams=false (arguments sent through
    COM_STMT_PREPARE/EXECUTE) and true; DSN .../shop@prod."""
    go.check(f"go_{mode}_{check}")
