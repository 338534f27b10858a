"""The report in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, which
`make test` and `.ci/run` install) opens the page from disk: the overview comes first, a reproduction
sits beside its paper row, the filters hide rows, a phone-width window scrolls only inside tables, the
method column stays put while a table scrolls, a header click sorts (and the URL keeps the sort), and
the markup injected through submission names never runs."""

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
    return page.find_element(By.XPATH, f"//section[h3='{heading}']//table")


def rows(table: WebElement) -> list[WebElement]:
    return table.find_elements(By.CSS_SELECTOR, "tbody tr")


def methods(table: WebElement) -> list[str]:
    return [row.find_element(By.CSS_SELECTOR, "th.method").get_attribute("data-sort") for row in rows(table)]


def click_header(table: WebElement, label: str) -> str:
    button = table.find_element(By.XPATH, f".//thead//button[normalize-space()='{label}']")
    # Centred, so that the sticky method column never covers the header being clicked.
    button.parent.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", button)
    button.click()
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
    for expected in ("descending", "ascending"):
        assert click_header(table, "Seeds") == expected
        assert methods(table)[0] == "ce"  # the only row with seeds: "–" never sorts first


def test_injected_markup_never_runs_and_shows_as_text(page, hostile_names):
    xss, nasty = hostile_names
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert  # noqa: B018  (the property raises when no alert is open)
    table = board(page, "fashion-glt · GLT")
    labels = [element.text for element in table.find_elements(By.CSS_SELECTOR, "th.method > a")]
    assert xss in labels and nasty in labels
    row = rows(table)[methods(table).index(nasty)]
    row.find_element(By.CSS_SELECTOR, "th.method > a").click()  # opens the row's provenance below the table
    entry = page.find_element(
        By.ID, row.find_element(By.CSS_SELECTOR, "th.method > a").get_attribute("hash")[1:]
    )
    assert entry.get_attribute("open") is not None and entry.is_displayed()
    facts = dict(zip(*[[e.text for e in entry.find_elements(By.TAG_NAME, tag)] for tag in ("dt", "dd")],
                     strict=True))  # fmt: skip
    assert facts["description"] == nasty and facts["url"] == "https://example.org/paper"
    assert page.execute_script("return window.__pwned") is None


def test_the_page_is_self_contained(page):
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert page.execute_script(
        "return document.images.length > 0 && Array.from(document.images).every(i => i.naturalWidth > 0)"
    )


def test_the_overview_comes_first_and_pairs_reproductions_with_the_paper(page):
    page.set_window_size(1400, 900)
    overview = page.find_element(By.CSS_SELECTOR, "table.board")
    assert overview.get_attribute("id") == "table-fashion-glt-overview"
    assert page.execute_script("return arguments[0].getBoundingClientRect().top", overview) < 900
    imagenet = page.find_element(By.ID, "table-imagenet-glt-overview")
    first_group = imagenet.find_elements(By.CSS_SELECTOR, "tbody")[0].find_elements(By.TAG_NAME, "tr")
    assert [r.find_element(By.CSS_SELECTOR, "th.method").get_attribute("data-sort") for r in first_group] == [
        "ce", "Baseline"]  # fmt: skip
    assert "paired" in first_group[1].get_attribute("class")
    assert "Δ paper +4.48" in first_group[0].text and "reported" in first_group[1].text


def test_filters_hide_reported_rows_and_submissions(page):
    reported = page.find_element(By.CSS_SELECTOR, "#table-imagenet-glt-overview tr.reported")
    submission = page.find_element(By.CSS_SELECTOR, "#table-fashion-glt-overview tr.submission")
    assert reported.is_displayed() and submission.is_displayed()
    for box, row in (("hide-reported", reported), ("hide-submissions", submission)):
        page.find_element(By.ID, box).click()
        assert not row.is_displayed()
        page.find_element(By.ID, box).click()
        assert row.is_displayed()


def test_a_phone_scrolls_inside_tables_only_and_the_method_column_sticks(page):
    page.set_window_size(390, 844)
    try:
        width = page.execute_script("return window.innerWidth")
        assert page.execute_script("return document.documentElement.scrollWidth") <= width
        container = page.find_element(By.CSS_SELECTOR, "#fashion-glt-overview .scroll")
        assert page.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", container)
        cell = container.find_element(By.CSS_SELECTOR, "tbody th.method")
        before = page.execute_script("return arguments[0].getBoundingClientRect().left", cell)
        page.execute_script("arguments[0].scrollLeft = 600", container)
        assert page.execute_script("return arguments[0].scrollLeft", container) > 100
        after = page.execute_script("return arguments[0].getBoundingClientRect().left", cell)
        assert abs(after - before) < 1  # sticky: the method column does not scroll away
        font = page.execute_script("return parseFloat(getComputedStyle(arguments[0]).fontSize)", cell)
        assert font >= 12  # readable: the viewport meta keeps a phone at device width
    finally:
        page.set_window_size(1400, 900)


def test_the_sort_is_kept_in_the_url(page, site: Path):
    page.get(site.joinpath("index.html").as_uri())
    table = board(page, "fashion-glt · GLT")
    assert click_header(table, "Acc") == "ascending"
    state = page.execute_script("return window.location.hash")
    assert state.startswith("#sort=table-fashion-glt-glt.") and state.endswith(".ascending")
    order = methods(table)
    page.get(site.joinpath("index.html").as_uri() + state)
    assert methods(board(page, "fashion-glt · GLT")) == order
    page.get(site.joinpath("index.html").as_uri())


def test_headers_are_scoped_and_tables_captioned(page):
    assert page.execute_script("return document.querySelectorAll('th:not([scope])').length") == 0
    assert page.execute_script(
        "return Array.from(document.querySelectorAll('table')).every(t => t.caption && t.caption.textContent)"
    )


CONTRAST = """
function lum(c) {
  var v = c.match(/[\\d.]+/g).slice(0, 3).map(function (x) {
    x = x / 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
function background(e) {
  for (; e; e = e.parentElement) {
    var b = getComputedStyle(e).backgroundColor;
    if (b !== "rgba(0, 0, 0, 0)" && b !== "transparent") { return b; }
  }
  return "rgb(255, 255, 255)";
}
var e = arguments[0], a = lum(getComputedStyle(e).color), b = lum(background(e));
return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
"""


def test_secondary_text_meets_wcag_aa_contrast(page):
    for selector in (".std", ".ci", ".delta", ".detail", ".caveat", ".flag", "caption", "tr.reported td"):
        for element in page.find_elements(By.CSS_SELECTOR, selector)[:20]:
            assert page.execute_script(CONTRAST, element) >= 4.5, selector
