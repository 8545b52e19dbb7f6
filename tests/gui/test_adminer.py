"""Adminer 4.8 (Debian's package, served by PHP's built-in web server) driven in headless
Chromium through envproxy: log in with shop@prod as the database, see prod's tables and
the virtual schemas, a table's foreign keys, run a SELECT, and see the 1290 for an UPDATE."""

from urllib.parse import quote

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

PAGE_WAIT = 10  # seconds for a page's text to appear


def login(browser, adminer, proxy, db="shop@prod", user="alice", password="alice-pw"):
    """Logs in through Adminer's form (once per browser: the session cookie keeps it)."""
    base = f"{adminer}?server={quote(f'127.0.0.1:{proxy.port}')}&username={user}"
    browser.get(adminer)
    if browser.find_elements(By.NAME, "auth[server]"):
        browser.find_element(By.NAME, "auth[server]").send_keys(f"127.0.0.1:{proxy.port}")
        browser.find_element(By.NAME, "auth[username]").send_keys(user)
        browser.find_element(By.NAME, "auth[password]").send_keys(password)
        browser.find_element(By.NAME, "auth[db]").send_keys(db)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    else:
        browser.get(f"{base}&db={quote(db)}")
    return base


def body(browser):
    """The page's text (read again when the page was replaced while reading it)."""
    for _ in range(5):
        try:
            return browser.find_element(By.TAG_NAME, "body").text
        except StaleElementReferenceException:
            continue
    return browser.find_element(By.TAG_NAME, "body").text


def page_with(browser, url, text):
    """Opens url and waits (at most PAGE_WAIT s) until the page shows text; returns the
    page's text either way, for the assertion to show."""
    browser.get(url)
    try:
        WebDriverWait(browser, PAGE_WAIT).until(lambda d: text in body(d))
    except TimeoutException:
        pass
    return body(browser)


def run_sql(browser, base, db, sql):
    browser.get(f"{base}&db={quote(db)}&sql=")
    # The textarea sits under Adminer's syntax-highlighting layer: set it as a script would.
    browser.execute_script("document.getElementsByName('query')[0].value = arguments[0]", sql)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Execute]").click()
    return body(browser)


def test_login_with_db_at_env_lists_prods_tables_and_virtual_schemas(browser, adminer, proxy):
    login(browser, adminer, proxy)
    text = body(browser)
    assert "Database: shop@prod" in text
    for table in ("customers", "orders", "products", "types"):
        assert table in text
    dbs = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "select[name=db] option")]
    assert "billing" in dbs and "analytics" not in dbs  # prod's databases
    assert "__envs" in dbs and "__compare" in dbs


def test_server_page_names_the_envproxy_account(browser, adminer, proxy):
    """Adminer's "Logged as" is SELECT USER(): the envproxy account, not the backend's."""
    base = login(browser, adminer, proxy)
    text = page_with(browser, f"{base}&db=", "Logged as")  # the server's page
    assert "Logged as: alice@127.0.0.1" in text, text[:500]


def test_table_structure_shows_foreign_keys(browser, adminer, proxy):
    base = login(browser, adminer, proxy)
    text = page_with(browser, f"{base}&db={quote('shop@prod')}&table=orders", "Foreign keys")
    assert "Foreign keys" in text, (browser.current_url, text[:300])
    assert "customers" in text and "customer_id" in text


def test_select_runs_and_update_is_refused_with_1290(browser, adminer, proxy):
    base = login(browser, adminer, proxy)
    text = run_sql(browser, base, "shop@prod", "SELECT id, status FROM orders WHERE id = 3")
    assert "shipped" in text
    text = run_sql(browser, base, "shop@prod", "UPDATE orders SET status = 'x' WHERE id = 3")
    assert "1290" in text and "read-only" in text
