"""phpMyAdmin 5.2 (Debian's package, served by PHP's built-in web server) in headless
Chromium through envproxy. Its login form has no database field: the login name alice@prod
selects the environment. It then lists prod's databases and tables, and the foreign key of
orders on its relation page; its SQL page runs a SELECT and shows the 1290 for an UPDATE."""

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

PAGE_WAIT = 10


def page_source_with(browser, url, text):
    browser.get(url)
    try:
        WebDriverWait(browser, PAGE_WAIT).until(lambda d: text in d.page_source)
    except TimeoutException:
        pass
    return browser.page_source


def login(browser, phpmyadmin, user="alice@prod", password="alice-pw"):
    browser.get(phpmyadmin)
    if browser.find_elements(By.ID, "input_username"):
        browser.find_element(By.ID, "input_username").send_keys(user)
        browser.find_element(By.ID, "input_password").send_keys(password)
        browser.find_element(By.ID, "input_go").click()
        WebDriverWait(browser, PAGE_WAIT).until(
            lambda d: not d.find_elements(By.ID, "input_username"))


def test_login_name_with_env_lands_in_prod(browser, phpmyadmin):
    """alice@prod: the database list is prod's (billing, not dev's analytics)."""
    login(browser, phpmyadmin)
    src = page_source_with(browser, f"{phpmyadmin}?route=/server/databases", "billing")
    assert "billing" in src and "analytics" not in src


def test_navigation_tree_lists_the_virtual_schemas(browser, phpmyadmin):
    """The navigation tree (its own grouped query of information_schema.SCHEMATA) lists
    __envs and __compare beside prod's databases, as SHOW DATABASES does."""
    login(browser, phpmyadmin)
    browser.get(phpmyadmin)
    try:
        WebDriverWait(browser, PAGE_WAIT).until(
            lambda d: "billing" in d.find_element(By.ID, "pma_navigation_tree").text)
    except TimeoutException:
        pass
    tree = browser.find_element(By.ID, "pma_navigation_tree").get_attribute("innerHTML")
    assert "billing" in tree
    assert "__envs" in tree and "__compare" in tree


def test_tables_of_shop_in_prod(browser, phpmyadmin):
    login(browser, phpmyadmin)
    src = page_source_with(browser, f"{phpmyadmin}?route=/database/structure&db=shop",
                           "customers")
    for table in ("customers", "orders", "products", "types"):
        assert table in src


def test_relation_page_shows_the_foreign_key(browser, phpmyadmin):
    login(browser, phpmyadmin)
    src = page_source_with(browser, f"{phpmyadmin}?route=/table/relation&db=shop&table=orders",
                           "fk_orders_customer")
    assert "fk_orders_customer" in src


def run_sql(browser, phpmyadmin, db, sql, expect):
    """Runs sql on phpMyAdmin's SQL page of db; returns the page's text once it shows
    expect (or after PAGE_WAIT seconds)."""
    browser.get(f"{phpmyadmin}?route=/database/sql&db={db}")
    WebDriverWait(browser, PAGE_WAIT).until(lambda d: d.find_elements(By.ID, "sqlquery"))
    # The textarea sits under a CodeMirror editor, which is what the page reads.
    browser.execute_script(
        "if (window.codeMirrorEditor) { window.codeMirrorEditor.setValue(arguments[0]); }"
        "document.getElementById('sqlquery').value = arguments[0];", sql)
    browser.execute_script("document.getElementById('button_submit_query').click()")
    try:
        WebDriverWait(browser, PAGE_WAIT).until(
            lambda d: expect in d.find_element(By.TAG_NAME, "body").text)
    except TimeoutException:
        pass
    return browser.find_element(By.TAG_NAME, "body").text


def test_sql_page_runs_a_select_and_shows_1290_for_an_update(browser, phpmyadmin):
    login(browser, phpmyadmin)
    text = run_sql(browser, phpmyadmin, "shop", "SELECT id, status FROM orders WHERE id = 3",
                   "shipped")
    assert "shipped" in text
    text = run_sql(browser, phpmyadmin, "shop", "UPDATE orders SET status = 'x' WHERE id = 3",
                   "#1290")
    assert "#1290" in text and "read-only" in text
