"""Multiplexing: a session's backend connection goes back to the pool after each statement
unless the session holds state that lives in that connection."""

import threading
import time

import pymysql
import pytest


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@pytest.fixture
def small_pool(make_proxy):
    return make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 3,
                                                                     "wait_timeout": "10s"}}}})


def backend_connections(servers):
    return servers.sql("dev", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                              "WHERE USER = 'app' AND DB IS NOT NULL")[0][0]


def test_many_sessions_share_a_small_pool(small_pool, servers):
    base = backend_connections(servers)
    conns = [small_pool.connect(autocommit=True) for _ in range(30)]
    for round_ in range(3):
        for i, c in enumerate(conns):
            assert one(c, f"SELECT {i} + {round_}") == ((i + round_,),)
    assert backend_connections(servers) - base <= 3
    errors = []

    def worker(c, i):
        try:
            for _ in range(5):
                assert one(c, f"SELECT {i}, SLEEP(0.01)")[0][0] == i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(c, i)) for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    for c in conns:
        c.close()


def test_user_variables_pin_the_session(small_pool):
    a = small_pool.connect(autocommit=True)
    b = small_pool.connect(autocommit=True)
    one(a, "SET @x = 42")
    for _ in range(5):
        one(b, "SELECT 1")  # other sessions keep using the pool
        assert one(a, "SELECT @x") == ((42,),)
    a.close()
    b.close()


def test_temporary_tables_and_transactions_stay_on_their_connection(small_pool):
    a = small_pool.connect(autocommit=True)
    one(a, "CREATE TEMPORARY TABLE mx_tmp (id INT)")
    one(a, "INSERT INTO mx_tmp VALUES (1), (2)")
    others = [small_pool.connect(autocommit=True) for _ in range(4)]
    for o in others:
        one(o, "SELECT 1")
    assert one(a, "SELECT COUNT(*) FROM mx_tmp") == ((2,),)
    t = small_pool.connect(autocommit=True)
    one(t, "CREATE TABLE IF NOT EXISTS mx_t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
    one(t, "BEGIN")
    one(t, "INSERT INTO mx_t (v) VALUES (7)")
    for o in others:
        one(o, "SELECT 1")
    got = one(t, "SELECT LAST_INSERT_ID(), COUNT(*) FROM mx_t WHERE v = 7")
    assert got[0][0] > 0 and got[0][1] >= 1
    one(t, "ROLLBACK")
    for c in others + [a, t]:
        c.close()


def test_carried_variables_do_not_leak_to_other_sessions(small_pool):
    a = small_pool.connect(autocommit=True)
    one(a, "SET time_zone = '+07:00'")
    others = [small_pool.connect(autocommit=True) for _ in range(5)]
    for o in others:
        assert one(o, "SELECT @@time_zone")[0][0] != "+07:00"
    assert one(a, "SELECT @@time_zone") == (("+07:00",),)
    for c in others + [a]:
        c.close()


def test_database_follows_the_session(small_pool):
    a = small_pool.connect(autocommit=True)
    b = small_pool.connect(autocommit=True)
    one(a, "USE analytics")
    for _ in range(3):
        assert one(b, "SELECT DATABASE()") == (("shop",),)
        assert one(a, "SELECT DATABASE()") == (("analytics",),)
    a.close()
    b.close()


def test_multiplex_can_be_turned_off(make_proxy, servers):
    p = make_proxy(extra_yaml={"environments": {"dev": {"pool": {"max": 2, "multiplex": False,
                                                                  "wait_timeout": "1s"}}}})
    a = p.connect(autocommit=True)
    b = p.connect(autocommit=True)
    one(a, "SELECT 1")
    one(b, "SELECT 1")
    c = p.connect(autocommit=True)
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(c, "SELECT 1")
    assert e.value.args[0] == 1040
    for x in (a, b, c):
        x.close()
