"""The report in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, which
`make test` and `.ci/run` install) opens the page from disk; a click on a column header re-sorts the
table, and the markup injected through submission names never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, and no background traffic to Google's hosts (ENVIRONMENT.md §7).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `apt-get install chromium chromium-driver` (`make data`)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    # An explicit driver path: selenium-manager is never asked to find or download one.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, site: Path):
    browser.get(site.joinpath("index.html").as_uri())
    return browser


def board(page, heading: str) -> WebElement:
    return page.find_element(By.XPATH, f"//section[h2='{heading}']//table")


def rows(table: WebElement) -> list[WebElement]:
    return table.find_elements(By.CSS_SELECTOR, "tbody tr")


def methods(table: WebElement) -> list[str]:
    return [row.find_element(By.TAG_NAME, "td").get_attribute("data-sort") for row in rows(table)]


def click_header(table: WebElement, label: str) -> str:
    table.find_element(By.XPATH, f".//thead//button[normalize-space()='{label}']").click()
    return table.find_element(By.XPATH, f".//thead//th[button[normalize-space()='{label}']]").get_attribute(
        "aria-sort"
    )


def test_a_header_click_sorts_the_table(page, hostile_names):
    xss, nasty = hostile_names
    table = board(page, "fashion-glt · GLT")
    assert methods(table) == [xss, "ce", nasty]  # by accuracy, best first
    assert click_header(table, "Acc") == "ascending"
    assert methods(table) == [nasty, "ce", xss]
    assert click_header(table, "Acc") == "descending"
    assert methods(table) == [xss, "ce", nasty]
    assert click_header(table, "Method") == "ascending"
    assert methods(table) == sorted([xss, "ce", nasty], key=str.lower)


def test_rows_without_a_value_stay_last(page):
    table = board(page, "imagenet-glt · CLT")
    for expected in ("descending", "ascending"):
        assert click_header(table, "F1") == expected
        assert methods(table)[0] == "ce"  # the only row with an F1; the paper's rows have none


def test_injected_markup_never_runs_and_shows_as_text(page, hostile_names):
    xss, nasty = hostile_names
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert  # noqa: B018  (the property raises when no alert is open)
    table = board(page, "fashion-glt · GLT")
    summaries = [element.text for element in table.find_elements(By.TAG_NAME, "summary")]
    assert xss in summaries and nasty in summaries
    row = rows(table)[methods(table).index(nasty)]
    row.find_element(By.TAG_NAME, "summary").click()
    facts = dict(zip(*[[e.text for e in row.find_elements(By.TAG_NAME, tag)] for tag in ("dt", "dd")],
                     strict=True))  # fmt: skip
    assert facts["description"] == nasty and facts["url"] == "https://example.org/paper"
    assert page.execute_script("return window.__pwned") is None


def test_the_page_is_self_contained(page):
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert page.execute_script(
        "return document.images.length > 0 && Array.from(document.images).every(i => i.naturalWidth > 0)"
    )
