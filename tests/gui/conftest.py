"""pytest fixtures for the browser checks of GUI tools (tests/gui, `make compat-gui`).

The fixtures of tests/compat (and through it tests/integration) are reused: servers, proxy,
make_proxy and the checks after every test. Added here:

adminer   module: PHP's built-in web server on a free loopback port serving Debian's
          Adminer (/usr/share/adminer); its base URL
phpmyadmin module: the same for Debian's phpMyAdmin, with a configuration of its own (a
          temporary config.inc.php naming the module's proxy; /etc/phpmyadmin is not read)
browser   module: headless Chromium driven by Selenium (chromium-driver), a fresh profile
"""

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
COMPAT = HERE.parent / "compat"
INTEGRATION = HERE.parent / "integration"
for _p in (INTEGRATION, COMPAT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from harness import HarnessError, free_port  # noqa: E402

_spec = importlib.util.spec_from_file_location("envproxy_compat_conftest", COMPAT / "conftest.py")
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)

servers = _compat.servers
proxy = _compat.proxy
make_proxy = _compat.make_proxy
_after_each_test = _compat._after_each_test
pytest_configure = _compat.pytest_configure
pytest_runtest_makereport = _compat.pytest_runtest_makereport

ADMINER_DIR = Path("/usr/share/adminer")
WEB_START_TIMEOUT = 15
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def _need(path, package):
    if not Path(path).exists():
        raise HarnessError(f"{path} missing: install {package} (scripts/install-deps.sh --gui)")


def _php_server(docroot, script, php_args=()):
    """Starts `php -S` on a free loopback port; yields the URL of script, then stops it."""
    if not shutil.which("php"):
        raise HarnessError("php missing: install php-cli (scripts/install-deps.sh --gui)")
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(["php", *php_args, "-S", f"127.0.0.1:{port}", "-t", str(docroot)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/{script}"
    deadline = time.monotonic() + WEB_START_TIMEOUT
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read(100)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise HarnessError("php -S did not start serving Adminer")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def adminer():
    _need(ADMINER_DIR / "adminer.php", "adminer")
    yield from _php_server(ADMINER_DIR, "adminer.php")


PHPMYADMIN_DIR = Path("/usr/share/phpmyadmin")


@pytest.fixture(scope="module")
def phpmyadmin(proxy, tmp_path_factory):
    """phpMyAdmin with one server, the module's proxy, and cookie login. Its configuration
    file is chosen by defining CONFIG_FILE before phpMyAdmin does (auto_prepend_file)."""
    _need(PHPMYADMIN_DIR / "index.php", "phpmyadmin")
    d = tmp_path_factory.mktemp("phpmyadmin")
    (d / "tmp").mkdir()
    (d / "config.inc.php").write_text(
        "<?php\n"
        "$cfg['blowfish_secret'] = 'envproxy-compat-test-secret-32by';\n"
        "$cfg['Servers'][1]['auth_type'] = 'cookie';\n"
        "$cfg['Servers'][1]['host'] = '127.0.0.1';\n"
        f"$cfg['Servers'][1]['port'] = '{proxy.port}';\n"
        "$cfg['CheckConfigurationPermissions'] = false;\n"
        "$cfg['VersionCheck'] = false;\n"
        "$cfg['SendErrorReports'] = 'never';\n"
        f"$cfg['TempDir'] = '{d / 'tmp'}';\n")
    (d / "prepend.php").write_text(f"<?php\ndefine('CONFIG_FILE', '{d / 'config.inc.php'}');\n")
    yield from _php_server(PHPMYADMIN_DIR, "index.php",
                           ["-d", "display_errors=0", "-d", f"auto_prepend_file={d / 'prepend.php'}"])


@pytest.fixture(scope="module")
def browser():
    _need("/usr/bin/chromium", "chromium")
    _need("/usr/bin/chromedriver", "chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise HarnessError("python3-selenium missing (scripts/install-deps.sh --gui)")
    profile = tempfile.mkdtemp(prefix="envproxy-chromium-")
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
