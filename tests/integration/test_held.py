"""What one session may hold, and for how long.

A session keeps a backend connection per environment where it has state (a transaction,
user variables, temporary tables, ...), up to 8 at once. A ninth environment must not
make the proxy give one of them back behind the session's back: the statement is refused
and the state everywhere else stays. Fan-out and __envs jobs end on time: a statement
that does not answer within their 10 s is killed on the server and its connection
closed, so repeating it cannot pile up backend connections; an account with no
environment gets an empty answer at once. The answers all fan-outs hold at once are bounded
for the whole process."""

import threading
import time

import pymysql
import pytest

from harness import BACKEND_PASSWORD_VAR, BACKEND_USER, Account, is_sanitizer_build

EXTRA = [f"e{i}" for i in range(3, 11)]  # with dev: nine writable environments


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def many_envs_yaml(servers):
    envs = {}
    for name in EXTRA:
        envs[name] = {
            "host": "127.0.0.1", "port": servers.dev.port, "user": BACKEND_USER,
            "password": "${%s}" % BACKEND_PASSWORD_VAR, "database": "shop",
            "access": "read_write", "pool": {"max": 10, "multiplex": True},
        }
    return {"environments": envs}


@pytest.fixture(scope="module", autouse=True)
def held_tables(servers):
    servers.sql("dev", "CREATE DATABASE IF NOT EXISTS held")
    for i in range(1, 11):
        servers.sql("dev", f"CREATE TABLE IF NOT EXISTS held.t{i} (v INT) ENGINE=InnoDB")
    yield
    servers.sql("dev", "DROP DATABASE IF EXISTS held")


@pytest.fixture
def many(make_proxy, servers):
    grants = {"dev": "write", "prod": "read"}
    grants.update({name: "write" for name in EXTRA})
    return make_proxy(extra_yaml=many_envs_yaml(servers),
                      accounts=[Account("alice", "alice-pw", "dev", grants),
                                Account("nobody", "nobody-pw", "e3", {"e3": "read"})])


def test_a_ninth_environment_with_state_is_refused_not_traded(many):
    conn = many.connect()
    envs = ["dev"] + EXTRA  # nine
    for i, env in enumerate(envs[:8], start=1):
        one(conn, f"/* env={env} */ SET @mark = {i}")
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(conn, f"/* env={envs[8]} */ SET @mark = 9")
    assert e.value.args[0] == 1105
    assert f"'{envs[8]}'" in e.value.args[1] and "8 environments" in e.value.args[1]
    # Every variable is where it was set: none of the eight connections was given back.
    for i, env in enumerate(envs[:8], start=1):
        assert one(conn, f"/* env={env} */ SELECT @mark") == ((i,),)
    # After a reset the session holds nothing, and the ninth is served.
    conn._execute_command(0x1f, b"")  # COM_RESET_CONNECTION
    conn._read_ok_packet()
    assert one(conn, f"/* env={envs[8]} */ SELECT @mark") == ((None,),)
    conn.close()


def test_transactions_in_nine_environments_commit_or_fail_loudly(many, servers):
    conn = many.connect()
    envs = ["dev"] + EXTRA
    refused = []
    for i, env in enumerate(envs, start=1):
        try:
            one(conn, f"/* env={env} */ BEGIN")
            one(conn, f"/* env={env} */ INSERT INTO held.t{i} VALUES ({i})")
        except pymysql.err.OperationalError as e:
            assert e.args[0] == 1105, e
            refused.append(env)
    assert refused == [envs[8]]
    for i, env in enumerate(envs[:8], start=1):
        one(conn, f"/* env={env} */ COMMIT")
    # Every transaction the session was told had run is committed.
    for i in range(1, 9):
        assert servers.sql("dev", f"SELECT v FROM held.t{i}") == [(i,)]
    assert not servers.sql("dev", "SELECT v FROM held.t9")
    conn.close()


def test_stateless_connections_make_room_for_a_ninth_environment(make_proxy, servers):
    # Sessions that never multiplex keep a connection per environment they visited; with
    # no state there, the oldest goes back to the pool and the session is served.
    yaml = many_envs_yaml(servers)
    for env in yaml["environments"].values():
        env["pool"]["multiplex"] = False
    yaml["environments"]["dev"] = {"pool": {"multiplex": False}}
    grants = {"dev": "write"}
    grants.update({name: "write" for name in EXTRA})
    p = make_proxy(extra_yaml=yaml, accounts=[Account("alice", "alice-pw", "dev", grants)])
    conn = p.connect()
    for round_ in range(2):
        for env in ["dev"] + EXTRA:
            assert one(conn, f"/* env={env} */ SELECT {round_}") == ((round_,),)
    conn.close()


def test_an_account_without_environments_is_answered_at_once(many):
    conn = many.connect(user="nobody", password="nobody-pw")
    assert one(conn, "SELECT 1") == ((1,),)
    many.cli("user", "revoke", "nobody", "e3")
    time.sleep(1.5)  # the account store is watched once a second
    start = time.monotonic()
    assert one(conn, "SELECT * FROM __envs.databases") == ()
    assert one(conn, "/* env=* */ SELECT 1") == ()
    assert time.monotonic() - start < 5  # the job's own deadline is 10 s
    conn.close()


def test_a_fanout_that_never_answers_is_killed_and_its_connections_closed(make_proxy,
                                                                         servers):
    p = make_proxy()
    conn = p.connect(read_timeout=30)
    # A root session holds the table: the fan-out's SELECT waits for its metadata lock
    # (lock_wait_timeout is a day).
    locker = servers["dev"].connect()
    one(locker, "LOCK TABLES held.t10 WRITE")

    def waiting():
        return [r for r in servers.sql("dev", "SELECT INFO FROM information_schema.PROCESSLIST "
                                              f"WHERE USER = '{BACKEND_USER}'")
                if r[0] and "held.t10" in r[0]]

    try:
        start = time.monotonic()
        got = one(conn, "/* env=dev,prod */ SELECT * FROM held.t10")
        took = time.monotonic() - start
        assert 9 < took < 20
        by_env = {r[0]: r[1] for r in got}
        assert set(by_env) == {"dev", "prod"}
        assert "no answer" in by_env["dev"]
        # The statement is stopped on the server and its connection closed, not left to
        # wait for the lock.
        deadline = time.monotonic() + 5
        while waiting() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert waiting() == []
    finally:
        locker.close()
    # The session goes on, and so does everyone else.
    assert one(conn, "SELECT 'next'") == (("next",),)
    other = p.connect(user="bob", password="bob-pw")
    assert one(other, "SELECT 1") == ((1,),)
    other.close()
    conn.close()


def test_fanout_answers_held_at_once_are_bounded_for_all_sessions(make_proxy, servers):
    # Each fan-out holds dev's 60 MB answer while prod waits for a lock (until the job's
    # 10 s): five of them would hold 300 MB, over the proxy's 256 MiB for all sessions.
    slow = {"pool": {"connect_timeout": "8s"}}  # five setups at once, on a sanitizer build
    p = make_proxy(extra_yaml={"environments": {"dev": slow, "prod": slow}})
    locker = servers["prod"].connect()
    one(locker, "LOCK TABLES shop.products WRITE")
    sql = ("/* env=dev,prod */ SELECT REPEAT('x', 1000000) AS v FROM seq_1_to_60 "
           "WHERE (SELECT COUNT(*) FROM shop.products) >= 0")
    results = [None] * 5

    def run(i):
        conn = p.connect(read_timeout=60)
        try:
            got = one(conn, sql)
            results[i] = sorted({(r[0], r[1]) for r in got})
        except pymysql.err.MySQLError as e:
            results[i] = e.args
        finally:
            conn.close()

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        locker.close()
    assert all(r is not None for r in results), results
    dev_errors = [dict(r)["dev"] for r in results]
    refused = [e for e in dev_errors if e and "256 MiB" in e]
    assert refused and all(e is None or e in refused for e in dev_errors), dev_errors
    if not is_sanitizer_build(p.binary):  # ASan keeps freed memory in its quarantine
        assert p.peak_rss_kb() < 900 * 1024
    # Once the answers are gone, a big fan-out fits again.
    conn = p.connect(read_timeout=40)
    got = one(conn, "/* env=dev,prod */ SELECT REPEAT('x', 1000000) FROM seq_1_to_30")
    assert len(got) == 60 and all(r[1] is None for r in got)
    conn.close()
