"""The viewer's class box, quality filters, search hits and export command in the system
Chromium (headless, Selenium, the system chromedriver), as test_view_browser.py drives it."""

from __future__ import annotations

from imagenet_think.quality import agreement
from imagenet_think.rewards import label_hit
from tests.test_view_browser import SAMPLE, browser, console_errors, pytestmark, sample_url, visible_text  # noqa: F401

ROWS = SAMPLE.drop_columns(["image"]).to_pylist()


def shown_ids(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [card.get_attribute("data-id") for card in driver.find_elements(By.CSS_SELECTOR, "article.card")]


def test_class_box_suggests_classes_and_picks_one(browser, sample_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(sample_url)
    box = browser.find_element(By.NAME, "class")
    box.send_keys("ban")
    options = lambda d: [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#class-options option")]  # noqa: E731
    WebDriverWait(browser, 30).until(lambda d: "banana · n07753592" in options(d))
    assert options(browser)[0] == "banana · n07753592"  # the corpus' class before WordNet's others
    bananas = sum(r["wnid"] == "n07753592" for r in ROWS)
    first = browser.find_element(By.CSS_SELECTOR, "#class-options option")
    assert first.get_attribute("label") == f"a kind of edible fruit · {bananas} records"  # the value names the class
    box.clear()
    box.send_keys("banana · n07753592")  # what picking the suggestion fills in: applied at once
    WebDriverWait(browser, 30).until(lambda d: d.current_url == sample_url + "?wnid=n07753592")
    assert shown_ids(browser) == [r["id"] for r in ROWS if r["wnid"] == "n07753592"]
    assert browser.find_element(By.NAME, "class").get_attribute("value") == "banana · n07753592"

    # a name typed and sent as it is: the server picks the class (works without JavaScript)
    box = browser.find_element(By.NAME, "class")
    box.clear()
    box.send_keys("Soccer Ball", Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: d.current_url == sample_url + "?wnid=n04254680")
    assert shown_ids(browser) == [r["id"] for r in ROWS if r["wnid"] == "n04254680"]
    assert console_errors(browser) == []


def test_quality_filters_apply_from_the_form(browser, sample_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(sample_url)
    browser.find_element(By.CSS_SELECTOR, "details.quality summary").click()
    Select(browser.find_element(By.NAME, "check")).select_by_value("named")  # a select applies itself
    # the page may first say the checks are being computed, and reloads itself until they are
    WebDriverWait(browser, 120).until(lambda d: "check=named" in d.current_url and d.find_elements(By.CSS_SELECTOR, "nav.checks"))
    named = [r["id"] for r in ROWS if any(r[f"answer_{p}"] and label_hit(r[f"answer_{p}"], r["wnid"]).kind == "named" for p in (1, 2))]
    assert shown_ids(browser) == named

    low = sorted(agreement([r["answer_1"]], [r["answer_2"]])[0] for r in ROWS if r["answer_1"] and r["answer_2"])[5]
    box = browser.find_element(By.NAME, "agree_min")
    box.send_keys(repr(low), Keys.ENTER)
    WebDriverWait(browser, 60).until(lambda d: "agree_min=" in d.current_url)
    kept = [r["id"] for r in ROWS if r["id"] in named and r["answer_1"] and r["answer_2"]
            and agreement([r["answer_1"]], [r["answer_2"]])[0] >= low]
    assert shown_ids(browser) == kept
    assert console_errors(browser) == []


def test_search_hits_are_marked_in_the_grid_and_the_export_command_copies(browser, sample_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(sample_url + "?q=SOCCER&teacher=kimi")
    cards = browser.find_elements(By.CSS_SELECTOR, "article.card")
    assert [c.get_attribute("data-id") for c in cards] == [
        r["id"] for r in ROWS if "soccer" in (r["think_2"] + r["answer_2"]).lower()]
    for card in cards:
        marks = card.find_elements(By.CSS_SELECTOR, "p.hit mark")
        assert [m.text.lower() for m in marks] == ["soccer"]
        assert visible_text(card.find_element(By.CSS_SELECTOR, "p.hit .where")) in ("kimi reasoning", "kimi answer")
    browser.find_element(By.CSS_SELECTOR, "details.export summary").click()
    command = browser.find_element(By.ID, "export-0").get_attribute("value")
    assert command == "imagenet-think export sample OUT --where 'teacher=kimi&q=SOCCER'"
    button = browser.find_element(By.CSS_SELECTOR, "button.copy[data-copy='export-0']")
    button.click()
    WebDriverWait(browser, 10).until(lambda d: button.text == "copied")
    assert console_errors(browser) == []
