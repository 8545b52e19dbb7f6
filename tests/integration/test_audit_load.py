"""The audit log under load: no statement is lost while the workers' buffers have room, a
full disk or a stalled one never holds up a client, and /metrics accounts for every record
(written, dropped, or lost to a write error).

AUDIT_LOAD_STATEMENTS sets how many statements the no-loss test sends (default 50,000;
`make audit-load` sends 1,000,000)."""
import os
import re
import subprocess
import threading
import time
import urllib.request

import MySQLdb
import pytest

from harness import free_port

STATEMENTS = int(os.environ.get("AUDIT_LOAD_STATEMENTS", "50000"))
CLIENTS = 64


def metrics(port):
    """The proxy's /metrics as {name or name{labels}: value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def audited(m):
    """Records the proxy handed to the audit log: statements and failed logins."""
    return (sum(v for k, v in m.items() if k.startswith("envproxy_statements_by_door_total"))
            + m.get("envproxy_logins_refused_total", 0))


def accounted(m):
    return (m["envproxy_audit_written_total"] + m["envproxy_audit_dropped_total"]
            + m["envproxy_audit_write_errors_total"])


def wait_for(pred, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def run_clients(p, n_clients, per_client, tag, seconds, slowest=None):
    """n_clients MySQLdb connections, each sending per_client statements `SELECT 'tag-c-i'`
    in a loop bounded by seconds. Returns the statements sent; raises the first error.
    slowest, when a list, receives each client's longest statement in seconds."""
    errors, done = [], [0] * n_clients

    def client(c):
        try:
            conn = MySQLdb.connect(host="127.0.0.1", port=p.port, user="alice",
                                   passwd="alice-pw", connect_timeout=10, read_timeout=30,
                                   write_timeout=30, autocommit=True)
            cur = conn.cursor()
            worst = 0.0
            deadline = time.monotonic() + seconds
            for i in range(per_client):
                if time.monotonic() > deadline:
                    raise AssertionError(f"client {c} sent only {i} of {per_client} "
                                         f"statements in {seconds}s")
                t0 = time.monotonic()
                cur.execute(f"SELECT '{tag}-{c}-{i}'")
                cur.fetchall()
                worst = max(worst, time.monotonic() - t0)
                done[c] += 1
            conn.close()
            if slowest is not None:
                slowest.append(worst)
        except Exception as e:  # reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"
    if errors:
        raise errors[0]
    return sum(done)


def test_no_statement_lost_with_64_clients(make_proxy, tmp_path):
    """64 clients send AUDIT_LOAD_STATEMENTS statements with the audit log on (and the
    default statement_timeout): every one of them is in the file exactly once, and /metrics
    agrees: lines written = lines in the file = records handed to the log, none dropped and
    none lost."""
    log = tmp_path / "audit.jsonl"
    port = free_port()
    p = make_proxy(extra_yaml={
        "audit_log": str(log), "http": f"127.0.0.1:{port}", "log_level": "warn",
        "environments": {"dev": {"pool": {"max": 32}}}})
    per = STATEMENTS // CLIENTS
    sent = run_clients(p, CLIENTS, per, "load", seconds=max(600, STATEMENTS // 500))
    assert sent == per * CLIENTS

    assert wait_for(lambda: accounted(metrics(port)) >= audited(metrics(port)), 60)
    m = metrics(port)
    assert m["envproxy_audit_dropped_total"] == 0
    assert m["envproxy_audit_write_errors_total"] == 0
    assert m["envproxy_audit_written_total"] == audited(m)

    seen = set()
    lines = 0
    pattern = re.compile(r'"sql":"SELECT \'load-(\d+)-(\d+)\'"')
    with open(log, encoding="utf-8") as f:
        for line in f:
            lines += 1
            hit = pattern.search(line)
            if hit:
                key = (int(hit.group(1)), int(hit.group(2)))
                assert key not in seen, f"statement {key} written twice"
                seen.add(key)
    assert lines == m["envproxy_audit_written_total"]
    missing = per * CLIENTS - len(seen)
    assert missing == 0, f"{missing} statements missing from the audit log"


def test_shutdown_writes_every_queued_record(make_proxy, tmp_path):
    """SIGTERM right after the last answer: the file holds every statement's line."""
    log = tmp_path / "audit.jsonl"
    p = make_proxy(extra_yaml={"audit_log": str(log), "log_level": "warn"})
    sent = run_clients(p, 8, 500, "stop", seconds=300)
    assert p.stop() == 0
    text = log.read_text()
    found = set(re.findall(r"SELECT 'stop-(\d+)-(\d+)'", text))
    assert len(found) == sent == 8 * 500


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs mounted for the test (root only), unmounted after it."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_full_disk_counts_lost_lines_and_serves_clients(make_proxy, tiny_disk):
    """The audit log on a 256 KiB file system that fills up: every client is served without
    a stall (no statement waits on the disk), the lines that could not be written are
    counted as write errors, and written + dropped + lost = every record."""
    log = tiny_disk / "audit.jsonl"
    port = free_port()
    p = make_proxy(extra_yaml={"audit_log": str(log), "http": f"127.0.0.1:{port}",
                               "log_level": "warn"})
    try:
        slowest = []
        # ~130 bytes a line: 16,000 lines are about 8 times what the disk holds.
        sent = run_clients(p, 16, 1000, "full", seconds=300, slowest=slowest)
        assert sent == 16000
        assert max(slowest) < 5, f"a statement took {max(slowest):.1f}s"
        assert wait_for(lambda: accounted(metrics(port)) >= audited(metrics(port)), 30)
        m = metrics(port)
        assert m["envproxy_audit_write_errors_total"] > 0
        assert accounted(m) == audited(m)
        assert m["envproxy_audit_written_total"] == log.read_text().count("\n")
        assert "No space left on device" in p.log_text()
        assert p.query("SELECT 'still served'") == [("still served",)]
    finally:
        p.stop()


def test_stalled_disk_drops_and_counts_without_stalling_clients(make_proxy, tmp_path):
    """The audit file is a FIFO whose reader does not read: the writer blocks in write(2),
    the workers' 64 KiB buffers fill and later records are dropped, counted in /metrics and
    reported in the log, while every client is served without a stall. Once the reader
    reads again, what was kept arrives whole: the lines read plus the drops are every
    record."""
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that the proxy's open succeeds
    port = free_port()
    got = bytearray()
    try:
        p = make_proxy(extra_yaml={"audit_log": str(fifo), "audit_buffer": "64KiB",
                                   "http": f"127.0.0.1:{port}", "log_level": "warn"})
        slowest = []
        sent = run_clients(p, 8, 1500, "stall", seconds=300, slowest=slowest)
        assert sent == 12000
        assert max(slowest) < 5, f"a statement took {max(slowest):.1f}s"
        m = metrics(port)
        assert m["envproxy_audit_dropped_total"] > 0
        assert wait_for(lambda: "dropped because a buffer was full" in p.log_text(), 5)

        # Read again, until every record is written or dropped.
        os.set_blocking(reader, False)

        def settled():
            try:
                while True:
                    chunk = os.read(reader, 1 << 16)
                    if not chunk:
                        break
                    got.extend(chunk)
            except BlockingIOError:
                pass
            mm = metrics(port)
            return accounted(mm) >= audited(mm)
        assert wait_for(settled, 30)
        # Every record is accounted for: what the writer wrote since the last read is in
        # the pipe now.
        for _ in range(3):
            time.sleep(0.1)
            settled()
        m = metrics(port)
        assert accounted(m) == audited(m)
        assert m["envproxy_audit_write_errors_total"] == 0
        assert got.count(b"\n") == m["envproxy_audit_written_total"]
        assert all(line.startswith(b'{"ts":') for line in bytes(got).splitlines())
    finally:
        # Keep reading while the proxy stops, so that its last lines have somewhere to go.
        stop = threading.Event()

        def sink():
            while not stop.is_set():
                try:
                    if not os.read(reader, 1 << 16):
                        time.sleep(0.01)
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError:
                    return
        t = threading.Thread(target=sink)
        t.start()
        try:
            if "p" in locals():
                p.stop()
        finally:
            stop.set()
            t.join(10)
            os.close(reader)
