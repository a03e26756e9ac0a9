"""``imagenet-think view`` in a real browser: the system Chromium, headless, driven by Selenium
through the system chromedriver (never a downloaded browser).  CI installs Debian's ``chromium``
and ``chromium-driver`` (.ci/run); elsewhere these tests skip, saying what is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from io import BytesIO
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from imagenet_think.loading import sample_dir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --window-size=1280,900"
).split()

SAMPLE = pa.concat_tables(pq.read_table(f) for f in sorted(sample_dir().glob("data/*.parquet")))  # viewer's order


def _missing() -> str:
    if not CHROMIUM or not CHROMEDRIVER:
        return "no chromium / chromedriver on PATH (CI installs Debian's chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the dev extra)"
    return ""


REQUIRED = os.environ.get("IMAGENET_THINK_REQUIRE_BROWSER") == "1"
"""Set by .ci/run: there a missing browser fails the tests instead of skipping them."""

pytestmark = pytest.mark.skipif(bool(_missing()) and not REQUIRED, reason=_missing() or "browser available")


@pytest.fixture(scope="module")
def browser():
    if _missing():
        pytest.fail(f"IMAGENET_THINK_REQUIRE_BROWSER=1 but {_missing()}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="view-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def serve(source: str) -> tuple[subprocess.Popen, str]:
    """``imagenet-think view SOURCE --port 0`` as a user runs it; returns the process and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "imagenet_think.cli", "view", source, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    match = re.fullmatch(rf"serving {re.escape(source)} on (http://127\.0\.0\.1:\d+/)\n", line)
    if not match:
        process.kill()
        raise AssertionError(f"unexpected first line {line!r}: {process.communicate()[1]}")
    return process, match.group(1)


@pytest.fixture(scope="module")
def sample_url():
    process, url = serve("sample")
    yield url
    process.terminate()
    process.communicate(timeout=30)


def visible_text(element) -> str:
    return " ".join(element.text.split())


def loaded_width(driver, image) -> int:
    """``naturalWidth`` of an ``<img>`` once the browser has loaded it (0: failed to load)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return arguments[0].complete", image))
    return driver.execute_script("return arguments[0].naturalWidth", image)


def without_markup(text: str) -> str:
    """``text`` as its Markdown shows: no ``**``, no list markers (the browser draws those)."""
    return re.sub(r"^(?:\d+\.|[-*]) ", "", text.replace("**", ""), flags=re.M)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_list_record_image_and_status_filter(browser, sample_url):
    from selenium.webdriver.common.by import By

    rows = SAMPLE.drop_columns(["image"]).to_pylist()
    first = rows[0]
    browser.get(sample_url)
    cards = browser.find_elements(By.CSS_SELECTOR, "article.card")
    assert cards[0].get_attribute("data-id") == first["id"]
    assert visible_text(cards[0].find_element(By.CSS_SELECTOR, ".record-id")) == first["id"]
    original = Image.open(BytesIO(SAMPLE["image"][0].as_py()["bytes"])).size
    thumb = cards[0].find_element(By.CSS_SELECTOR, "img")
    assert loaded_width(browser, thumb) == round(original[0] * min(1, 240 / max(original)))  # the thumbnail

    cards[0].find_element(By.CSS_SELECTOR, "a.record-id").click()
    assert browser.current_url == sample_url + "record/" + quote(first["id"])
    assert visible_text(browser.find_element(By.CSS_SELECTOR, "h1.record-id")) == first["id"]
    for pair in (1, 2):
        reasoning = browser.find_element(By.CSS_SELECTOR, f"details.reasoning.pair-{pair}")
        assert reasoning.get_attribute("open") is None  # collapsed until asked for
        reasoning.find_element(By.TAG_NAME, "summary").click()
        assert visible_text(reasoning.find_element(By.CSS_SELECTOR, ".think")) == " ".join(first[f"think_{pair}"].split())
        answer = browser.find_element(By.CSS_SELECTOR, f".answer[data-pair='{pair}']")  # Markdown: bold, lists
        assert visible_text(answer) == " ".join(without_markup(first[f"answer_{pair}"]).split())
    assert loaded_width(browser, browser.find_element(By.ID, "record-image")) == original[0]  # the stored image

    browser.get(sample_url + "?status=unclosed_think")
    shown = {card.get_attribute("data-id") for card in browser.find_elements(By.CSS_SELECTOR, "article.card")}
    assert shown == {r["id"] for r in rows if "unclosed_think" in (r["status_1"], r["status_2"])}
    assert console_errors(browser) == []


def test_keyboard_and_filter_form(browser, sample_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    rows = SAMPLE.drop_columns(["image"]).to_pylist()
    browser.get(sample_url)
    Select(browser.find_element(By.NAME, "teacher")).select_by_value("kimi")  # a select applies itself
    WebDriverWait(browser, 30).until(lambda d: "teacher=kimi" in d.current_url)
    Select(browser.find_element(By.NAME, "status")).select_by_value("malformed")
    WebDriverWait(browser, 30).until(lambda d: "status=malformed" in d.current_url)
    shown = [c.get_attribute("data-id") for c in browser.find_elements(By.CSS_SELECTOR, "article.card")]
    assert shown == [r["id"] for r in rows if r["status_2"] == "malformed"]

    browser.get(sample_url + "record/" + quote(rows[0]["id"]))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("e")
    assert all(d.get_attribute("open") is not None for d in browser.find_elements(By.CSS_SELECTOR, "details.reasoning"))
    body.send_keys(Keys.ARROW_RIGHT)
    WebDriverWait(browser, 30).until(lambda d: d.current_url.endswith("record/" + quote(rows[1]["id"])))
    assert console_errors(browser) == []


XSS = '<script>window.__xss = 1</script>"><img src=x onerror="window.__xss = 2">'


def test_corpus_text_is_shown_not_run(browser, tmp_path):
    from selenium.webdriver.common.by import By

    rows = SAMPLE.to_pylist()
    evil = dict(rows[0], id="n07753592_evil", label=XSS, think_1=XSS, answer_1=XSS)
    out = tmp_path / "evil" / "data"
    out.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([evil, *rows[1:4]], schema=SAMPLE.schema), out / "train-00000-of-00001.parquet")
    process, url = serve(str(tmp_path / "evil"))
    try:
        browser.get(url + "record/n07753592_evil")
        browser.find_element(By.CSS_SELECTOR, "details.reasoning.pair-1 summary").click()
        assert visible_text(browser.find_element(By.CSS_SELECTOR, "details.reasoning.pair-1 .think")) == XSS
        assert visible_text(browser.find_element(By.CSS_SELECTOR, ".answer[data-pair='1']")) == XSS
        browser.get(url)
        assert browser.find_element(By.CSS_SELECTOR, "article.card .label").get_attribute("textContent") == XSS
        assert browser.execute_script("return window.__xss === undefined")
        assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_record_page_keeps_each_teacher_in_its_own_labelled_column_wide_and_at_phone_width(browser, sample_url):
    from selenium.webdriver.common.by import By

    from imagenet_think import schema

    first = SAMPLE.drop_columns(["image"]).to_pylist()[0]
    try:
        for width in (1280, 390):
            browser.set_window_size(width, 900)
            browser.get(sample_url + "record/" + quote(first["id"]))
            assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
            columns = {}
            for pair, name in schema.TEACHER_NAMES.items():
                cells = browser.find_elements(By.CSS_SELECTOR, f".pairs-grid > .pair-{pair}")
                labels = [c.find_element(By.CSS_SELECTOR, "h2, summary, h3").text for c in cells]
                assert len(cells) == 4 and all(label.lower().startswith(name) for label in labels), labels
                rects = [c.rect for c in cells]  # head, reasoning, answer, generation: one box, top to bottom
                assert {(r["x"], r["width"]) for r in rects} == {(rects[0]["x"], rects[0]["width"])}
                for upper, lower in zip(rects, rects[1:]):
                    assert lower["y"] == pytest.approx(upper["y"] + upper["height"], abs=1), (width, pair, labels)
                columns[pair] = rects
            glm, kimi = columns[1], columns[2]
            if width == 1280:  # side by side, rows lined up
                assert glm[0]["x"] + glm[0]["width"] < kimi[0]["x"]
                assert [r["y"] for r in glm] == [r["y"] for r in kimi]
            else:  # one under the other, apart
                assert glm[0]["x"] == kimi[0]["x"] and glm[-1]["y"] + glm[-1]["height"] < kimi[0]["y"]
        assert console_errors(browser) == []
    finally:
        browser.set_window_size(1280, 900)


def test_a_search_hit_is_marked_and_its_reasoning_open_on_the_record_page(browser, sample_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from imagenet_think.text import word_tokens

    rows = SAMPLE.drop_columns(["image"]).to_pylist()
    row, word = next((r, w) for r in rows for w in word_tokens(r["think_2"]) if len(w) > 4 and w not in r["think_1"].lower())
    browser.get(sample_url + "?q=" + word.upper())
    card = next(c for c in browser.find_elements(By.CSS_SELECTOR, "article.card") if c.get_attribute("data-id") == row["id"])
    card.find_element(By.CSS_SELECTOR, "a.record-id").click()
    WebDriverWait(browser, 30).until(lambda d: "/record/" in d.current_url)
    assert browser.find_element(By.CSS_SELECTOR, "details.reasoning.pair-1").get_attribute("open") is None
    assert browser.find_element(By.CSS_SELECTOR, "details.reasoning.pair-2").get_attribute("open") is not None
    hits = browser.find_elements(By.CSS_SELECTOR, "details.reasoning.pair-2 mark.hit")
    assert len(hits) == row["think_2"].lower().count(word) and all(h.is_displayed() and h.text.lower() == word for h in hits)
    assert {h.value_of_css_property("display") for h in hits} == {"inline"}  # in the text, not a snippet box of the grid
    assert console_errors(browser) == []


def test_markdown_and_hidden_characters_shown_safely(browser, tmp_path):
    from selenium.webdriver.common.by import By

    rows = SAMPLE.to_pylist()
    odd_id = "n07753592_nul\x00id\u202eLTR"
    markdown = "# Title\n**bold** <script>window.__xss = 1</script>\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n[x](javascript:window.__xss=2)"
    row = dict(rows[0], id=odd_id, think_1=markdown, answer_1=markdown + "\n\nand \u202ereversed")
    out = tmp_path / "odd" / "data"
    out.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row, *rows[1:4]], schema=SAMPLE.schema), out / "train-00000-of-00001.parquet")
    process, url = serve(str(tmp_path / "odd"))
    try:
        browser.get(url)
        shown = "n07753592_nul␀id\\u202eLTR"
        assert visible_text(browser.find_element(By.CSS_SELECTOR, "article.card .record-id")) == shown
        browser.find_element(By.CSS_SELECTOR, "article.card a.record-id").click()
        assert visible_text(browser.find_element(By.CSS_SELECTOR, "h1.record-id")) == shown
        browser.find_element(By.CSS_SELECTOR, "details.reasoning.pair-1 summary").click()
        think = browser.find_element(By.CSS_SELECTOR, "details.reasoning.pair-1 .md")
        assert think.find_element(By.TAG_NAME, "h1").text == "Title" and think.find_element(By.TAG_NAME, "strong").text == "bold"
        assert "<script>window.__xss = 1</script>" in think.text and "[x](javascript:window.__xss=2)" in think.text
        assert [c.text for c in think.find_elements(By.TAG_NAME, "td")] == ["1", "2"]
        answer = browser.find_element(By.CSS_SELECTOR, ".answer[data-pair='1']")
        assert visible_text(answer).endswith("and \\u202ereversed")
        assert browser.execute_script("return window.__xss === undefined")
        assert console_errors(browser) == []  # no style attribute, script or link broke the page's policy
    finally:
        process.terminate()
        process.communicate(timeout=30)
