"""Scale: 10,000 connected clients, mostly idle, served by a pool of 20 backend connections."""

import resource
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

CLIENTS = 10_000
POOL_MAX = 20
BUSY = 200  # clients running a statement at the same moment


def raise_fd_limit(want):
    """Raises this process's descriptor limit to want (within the hard limit, which only a
    privileged process may raise). Fails the test when the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            pytest.fail(f"the file descriptor hard limit is {hard}; this test needs {want} "
                        f"(one per client in this process, the same again in the proxy)")
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@pytest.fixture
def big(make_proxy):
    # The test process holds one socket per client, and so does the proxy (which raises its
    # soft limit to the hard one).
    raise_fd_limit(CLIENTS + 1024)
    return make_proxy(extra_yaml={
        "log_level": "warn",
        "environments": {"dev": {"pool": {"max": POOL_MAX, "wait_timeout": "60s"}}},
    })


def backend_connections(servers):
    """The backend account's connections with a database (the health checker has none)."""
    return servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                              "WHERE USER = 'app' AND DB IS NOT NULL")[0][0]


def test_ten_thousand_clients_share_twenty_backend_connections(big, servers):
    base = backend_connections(servers)
    conns = []
    try:
        for _ in range(CLIENTS):
            conns.append(big.connect(database="shop", autocommit=True, read_timeout=120))
        assert len(conns) == CLIENTS

        # 200 clients at once on a pool of 20: the ones beyond the pool wait their turn
        # (wait_timeout 60 s), none is refused.
        errors = []
        start = threading.Barrier(BUSY)

        def busy(i):
            try:
                c = conns[i * (CLIENTS // BUSY)]
                start.wait(60)
                with c.cursor() as cur:
                    cur.execute("SELECT %s, SLEEP(0.05)", (i,))
                    assert cur.fetchall()[0][0] == i
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(f"client {i}: {e!r}")

        threads = [threading.Thread(target=busy, args=(i,)) for i in range(BUSY)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:5]

        # Every one of the 10,000 sessions still works, with its own database.
        def ask(i):
            with conns[i].cursor() as cur:
                cur.execute("SELECT %s, DATABASE()", (i,))
                return cur.fetchall()[0]

        with ThreadPoolExecutor(max_workers=16) as ex:
            answers = list(ex.map(ask, range(CLIENTS)))
        assert answers == [(i, "shop") for i in range(CLIENTS)]

        assert backend_connections(servers) - base <= POOL_MAX
    finally:
        for c in conns:
            c.close()
