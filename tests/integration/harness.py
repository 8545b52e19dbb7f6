"""Integration-test harness: throw-away MariaDB servers and envproxy processes.

Everything listens on 127.0.0.1 on ports picked free at run time. The pytest fixtures
built on these classes live in conftest.py; docs/testing.md describes how to use them.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pymysql

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
FIXTURES = REPO / "tests" / "fixtures"

BACKEND_USER = "app"
BACKEND_PASSWORD = "app-secret"
BACKEND_PASSWORD_VAR = "TEST_DB_PASSWORD"

SERVER_START_TIMEOUT = 60  # the script itself gives up after 30 s
PROXY_READY_TIMEOUT = 10
PROXY_STOP_TIMEOUT = 10
CLI_TIMEOUT = 30

# Text that a sanitizer prints when it finds something.
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


class HarnessError(Exception):
    """The harness could not set something up (not a failure of the code under test)."""


class ProxyStartError(Exception):
    """The proxy exited, or did not listen, within the start-up timeout."""


def envproxy_bin():
    """Path of the proxy binary under test: $ENVPROXY_BIN, else build/envproxy."""
    return os.environ.get("ENVPROXY_BIN") or str(REPO / "build" / "envproxy")


_reserved_ports = set()
_port_lock = threading.Lock()


def free_port():
    """A loopback TCP port that nobody listens on now, never the same one twice per run."""
    with _port_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _reserved_ports:
                _reserved_ports.add(port)
                return port
    raise HarnessError("no free loopback port found")


def port_open(port, host="127.0.0.1", timeout=0.5):
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """True when process pid exists and is not a zombie (an orphan's zombie can linger
    until a slow init reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------
# MariaDB servers


class MariaDB:
    """One MariaDB server run by scripts/mariadb-test.sh in its own directory.

    The first start seeds it; later starts reuse the data and the port as they were.
    """

    def __init__(self, name, basedir, port, seed):
        self.name = name
        self.dir = Path(basedir) / name
        self.datadir = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self.error_log = self.dir / "error.log"
        self.port = port
        self.seed = Path(seed)
        self.pid = None

    def _start_cmd(self):
        return [str(SCRIPTS / "mariadb-test.sh"), "start", str(self.dir), str(self.port),
                self.name, str(self.seed)]

    def _spawn_start(self):
        # A new session keeps a Ctrl-C in the terminal away from the server: the
        # harness stops it itself.
        return subprocess.Popen(self._start_cmd(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True)

    def _finish_start(self, proc):
        try:
            out, err = proc.communicate(timeout=SERVER_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise HarnessError(f"{self.name}: mariadb-test.sh start timed out\n{err}")
        if proc.returncode != 0:
            raise HarnessError(f"{self.name}: mariadb-test.sh start failed "
                               f"(exit {proc.returncode})\n{err}")
        lines = out.split()
        if not lines or not lines[-1].isdigit():
            raise HarnessError(f"{self.name}: no PID from mariadb-test.sh: {out!r} {err}")
        self.pid = int(lines[-1])

    def start(self):
        """Starts the server and waits until it answers; raises HarnessError if not."""
        self._finish_start(self._spawn_start())

    def stop(self):
        """Stops the server (SIGTERM, then SIGKILL after 30 s); a no-op if not running."""
        r = subprocess.run([str(SCRIPTS / "mariadb-test.sh"), "stop", str(self.dir)],
                           capture_output=True, text=True, timeout=SERVER_START_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise HarnessError(f"{self.name}: mariadb-test.sh stop failed\n{r.stderr}")
        self.pid = None

    def running(self):
        return self.pid is not None and pid_alive(self.pid)

    def connect(self, database=None, **kw):
        """A pymysql connection as root over the server's unix socket (autocommit on)."""
        args = dict(unix_socket=str(self.socket), user="root", password="",
                    charset="utf8mb4", autocommit=True, connect_timeout=5,
                    read_timeout=60, database=database)
        args.update(kw)
        return pymysql.connect(**args)

    def sql(self, statement, database=None):
        """Runs one statement as root and returns its rows (a list of tuples)."""
        conn = self.connect(database=database)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()

    def __repr__(self):
        return f"MariaDB({self.name}, port={self.port}, dir={self.dir})"


class Servers:
    """The dev and prod servers of a test run.

    servers.dev / servers.prod (or servers['dev']) are MariaDB objects with .port,
    .datadir, .socket; sql(env, statement) runs a statement there as root; stop(env)
    and start(env) take one server down and bring it back on the same port and data.
    """

    ENVS = ("dev", "prod")

    def __init__(self, basedir=None):
        self.basedir = Path(basedir or tempfile.mkdtemp(prefix="envproxy-it-", dir="/tmp"))
        self.dev = MariaDB("dev", self.basedir, free_port(), FIXTURES / "seed-dev.sql")
        self.prod = MariaDB("prod", self.basedir, free_port(), FIXTURES / "seed-prod.sql")

    def __getitem__(self, env):
        if env not in self.ENVS:
            raise KeyError(env)
        return getattr(self, env)

    def all(self):
        return [self.dev, self.prod]

    def start_all(self):
        """Starts both servers in parallel; raises HarnessError if either fails."""
        procs = [(s, s._spawn_start()) for s in self.all()]
        errors = []
        for server, proc in procs:
            try:
                server._finish_start(proc)
            except HarnessError as e:
                errors.append(str(e))
        if errors:
            raise HarnessError("\n".join(errors))

    def stop_all(self):
        """Stops both servers in parallel."""
        errors = []

        def stop(server):
            try:
                server.stop()
            except (HarnessError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))

        threads = [threading.Thread(target=stop, args=(s,)) for s in self.all()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise HarnessError("\n".join(errors))

    def cleanup(self, keep=False):
        """Stops both servers and removes their directory (kept when keep is true)."""
        try:
            self.stop_all()
        finally:
            if not keep:
                shutil.rmtree(self.basedir, ignore_errors=True)

    def sql(self, env, statement, database=None):
        return self[env].sql(statement, database=database)

    def stop(self, env):
        self[env].stop()

    def start(self, env):
        self[env].start()

    def restart_stopped(self):
        """Starts again any server a test left stopped; returns their names."""
        restarted = []
        for server in self.all():
            if not server.running():
                server.start()
                restarted.append(server.name)
        return restarted


# --------------------------------------------------------------------------------------
# Configuration files


class Account:
    def __init__(self, name, password, default_env, grants):
        self.name = name
        self.password = password
        self.default_env = default_env
        self.grants = dict(grants)


# The accounts every Proxy gets unless told otherwise.
ACCOUNTS = [
    Account("alice", "alice-pw", "dev", {"dev": "write", "prod": "read"}),
    Account("bob", "bob-pw", "prod", {"prod": "read"}),
    Account("carol", "carol-pw", "dev", {"dev": "read"}),
]

_PLAIN = re.compile(r"^[A-Za-z0-9_./$@][A-Za-z0-9_./${}:@*+-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    s = str(value)
    looks_numeric = re.fullmatch(
        r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+", s) is not None
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS and not looks_numeric:
        return s
    escaped = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_yaml(value, indent=0):
    """Renders dicts, lists and scalars as block-style YAML."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append(f"{pad}{k}: {{}}")
            elif isinstance(v, list):
                lines.append(f"{pad}{k}: []")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 2).lstrip(" ")
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def merge_config(base, extra):
    """Merges extra into base, recursively for dicts; a None value deletes the key."""
    for k, v in extra.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_config(base[k], v)
        else:
            base[k] = v
    return base


_sanitizer_cache = {}


def is_sanitizer_build(path):
    """True when the binary at path was linked with ASan or UBSan."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _sanitizer_cache:
        with open(path, "rb") as f:
            data = f.read()
        _sanitizer_cache[key] = b"__asan_init" in data or b"__ubsan_handle" in data
    return _sanitizer_cache[key]


# --------------------------------------------------------------------------------------
# The proxy


class Proxy:
    """One envproxy process with a generated configuration in its own directory.

    Proxy(tmpdir, servers) writes tmpdir/proxy.yaml (listen on a free port, threads 2,
    accounts in tmpdir/envproxy.db, environments dev (read_write) and prod (read_only),
    both database shop as user app with the password from ${TEST_DB_PASSWORD}), creates
    the accounts in ACCOUNTS with the CLI and starts `envproxy -c proxy.yaml run`.

    extra_yaml: a dict merged into the generated configuration (None deletes a key), or
        text appended to the file as it is.
    env_overrides: variables for the proxy's environment (None removes one).
    accounts: True for ACCOUNTS, a list of Account for others, False for none.
    start: False to only write the files; call start() later.
    """

    def __init__(self, tmpdir, servers, extra_yaml=None, env_overrides=None,
                 accounts=True, start=True, binary=None):
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.servers = servers
        self.binary = os.path.abspath(binary or envproxy_bin())
        if not os.access(self.binary, os.X_OK):
            raise HarnessError(f"envproxy binary not found or not executable: {self.binary}"
                               " (run `make`, or set ENVPROXY_BIN)")
        self.config_path = self.dir / "proxy.yaml"
        self.accounts_path = self.dir / "envproxy.db"
        self.log_path = self.dir / "envproxy.log"
        self.port = free_port()
        self.env = self._environment(env_overrides or {})
        self.proc = None
        self._signals_sent = set()
        self._expect_exit = False
        self._reported = set()
        self._log_checked = 0
        self.stop_timed_out = False
        self._cli_crash = None
        self.write_config(extra_yaml)
        if accounts:
            for a in ACCOUNTS if accounts is True else accounts:
                self.add_user(a.name, a.password, a.default_env, a.grants)
        if start:
            self.start()

    # ---- files

    def base_config(self):
        pool = {"max": 10, "connect_timeout": "2s", "wait_timeout": "2s"}
        return {
            "listen": f"127.0.0.1:{self.port}",
            "threads": 2,
            "accounts": str(self.accounts_path),
            "default_environment": "dev",
            "environments": {
                "dev": {
                    "description": "Development",
                    "host": "127.0.0.1",
                    "port": self.servers.dev.port,
                    "user": BACKEND_USER,
                    "password": "${%s}" % BACKEND_PASSWORD_VAR,
                    "database": "shop",
                    "access": "read_write",
                    "pool": dict(pool),
                },
                "prod": {
                    "description": "Production",
                    "host": "127.0.0.1",
                    "port": self.servers.prod.port,
                    "user": BACKEND_USER,
                    "password": "${%s}" % BACKEND_PASSWORD_VAR,
                    "database": "shop",
                    "access": "read_only",
                    "pool": dict(pool),
                },
            },
        }

    def write_config(self, extra_yaml=None):
        """(Re)writes proxy.yaml from the base configuration and extra_yaml."""
        config = self.base_config()
        text_tail = ""
        if isinstance(extra_yaml, dict):
            merge_config(config, extra_yaml)
        elif isinstance(extra_yaml, str):
            text_tail = extra_yaml if extra_yaml.endswith("\n") else extra_yaml + "\n"
        elif extra_yaml is not None:
            raise TypeError("extra_yaml must be a dict or a str")
        self.config = config
        self.config_path.write_text(to_yaml(config) + "\n" + text_tail, encoding="utf-8")

    def _environment(self, overrides):
        env = dict(os.environ)
        env[BACKEND_PASSWORD_VAR] = BACKEND_PASSWORD
        if is_sanitizer_build(self.binary):
            asan = "detect_leaks=1:abort_on_error=0"
            if env.get("ASAN_OPTIONS"):
                asan += ":" + env["ASAN_OPTIONS"]
            env["ASAN_OPTIONS"] = asan
            env["UBSAN_OPTIONS"] = "print_stacktrace=1" + (
                ":" + env["UBSAN_OPTIONS"] if env.get("UBSAN_OPTIONS") else "")
            supp = REPO / "tests" / "lsan.supp"
            if supp.exists() and "LSAN_OPTIONS" not in env:
                env["LSAN_OPTIONS"] = f"suppressions={supp}"
        for k, v in overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    # ---- command line

    def cli(self, *args, input=None, timeout=CLI_TIMEOUT, config=True):
        """Runs `envproxy -c proxy.yaml ARGS...`; returns the CompletedProcess (text).

        The run's stderr is also appended to the proxy log, so that a sanitizer report
        from a subcommand fails the test like one from the server.
        """
        cmd = [self.binary] + (["-c", str(self.config_path)] if config else []) + list(args)
        r = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           timeout=timeout, env=self.env, cwd=self.dir,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if r.stderr:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"--- stderr of: envproxy {' '.join(args)}\n{r.stderr}")
        if r.returncode < 0:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"--- envproxy {' '.join(args)} killed by signal {-r.returncode}\n")
            self._reported.discard("cli-crash")
            self._cli_crash = f"`envproxy {' '.join(args)}` died of signal {-r.returncode}"
        return r

    def _cli_ok(self, *args, input=None):
        r = self.cli(*args, input=input)
        if r.returncode != 0:
            raise HarnessError(f"`envproxy {' '.join(args)}` exited {r.returncode}:\n"
                               f"{r.stdout}{r.stderr}")
        return r

    def add_user(self, name, password, default_env=None, grants=None):
        """Creates an account with `user add --password-stdin` and `user grant`."""
        args = ["user", "add", name, "--password-stdin"]
        if default_env:
            args += ["--default-env", default_env]
        self._cli_ok(*args, input=password + "\n")
        for env, level in (grants or {}).items():
            self._cli_ok("user", "grant", name, env, level)

    # ---- process

    def start(self, wait=True, timeout=PROXY_READY_TIMEOUT):
        """Starts `envproxy -c proxy.yaml run`, its output appended to envproxy.log.

        With wait, returns once the port accepts connections; raises ProxyStartError
        (with the end of the log) if the process exits or the port stays closed.
        """
        if self.alive():
            raise HarnessError("proxy already running")
        self._signals_sent = set()
        self._expect_exit = False
        self.stop_timed_out = False
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path), "run"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.dir, start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=PROXY_READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._expect_exit = True
                raise ProxyStartError(f"envproxy exited with {self.proc.returncode} during "
                                      f"start-up; log:\n{tail(self.log_text())}")
            if port_open(self.port):
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise ProxyStartError(f"envproxy did not listen on 127.0.0.1:{self.port} "
                                      f"within {timeout}s; log:\n{tail(self.log_text())}")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    def signal(self, sig):
        """Sends a signal; the process may then exit without the harness calling it a crash
        (unless it dies of another signal)."""
        self._signals_sent.add(sig)
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGQUIT):
            self._expect_exit = True
        if self.alive():
            self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP: the proxy rereads its configuration and account store."""
        self.signal(signal.SIGHUP)

    def expect_exit(self):
        """Tells the harness that the process is about to exit by itself."""
        self._expect_exit = True

    def wait(self, timeout=PROXY_STOP_TIMEOUT):
        """Waits for the process to exit and returns its exit code (None on timeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=PROXY_STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout seconds; returns the exit code
        (negative: killed by that signal). A no-op returning the old code if stopped."""
        if self.proc is None:
            return None
        self._expect_exit = True
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.stop_timed_out = True
                self.signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        return self.proc.returncode

    # ---- observation

    def log_text(self):
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _proc_status(self, field):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except (OSError, TypeError):
            pass
        return None

    def rss_kb(self):
        """Resident memory now, in KiB (None when not running)."""
        return self._proc_status("VmRSS")

    def peak_rss_kb(self):
        """Highest resident memory so far, in KiB (None when not running)."""
        return self._proc_status("VmHWM")

    def problems(self):
        """What went wrong with this proxy and was not reported yet: sanitizer output in
        the log, a death by a signal nobody sent, an exit nobody expected, a stop that
        needed SIGKILL. Each problem is reported once."""
        found = []
        text = self.log_text()
        new = text[self._log_checked:]
        self._log_checked = len(text)
        hits = [ln for ln in new.splitlines() if any(m in ln for m in SANITIZER_MARKERS)]
        if hits:
            found.append("sanitizer report in the proxy log:\n" + "\n".join(hits[:20]))
        rc = self.returncode
        if rc is not None and self.proc is not None:
            key = ("exit", self.proc.pid)
            problem = None
            if self.stop_timed_out:
                problem = (f"envproxy did not exit within {PROXY_STOP_TIMEOUT}s of SIGTERM "
                           "and was killed")
            elif rc < 0 and -rc not in self._signals_sent:
                problem = f"envproxy died of signal {-rc} ({signal.Signals(-rc).name})"
            elif not self._expect_exit:
                problem = f"envproxy exited unexpectedly with code {rc}"
            if problem and key not in self._reported:
                self._reported.add(key)
                found.append(problem)
        if self._cli_crash and "cli-crash" not in self._reported:
            found.append(self._cli_crash)
            self._reported.add("cli-crash")
        if found:
            found.append(f"end of {self.log_path}:\n{tail(text)}")
        return found

    # ---- clients

    def connect(self, user="alice", password="alice-pw", database=None, **kw):
        """A pymysql connection to the proxy (utf8mb4, connect 5 s, read 30 s)."""
        args = dict(host="127.0.0.1", port=self.port, user=user, password=password,
                    database=database, charset="utf8mb4", connect_timeout=5,
                    read_timeout=30, write_timeout=30)
        args.update(kw)
        return pymysql.connect(**args)

    def query(self, sql, user="alice", password="alice-pw", database=None):
        """Runs one statement on a new connection; returns its rows (list of tuples)."""
        conn = self.connect(user=user, password=password, database=database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def __repr__(self):
        return f"Proxy(port={self.port}, pid={self.pid}, dir={self.dir})"


def mariadb_cli(proxy, user, password, *args, sql=None, timeout=30, input=None):
    """Runs the `mariadb` command-line client against the proxy.

    The last positional argument is the SQL (passed with -e) unless sql= is given;
    the others are extra client options, e.g. ('-D', 'shop@prod', '-N'); they come
    after the defaults, so they win. Output is tab-separated (--batch) in utf8mb4, and
    comments are sent (--comments) so that /* env=... */ hints reach the proxy.
    Returns (returncode, stdout, stderr); returncode is None after a timeout.
    """
    args = list(args)
    if sql is None and args and input is None:
        sql = args.pop()
    port = proxy.port if hasattr(proxy, "port") else int(proxy)
    cmd = ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{port}", f"-u{user}",
           f"-p{password}", "--batch", "--comments", "--default-character-set=utf8mb4",
           "--connect-timeout=5"] + args
    if sql is not None:
        cmd += ["-e", sql]
    try:
        r = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return (None, (e.stdout or b"").decode("utf-8", "replace"),
                f"timed out after {timeout}s")
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def stmt_driver_path():
    return os.environ.get("STMT_DRIVER") or str(REPO / "build" / "tests" / "stmt_driver")


class StmtDriver:
    """A stmt_driver process (tests/integration/stmt_driver.c): one Connector/C client
    connection using the prepared-statement API, one line in, one answer out."""

    def __init__(self, proxy, user="alice", password="alice-pw", db=None):
        args = [stmt_driver_path(), "127.0.0.1", str(proxy.port), user, password]
        if db:
            args.append(db)
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        first = self.proc.stdout.readline().strip()
        assert first.startswith("CONNECTED"), first
        self.thread_id = int(first.split()[1])

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        head = self.proc.stdout.readline().strip()
        if head.startswith("ROWS"):
            n = int(head.split()[1])
            rows = [self.proc.stdout.readline().rstrip("\n")[2:].split("|") for _ in range(n)]
            return ("ROWS", rows)
        return tuple(head.split(" ", 2)) if head.startswith("ERR") else tuple(head.split())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


# ---- the whole state of a server, for tests of the read-only wall ------------------------

# Global variables that change by themselves while a server runs (counters and positions
# it keeps as variables): left out of server_state().
VOLATILE_GLOBALS = {"gtid_binlog_pos", "gtid_binlog_state", "gtid_current_pos",
                    "gtid_slave_pos", "timestamp", "last_insert_id", "rand_seed1",
                    "rand_seed2", "warning_count", "error_count", "pseudo_thread_id",
                    "identity", "insert_id", "in_transaction"}
SYSTEM_SCHEMAS = ("information_schema", "performance_schema", "mysql", "sys")


def server_state(server):
    """What a read-only session must not be able to change on server (a MariaDB), read as
    root: databases, tables and their checksums (mysql.* included: users, grants, stored
    routines, plugins, servers), columns, views, routines, triggers, events, users with their
    grants, global variables, row and table locks held by transactions, user-level locks,
    the state of every sequence,
    files in the data directory (names and sizes outside InnoDB's own logs and the error
    log). Two calls with nothing done in between return equal dicts."""
    conn = server.connect()
    state = {}
    try:
        with conn.cursor() as cur:
            def q(sql):
                cur.execute(sql)
                return [tuple(r) for r in cur.fetchall()]

            state["databases"] = q("SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, "
                                   "DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                                   "ORDER BY 1")
            tables = q("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE FROM "
                       "information_schema.TABLES WHERE TABLE_SCHEMA NOT IN "
                       "('information_schema', 'performance_schema', 'sys') ORDER BY 1, 2")
            state["tables"] = tables
            checksums = {}
            for schema, name, ttype, engine in tables:
                if ttype == "SEQUENCE":  # its one row: the next value not yet handed out
                    checksums[f"{schema}.{name}"] = q(f"SELECT * FROM `{schema}`.`{name}`")
                    continue
                if ttype != "BASE TABLE" or engine in (None, "CSV") and schema == "mysql":
                    continue
                if schema == "mysql" and name in ("general_log", "slow_log", "innodb_index_stats",
                                                  "innodb_table_stats", "gtid_slave_pos"):
                    continue  # written by the server itself
                cur.execute(f"CHECKSUM TABLE `{schema}`.`{name}` EXTENDED")
                checksums[f"{schema}.{name}"] = cur.fetchall()[0][1]
            state["checksums"] = checksums
            state["columns"] = q("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, "
                                 "IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY, EXTRA FROM "
                                 "information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN "
                                 "('information_schema', 'performance_schema', 'sys') "
                                 "ORDER BY 1, 2, ORDINAL_POSITION")
            state["views"] = q("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM "
                               "information_schema.VIEWS ORDER BY 1, 2")
            state["routines"] = q("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, "
                                  "ROUTINE_DEFINITION FROM information_schema.ROUTINES "
                                  "ORDER BY 1, 2, 3")
            state["triggers"] = q("SELECT TRIGGER_SCHEMA, TRIGGER_NAME, ACTION_STATEMENT FROM "
                                  "information_schema.TRIGGERS ORDER BY 1, 2")
            state["events"] = q("SELECT EVENT_SCHEMA, EVENT_NAME, STATUS FROM "
                                "information_schema.EVENTS ORDER BY 1, 2")
            users = q("SELECT User, Host, Priv FROM mysql.global_priv ORDER BY 1, 2")
            state["users"] = users
            grants = {}
            for user, host, _ in users:
                try:
                    cur.execute(f"SHOW GRANTS FOR '{user}'@'{host}'")
                    grants[f"{user}@{host}"] = sorted(r[0] for r in cur.fetchall())
                except pymysql.MySQLError as e:
                    grants[f"{user}@{host}"] = f"error {e.args[0]}"
            state["grants"] = grants
            state["globals"] = sorted((n.lower(), v) for n, v in q("SHOW GLOBAL VARIABLES")
                                      if n.lower() not in VOLATILE_GLOBALS)
            state["locking_transactions"] = q(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                "WHERE trx_rows_locked > 0 OR trx_tables_locked > 0 OR trx_state = 'LOCK WAIT'")
            state["tables_in_use"] = q("SHOW OPEN TABLES WHERE In_use > 0")
            try:
                state["user_locks"] = q("SELECT LOCK_MODE, LOCK_TYPE, TABLE_SCHEMA, TABLE_NAME "
                                        "FROM information_schema.METADATA_LOCK_INFO ORDER BY 1, 2, 3, 4")
            except pymysql.MySQLError:
                state["user_locks"] = "metadata_lock_info not available"
    finally:
        conn.close()
    files = []
    skip = ("ib_logfile", "ibdata", "ibtmp", "aria_log", "error.log", "mysqld.pid", ".sock",
            "ddl_recovery", "tc.log", "ib_buffer_pool", "undo00", "multi-master.info")
    for root, _dirs, names in os.walk(server.datadir):
        for n in names:
            if any(k in n for k in skip):
                continue
            path = os.path.join(root, n)
            rel = os.path.relpath(path, server.datadir)
            try:
                size = os.path.getsize(path) if not n.endswith(".ibd") else None
            except OSError:
                continue
            files.append((rel, size))
    state["files"] = sorted(files)
    return state


def state_diff(before, after):
    """The keys of two server_state() dicts that differ, with both values (for messages)."""
    out = {}
    for k in before:
        if before[k] != after.get(k):
            b, a = before[k], after.get(k)
            if isinstance(b, (list, dict)) and isinstance(a, (list, dict)):
                bs = set(map(repr, b.items() if isinstance(b, dict) else b))
                as_ = set(map(repr, a.items() if isinstance(a, dict) else a))
                out[k] = {"gone": sorted(bs - as_)[:20], "new": sorted(as_ - bs)[:20]}
            else:
                out[k] = {"before": b, "after": a}
    return out
