"""pytest fixtures for the integration tests (the classes behind them are in harness.py).

servers     session: the dev and prod MariaDB servers (harness.Servers)
proxy       module:  a running envproxy with the standard configuration (harness.Proxy)
make_proxy  function: factory for proxies with their own configuration,
            make_proxy(extra_yaml=..., env_overrides=..., accounts=..., start=True)

After every test, each proxy the fixtures started is checked: sanitizer output in its
log, a death by a signal nobody sent or an exit nobody expected fails the test. A
server the test left stopped is started again, and a module proxy that is no longer
running is restarted, so that one test's damage does not spill into the next.
"""

import os
import signal

import pytest

from harness import (HarnessError, Proxy, ProxyStartError, Servers, envproxy_bin,
                     is_sanitizer_build, tail)

# Proxies the fixtures started and that are still to be checked.
_tracked = []
# The module-scoped ones among them: restarted after a test that left them down.
_module_proxies = []


def _on_sigterm(signum, frame):
    # Turns a SIGTERM (a CI timeout, say) into the same clean-up as Ctrl-C: pytest then
    # runs the fixtures' finalizers, which stop the servers and proxies.
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _on_sigterm)


def pytest_report_header(config):
    path = envproxy_bin()
    if not os.path.exists(path):
        kind = "missing"
    elif is_sanitizer_build(path):
        kind = "sanitizer build"
    else:
        kind = "plain build"
    return f"envproxy: {path} ({kind})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A failing test's report carries the end of each running proxy's log.
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for p in _tracked:
            report.sections.append((f"end of {p.log_path}", tail(p.log_text(), 30)))


def _finish(p):
    """Stops a tracked proxy and fails the current test on any problem it shows."""
    try:
        p.stop()
        problems = p.problems()
    finally:
        if p in _tracked:
            _tracked.remove(p)
        if p in _module_proxies:
            _module_proxies.remove(p)
    if problems:
        pytest.fail(f"{p!r}:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def servers(request):
    s = Servers()
    keep = os.environ.get("ENVPROXY_KEEP_SERVERS") == "1"
    request.addfinalizer(lambda: s.cleanup(keep=keep))
    s.start_all()
    return s


@pytest.fixture(scope="module")
def proxy(servers, tmp_path_factory):
    p = Proxy(tmp_path_factory.mktemp("proxy"), servers, start=False)
    _tracked.append(p)
    _module_proxies.append(p)
    try:
        p.start()
    except ProxyStartError:
        _finish(p)
        raise
    yield p
    _finish(p)


@pytest.fixture
def make_proxy(servers, tmp_path_factory):
    made = []

    def factory(start=True, **kwargs):
        p = Proxy(tmp_path_factory.mktemp("proxy"), servers, start=False, **kwargs)
        made.append(p)
        _tracked.append(p)
        if start:
            p.start()
        return p

    yield factory
    problems = []
    for p in made:
        try:
            _finish(p)
        except pytest.fail.Exception as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _after_each_test(request):
    yield
    problems = []
    for p in list(_tracked):
        found = p.problems()
        if found:
            problems.append(f"{p!r}:\n" + "\n".join(found))
    for p in list(_module_proxies):
        if not p.alive():
            try:
                p.start()
            except (ProxyStartError, HarnessError) as e:
                problems.append(f"restarting {p!r} after the test failed: {e}")
    if "servers" in request.fixturenames:
        s = request.getfixturevalue("servers")
        try:
            s.restart_stopped()
        except HarnessError as e:
            problems.append(f"restarting a server after the test failed: {e}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def start_module_proxy(request, servers, tmp_path_factory, extra_yaml):
    """For module fixtures that need a proxy with their own configuration: started now,
    checked and stopped when the module ends, restarted after a test that killed it."""
    p = Proxy(tmp_path_factory.mktemp("proxy"), servers, extra_yaml=extra_yaml, start=False)
    _tracked.append(p)
    _module_proxies.append(p)
    request.addfinalizer(lambda: _finish(p))
    try:
        p.start()
    except ProxyStartError:
        _finish(p)
        raise
    return p


@pytest.fixture(scope="module")
def make_module_proxy(request, servers, tmp_path_factory):
    """Factory for a module's own proxy: make_module_proxy(extra_yaml)."""
    def factory(extra_yaml):
        return start_module_proxy(request, servers, tmp_path_factory, extra_yaml)
    return factory
