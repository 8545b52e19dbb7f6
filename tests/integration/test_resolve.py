"""Host names of environments are resolved by a thread of the proxy's own, never on an
event loop: a DNS server that takes seconds to answer does not stall the clients of the
worker that opens a backend connection (Connector/C would call getaddrinfo inside
mysql_real_connect_start, which blocks). A name that does not resolve fails its statements
at once with ERR 2005 naming it, and the other environments are served.

Names under .test are answered by tests/integration/dns_shim.c, preloaded into the proxy:
*.slow.test after 3 s, *.none.test never, *.dual.test as two addresses of which the first
has no server, *.moving.test as the address a file holds."""

import threading
import time

import pymysql
import pytest

from dnsshim import shim_env
from harness import BACKEND_PASSWORD_VAR, BACKEND_USER, Account, envproxy_bin


def env_at(host, port):
    return {"host": host, "port": port, "user": BACKEND_USER,
            "password": "${%s}" % BACKEND_PASSWORD_VAR, "database": "shop",
            "access": "read_write", "pool": {"max": 10, "connect_timeout": "10s"}}


@pytest.fixture
def slow_dns_proxy(make_proxy, servers):
    return make_proxy(
        extra_yaml={"threads": 1, "environments": {
            "far": env_at("db.slow.test", servers.dev.port),
            "nowhere": env_at("db.none.test", servers.dev.port),
            "dual": env_at("db.dual.test", servers.dev.port)}},
        env_overrides=shim_env(envproxy_bin()),
        accounts=[Account("alice", "alice-pw", "dev",
                          {"dev": "write", "far": "write", "nowhere": "write",
                           "dual": "write"})])


def test_slow_dns_does_not_stall_the_worker(slow_dns_proxy):
    p = slow_dns_proxy
    probe = p.connect()
    stop = threading.Event()
    worst = [0.0]

    def measure():
        while not stop.is_set():
            t = time.monotonic()
            with probe.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
            worst[0] = max(worst[0], time.monotonic() - t)
            time.sleep(0.05)

    th = threading.Thread(target=measure)
    th.start()
    holders = []
    try:
        start = time.monotonic()
        # Three sessions each hold a transaction in far: three new backend connections to
        # a host whose name takes 3 s to resolve.
        for _ in range(3):
            c = p.connect()
            with c.cursor() as cur:
                cur.execute("/* env=far */ BEGIN")
                cur.execute("/* env=far */ SELECT @@port")
                cur.fetchall()
            holders.append(c)
        took = time.monotonic() - start
    finally:
        stop.set()
        th.join(10)
        for c in holders:
            c.close()
        probe.close()
    # Each connection would wait 3 s for the name (9 s in all), and so would the probe.
    assert took < 6, f"three connections to far took {took:.1f} s"
    assert worst[0] < 2, f"a SELECT 1 on the same worker waited {worst[0]:.1f} s"
    assert "resolves to 127.0.0.1" in p.log_text()


def test_a_name_that_does_not_resolve_fails_at_once(slow_dns_proxy):
    p = slow_dns_proxy
    conn = p.connect()
    for _ in range(3):
        start = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as e:
            with conn.cursor() as cur:
                cur.execute("/* env=nowhere */ SELECT 1")
        assert time.monotonic() - start < 1.0
        assert e.value.args[0] in (2003, 2005), e.value.args
        assert "db.none.test" in e.value.args[1] and "'nowhere'" in e.value.args[1]
    with conn.cursor() as cur:
        cur.execute("SELECT 'dev works'")
        assert cur.fetchall() == (("dev works",),)
    conn.close()
    assert "cannot resolve host name 'db.none.test'" in p.log_text()


def test_the_next_address_of_a_name_is_tried(slow_dns_proxy, servers):
    """A name with two addresses, the first with no server (an IPv6 address the server does
    not listen on, say): the connection goes to the second, as Connector/C does when it
    resolves a name itself, and later connections go there first."""
    p = slow_dns_proxy
    conns = []
    for _ in range(3):
        c = p.connect()
        with c.cursor() as cur:
            cur.execute("/* env=dual */ BEGIN")
            cur.execute("/* env=dual */ SELECT @@port")
            assert cur.fetchall() == ((servers.dev.port,),)
        conns.append(c)
    for c in conns:
        c.close()
    assert p.log_text().count("trying the next address of db.dual.test") == 1


def test_a_server_that_moved_is_found_again_without_waiting_for_the_renewal(make_proxy,
                                                                          servers, tmp_path):
    """The server comes back at another address (a container restarted): the first failed
    connection makes the proxy ask DNS again, instead of going on with the old address
    until the 30 s renewal."""
    moving = tmp_path / "moving-address"
    moving.write_text("127.0.0.2\n")  # no server there
    env = dict(shim_env(envproxy_bin()), DNS_SHIM_MOVING_FILE=str(moving))
    p = make_proxy(extra_yaml={"environments": {
                       "moved": env_at("db.moving.test", servers.dev.port)}},
                   env_overrides=env,
                   accounts=[Account("alice", "alice-pw", "dev",
                                     {"dev": "write", "moved": "write"})])
    conn = p.connect()
    with pytest.raises(pymysql.err.OperationalError):
        with conn.cursor() as cur:
            cur.execute("/* env=moved */ SELECT 1")
    moving.write_text("127.0.0.1\n")
    deadline = time.monotonic() + 8
    while True:
        try:
            with conn.cursor() as cur:
                cur.execute("/* env=moved */ SELECT @@port")
                assert cur.fetchall() == ((servers.dev.port,),)
            break
        except pymysql.err.OperationalError as e:
            assert time.monotonic() < deadline, f"still not found at the new address: {e}"
            time.sleep(0.3)
    conn.close()
    assert "resolves to 127.0.0.1" in p.log_text()
