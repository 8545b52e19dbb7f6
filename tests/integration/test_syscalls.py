"""System calls on the statement path: a statement costs a read and a write on each side of
the proxy, and nothing per statement beyond that. Before, each statement also cost a FIONREAD
ioctl (libevent's socket bufferevent asks before every read) and a MSG_PEEK on the pooled
connection it borrowed (is it still open?).

A closed idle connection is still noticed without the peek: test_faults and test_pools stop
and restart servers under pooled connections."""
import shutil
import subprocess
import time

import pytest

STATEMENTS = 400


def test_no_fionread_and_no_peek_per_statement(make_proxy, tmp_path):
    """strace on the proxy while one client (autocommit, so its backend connection goes back
    to the pool after each statement and is borrowed again for the next) runs STATEMENTS
    statements: neither FIONREAD ioctls nor MSG_PEEK receives come with them (a few from
    housekeeping are allowed), while the receives that carry the statements do."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    p = make_proxy(extra_yaml={"log_level": "warn"})
    conn = p.connect(autocommit=True)
    cur = conn.cursor()
    for i in range(20):  # warm up: the pool's connection, the account, the session
        cur.execute(f"SELECT {i}")
        cur.fetchall()

    out = tmp_path / "strace.txt"
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=ioctl,recvfrom,recvmsg,read,readv", "-e", "signal=none",
         "-o", str(out), "-p", str(p.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # strace attaches to every thread before the first line it writes; wait for it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
            cur.execute("SELECT 'attach'")
            cur.fetchall()
            time.sleep(0.05)
        if not (out.exists() and out.stat().st_size):
            pytest.skip("strace could not attach to the proxy here")
        start = out.read_text().count("\n")
        for i in range(STATEMENTS):
            cur.execute(f"SELECT {i}")
            assert cur.fetchall() == ((i,),)
    finally:
        time.sleep(0.2)
        tracer.terminate()
        tracer.wait(10)
        conn.close()
    lines = out.read_text().splitlines()[start:]
    fionread = [x for x in lines if "FIONREAD" in x]
    peeks = [x for x in lines if "MSG_PEEK" in x]
    receives = [x for x in lines if ("recvfrom(" in x or "read(" in x or "readv(" in x)
                and "MSG_PEEK" not in x]
    assert len(receives) >= 2 * STATEMENTS, f"only {len(receives)} receives traced"
    assert len(fionread) < STATEMENTS // 20, f"{len(fionread)} FIONREAD for {STATEMENTS}"
    assert len(peeks) < STATEMENTS // 20, f"{len(peeks)} MSG_PEEK for {STATEMENTS}"
