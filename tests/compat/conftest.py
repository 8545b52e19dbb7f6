"""pytest fixtures for the compatibility suite (docs/compat.md).

The fixtures of tests/integration are reused as they are: servers, proxy, make_proxy and
the checks made after every test (sanitizer reports, crashes, restarts). When
tests/integration runs in the same pytest run, its MariaDB servers are shared rather
than started a second time.

Added here:

java_classes  session: tests/compat/java/Compat.java compiled with javac (a temp dir)
node_dir      session: tests/compat/node with its node_modules installed by `npm ci`

compat_helpers.py has run_checks(), which runs such a program and collects its results.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
for _p in (INTEGRATION, HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from compat_helpers import CONNECTOR_J_JAR, JAVA_DIR, NODE_DIR  # noqa: E402
from harness import HarnessError, Servers  # noqa: E402


def _load_integration_conftest():
    # Loaded under a name of its own: pytest imports conftest files as `conftest`, so a
    # plain `import conftest` here would find this very module.
    spec = importlib.util.spec_from_file_location("envproxy_integration_conftest",
                                                  INTEGRATION / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_it = _load_integration_conftest()

# The integration fixtures and hooks, bound to this directory.
proxy = _it.proxy
make_proxy = _it.make_proxy
_after_each_test = _it._after_each_test
pytest_configure = _it.pytest_configure
pytest_runtest_makereport = _it.pytest_runtest_makereport


def _servers_of_the_integration_run(request):
    """The Servers that tests/integration's own `servers` fixture started in this run,
    if it did; None otherwise (or if this pytest's internals are not as expected)."""
    try:
        defs = request._fixturemanager._arg2fixturedefs.get("servers", [])
    except AttributeError:
        return None
    target = (INTEGRATION / "conftest.py").resolve()
    for fixturedef in defs:
        func = getattr(fixturedef, "func", None)
        code = getattr(func, "__code__", None)
        if code is None or Path(code.co_filename).resolve() != target:
            continue
        cached = getattr(fixturedef, "cached_result", None)
        if cached and len(cached) >= 3 and cached[2] is None and isinstance(cached[0], Servers):
            return cached[0]
    return None


@pytest.fixture(scope="session")
def servers(request):
    """The dev and prod MariaDB servers: those of tests/integration when it ran first in
    this pytest run, else a pair of our own (stopped at the end of the run)."""
    shared = _servers_of_the_integration_run(request)
    if shared is not None:
        return shared
    s = Servers()
    keep = os.environ.get("ENVPROXY_KEEP_SERVERS") == "1"
    request.addfinalizer(lambda: s.cleanup(keep=keep))
    s.start_all()
    return s


def pytest_report_header(config):
    parts = []
    if CONNECTOR_J_JAR.exists():
        parts.append(f"Connector/J {CONNECTOR_J_JAR.resolve().name}")
    lock = NODE_DIR / "package-lock.json"
    if lock.exists():
        try:
            version = json.loads(lock.read_text())["packages"]["node_modules/mysql2"]["version"]
            parts.append(f"mysql2 {version}")
        except (KeyError, ValueError):
            pass
    try:
        import sqlalchemy
        parts.append(f"SQLAlchemy {sqlalchemy.__version__}")
    except ImportError:
        parts.append("SQLAlchemy missing")
    return "compat clients: " + ", ".join(parts)


# --------------------------------------------------------------------------------------
# External check programs (Java, Node)

JAVAC_TIMEOUT = 120
NPM_TIMEOUT = 300


def _need(tool, hint):
    path = shutil.which(tool)
    if not path:
        raise HarnessError(f"{tool} not found: {hint} (scripts/install-deps.sh installs it)")
    return path


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory):
    """A directory holding Compat.class, compiled now from tests/compat/java."""
    _need("javac", "the JDK (default-jdk-headless) is needed")
    if not CONNECTOR_J_JAR.exists():
        raise HarnessError(f"{CONNECTOR_J_JAR} missing: install libmariadb-java")
    out = tmp_path_factory.mktemp("java-classes")
    r = subprocess.run(["javac", "-encoding", "UTF-8", "-Xlint:none", "-cp", str(CONNECTOR_J_JAR),
                        "-d", str(out), str(JAVA_DIR / "Compat.java")],
                       capture_output=True, text=True, timeout=JAVAC_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise HarnessError(f"javac failed:\n{r.stdout}{r.stderr}")
    return out


@pytest.fixture(scope="session")
def node_dir():
    """tests/compat/node with node_modules installed from package-lock.json.

    `npm ci` runs only when node_modules is missing or older than the lock file."""
    _need("node", "Node.js is needed")
    npm = _need("npm", "npm is needed")
    lock = NODE_DIR / "package-lock.json"
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=NPM_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise HarnessError(f"npm ci failed in {NODE_DIR}:\n{r.stdout}{r.stderr}")
    return NODE_DIR
