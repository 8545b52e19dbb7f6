"""Node `mysql` (mysqljs), TypeORM, Kysely and Drizzle, each configured with `shop@prod` as
its database (tests/compat/node/orm.js, versions pinned by package-lock.json)."""

import pytest

from compat_helpers import run_checks

NODE_RUN_TIMEOUT = 180


@pytest.fixture(scope="module")
def orms(proxy, node_dir):
    cmd = ["node", str(node_dir / "orm.js"), str(proxy.port)]
    return run_checks("orm.js", cmd, cwd=node_dir, timeout=NODE_RUN_TIMEOUT)


@pytest.mark.parametrize("check", ["mysql_read_prod", "mysql_write_refused_1290",
                                   "mysql_transaction_then_use_prod", "mysql_schema_names"])
def test_node_mysql(orms, check):
    """mysqljs/mysql 2.18: reads, errno 1290, BEGIN then USE `shop@prod`, SHOW TABLES FROM."""
    orms.check(check)


def test_typeorm_sees_prod_schema(orms):
    """hasTable/hasColumn/getTable (information_schema queries naming TABLE_SCHEMA =
    'shop@prod') describe prod's shop, foreign keys included."""
    orms.check("typeorm_introspection_of_prod")


def test_typeorm_write_is_refused_with_1290(orms):
    orms.check("typeorm_write_refused_1290")


def test_kysely_query_introspection_and_json(orms):
    """Kysely's query builder, introspection of prod, a JSON column as an object."""
    orms.check("kysely_query_introspection_and_json")


def test_drizzle_select_and_json(orms):
    """Drizzle's select and its json() column on mysql2, JSON as an object."""
    orms.check("drizzle_select_and_json")
