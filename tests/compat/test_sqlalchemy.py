"""SQLAlchemy (Debian's python3-sqlalchemy) with the pymysql and mysqldb dialects.

The engine URL carries the environment in the database part, written as it is:
mysql+pymysql://alice:alice-pw@127.0.0.1:PORT/shop@prod. SQLAlchemy 1.4 does not
decode '%40' in the database part (it would reach the proxy as 'shop%40prod'), and a
literal '@' there parses fine because the password ends at the first '@'.
"""

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, declarative_base

Base = declarative_base()


class Customer(Base):
    __tablename__ = "customers"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(100), nullable=False)
    email = sa.Column(sa.String(200))
    created_at = sa.Column(sa.DateTime, nullable=False)


DIALECTS = ["pymysql", "mysqldb"]


def url(proxy, database, driver="pymysql", user="alice", password="alice-pw"):
    return (f"mysql+{driver}://{user}:{password}@127.0.0.1:{proxy.port}/{database}"
            "?charset=utf8mb4")


def engine_for(proxy, database, driver="pymysql", **kw):
    kw.setdefault("future", True)
    kw.setdefault("connect_args", {"connect_timeout": 5})
    return sa.create_engine(url(proxy, database, driver), **kw)


def refusals_since(proxy, offset):
    return [ln for ln in proxy.log_text()[offset:].splitlines() if "refused" in ln]


@pytest.mark.parametrize("driver", DIALECTS)
def test_first_connect_in_prod_with_database_at_env_in_the_url(proxy, driver):
    """create_engine('mysql+DRIVER://...@host:port/shop@prod') first-connects (the
    dialect's initialisation queries, an isolation level) in read-only prod without a
    single refused statement, sees a MariaDB 10.11 and lands in prod's shop."""
    start = len(proxy.log_text())
    engine = engine_for(proxy, "shop@prod", driver, isolation_level="READ COMMITTED")
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT DATABASE(), status FROM orders WHERE id = 3").one()
            assert tuple(row) == ("shop", "shipped")
        assert engine.dialect.is_mariadb
        assert engine.dialect.server_version_info[:2] == (10, 11)
    finally:
        engine.dispose()
    assert refusals_since(proxy, start) == []


def test_url_object_with_database_at_env(proxy):
    """sa.engine.URL.create(database='shop@prod') reaches prod as well."""
    u = sa.engine.URL.create("mysql+pymysql", username="alice", password="alice-pw",
                             host="127.0.0.1", port=proxy.port, database="shop@prod",
                             query={"charset": "utf8mb4"})
    engine = sa.create_engine(u, future=True)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(
                "SELECT status FROM orders WHERE id = 3").scalar() == "shipped"
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", DIALECTS)
def test_orm_query_over_customers_in_prod_and_dev(proxy, driver):
    """A mapped class over shop.customers: select with filter and order, get by primary
    key; prod and dev each give their own data (customer 8's email differs)."""
    for env, email in (("prod", "qa@example.com"), ("dev", "qa+dev@example.com")):
        engine = engine_for(proxy, f"shop@{env}", driver)
        try:
            with Session(engine) as session:
                found = session.execute(
                    sa.select(Customer).where(Customer.id >= 3).order_by(Customer.id)
                ).scalars().all()
                assert [c.id for c in found] == [3, 4, 5, 6, 7, 8]
                assert found[0].name == "Zoë Ångström"
                assert found[1].name == "東京 Trading"
                assert session.get(Customer, 8).email == email
                assert session.get(Customer, 5).email is None
        finally:
            engine.dispose()


@pytest.mark.filterwarnings("ignore:Did not recognize type")
def test_reflection_of_prod_schema(proxy):
    """MetaData.reflect and inspect() show prod's schema: its tables, no dev-only
    column or index, the foreign key, the 38 columns of shop.types, prod's databases."""
    start = len(proxy.log_text())
    engine = engine_for(proxy, "shop@prod")
    try:
        md = sa.MetaData()
        md.reflect(bind=engine)
        assert {"customers", "orders", "products", "types"} <= set(md.tables)
        assert "discount" not in md.tables["products"].c
        fks = [(fk.parent.name, fk.column.table.name, fk.column.name)
               for fk in md.tables["orders"].foreign_keys]
        assert fks == [("customer_id", "customers", "id")]

        insp = sa.inspect(engine)
        cols = insp.get_columns("types")
        assert len(cols) == 38
        by_name = {c["name"]: c for c in cols}
        assert isinstance(by_name["c_decimal"]["type"], sa.Numeric)
        assert by_name["c_varchar"]["nullable"] is True
        assert insp.get_pk_constraint("orders")["constrained_columns"] == ["id"]
        assert [ix["name"] for ix in insp.get_indexes("products")] == ["uq_products_sku"]
        schemas = insp.get_schema_names()
        assert "billing" in schemas and "analytics" not in schemas
        assert insp.get_table_names(schema="billing") == ["invoices"]
        assert insp.get_view_names() == []
    finally:
        engine.dispose()
    assert refusals_since(proxy, start) == []


@pytest.mark.parametrize("driver", DIALECTS)
def test_refused_write_in_prod_is_operational_error_1290(proxy, driver):
    """A DELETE in prod surfaces as sqlalchemy.exc.OperationalError whose DBAPI error
    has code 1290; the engine's connections go on working."""
    engine = engine_for(proxy, "shop@prod", driver)
    try:
        with pytest.raises(sa_exc.OperationalError) as e:
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM orders WHERE id = 1")
        assert e.value.orig.args[0] == 1290
        assert "read-only" in str(e.value.orig.args[1])
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM orders").scalar() == 11
    finally:
        engine.dispose()


def test_orm_flush_in_prod_is_refused_with_1290(proxy):
    """Changing a mapped object in prod and committing raises OperationalError 1290;
    after rollback the session reads the unchanged row."""
    engine = engine_for(proxy, "shop@prod")
    try:
        with Session(engine) as session:
            c = session.get(Customer, 1)
            c.email = "changed@example.com"
            with pytest.raises(sa_exc.OperationalError) as e:
                session.commit()
            assert e.value.orig.args[0] == 1290
            session.rollback()
            assert session.get(Customer, 1).email == "alice@example.com"
    finally:
        engine.dispose()


def test_pool_reset_on_return_rolls_back_uncommitted_work(proxy, servers):
    """pool_reset_on_return='rollback' with one pooled connection: rows inserted in dev
    and not committed are gone for the next checkout of the same connection, and
    committed ones stay."""
    servers.sql("dev", "CREATE TABLE IF NOT EXISTS shop.compat_sa_reset (id INT PRIMARY KEY)")
    servers.sql("dev", "DELETE FROM shop.compat_sa_reset")
    engine = engine_for(proxy, "shop@dev", pool_size=1, max_overflow=0,
                        pool_reset_on_return="rollback")
    try:
        with engine.connect() as conn:
            first = conn.connection.dbapi_connection
            conn.exec_driver_sql("INSERT INTO compat_sa_reset VALUES (1)")
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection is first
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM compat_sa_reset").scalar() == 0
            conn.exec_driver_sql("INSERT INTO compat_sa_reset VALUES (2)")
            conn.commit()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id FROM compat_sa_reset").all() == [(2,)]
    finally:
        engine.dispose()
        servers.sql("dev", "DROP TABLE IF EXISTS shop.compat_sa_reset")


def test_pool_pre_ping_replaces_connections_after_a_proxy_restart(make_proxy):
    """pool_pre_ping=True: after the proxy restarts, the pooled connections are found
    dead by the ping (COM_PING) and replaced; the application sees no error."""
    p = make_proxy()
    engine = engine_for(p, "shop@prod", pool_size=2, pool_pre_ping=True)
    try:
        with engine.connect() as a, engine.connect() as b:
            assert a.exec_driver_sql("SELECT 1").scalar() == 1
            assert b.exec_driver_sql("SELECT 2").scalar() == 2
        assert p.stop() == 0
        p.start()
        for _ in range(3):
            with engine.connect() as conn:
                assert conn.exec_driver_sql(
                    "SELECT status FROM orders WHERE id = 3").scalar() == "shipped"
    finally:
        engine.dispose()
