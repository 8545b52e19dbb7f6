"""A backend that logs in correctly and then sends garbage, a truncated packet, a packet
header claiming 16 MiB before closing, or closes in the middle of a row or between rows
(tests/integration/fakebackend.py, configured as the environment 'evil'): the client of
that statement gets a clear error naming the environment (or, where half a row had gone out
already, a closed connection, never a hang), the proxy does not crash (also under the ASan
build), and fresh clients are served in every environment after each attack."""
import time

import pymysql
import pytest

from fakebackend import FakeBackend
from harness import Account
from test_faults import eventually_serves


@pytest.fixture
def evil(make_proxy, servers):
    fb = FakeBackend()
    try:
        p = make_proxy(
            extra_yaml={"limits": {"statement_timeout": "2s"},
                        "environments": {"evil": {
                            "host": "127.0.0.1", "port": fb.port, "user": "x", "password": "y",
                            "database": "shop", "access": "read_write",
                            "pool": {"max": 4, "connect_timeout": "1s", "wait_timeout": "2s"}}}},
            accounts=[Account("alice", "alice-pw", "dev",
                              {"dev": "write", "prod": "read", "evil": "write"})])
        yield p, fb
    finally:
        fb.close()


def all_served(p):
    eventually_serves(p)
    eventually_serves(p, env_db="shop@prod")
    eventually_serves(p, env_db="shop@evil")


# mode: whether the client gets an ERR naming the environment (else a closed connection)
MODES = {"garbage": True, "truncated": True, "huge": True, "betweenrows": True,
         "midrow": False}


def test_a_misbehaving_backend_hurts_only_its_statement(evil):
    """Each misbehaviour in turn, on a fresh client of 'evil': an error within
    statement_timeout plus grace, naming 'evil', or for a row cut in half a closed
    connection; then every environment serves fresh clients and the proxy is alive."""
    p, fb = evil
    for mode, named in MODES.items():
        conn = p.connect(database="shop@evil", read_timeout=15, autocommit=True)
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                with pytest.raises(pymysql.err.OperationalError) as e:
                    cur.execute(f"SELECT 1 /* evil:{mode} */")
                    cur.fetchall()
        finally:
            conn.close()
        took = time.monotonic() - start
        code, msg = e.value.args
        assert took < 8, (mode, took)
        if named:
            assert "environment 'evil'" in msg and "envproxy" in msg, (mode, code, msg)
        else:
            assert code == 2013, (mode, code, msg)
        assert p.alive(), mode
        all_served(p)
