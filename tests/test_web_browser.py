"""The web app's pages end to end: a real `charnn serve` process and headless Chromium (Selenium
through Debian's chromium-driver). Each test saves a screenshot under its tmp_path."""
from __future__ import annotations

import json
import urllib.request

import pytest

from clihelp import SMALL, charnn_subprocess, write_corpus
from webhelp import chrome, serve, train_small

WAIT_S = 60          # the longest any page may take to show what a test waits for (a failure bound only)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    train_small(root)
    return root


@pytest.fixture(scope="module")
def url(root):
    with serve(root) as (_, base):
        yield base


@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def wait(browser, condition, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def by_id(browser, i):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, i)


def css(browser, sel):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, sel)


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_write_streams_text_that_starts_with_the_prompt_and_shows_the_top_five(browser, url, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.get(url + "/write")
    wait(browser, lambda d: css(d, "#model option"))
    prompt = by_id(browser, "prompt")
    prompt.clear()
    prompt.send_keys("ROMEO:")
    slider = by_id(browser, "temperature")
    slider.send_keys(Keys.ARROW_LEFT * 4)            # move the slider: 1.00 -> 0.80
    assert by_id(browser, "temperature-value").text == "0.80"
    for field, value in (("length", "60"), ("seed", "7")):
        el = by_id(browser, field)
        el.clear()
        el.send_keys(value)
    by_id(browser, "generate").click()
    wait(browser, lambda d: "characters" in by_id(d, "status").text)
    out = by_id(browser, "output").get_attribute("textContent")
    want = post(url + "/api/generate", {"model": "small", "prompt": "ROMEO:", "length": 60, "temperature": 0.8,
                                        "seed": 7})
    assert out == "ROMEO:" + want["text"]
    spans = css(browser, "#output .gen")
    assert len(spans) == 60
    shades = {s.value_of_css_property("background-color") for s in spans}
    assert len(shades) > 5                            # shaded by probability, not one colour
    target = next(i for i, s in enumerate(spans) if s.text.strip())
    ActionChains(browser).move_to_element(spans[target]).perform()
    wait(browser, lambda d: by_id(d, "tooltip").is_displayed())
    rows = css(browser, "#tooltip tr.candidate")
    assert len(rows) == 5
    top = want["chars"][target]["top"]
    assert [r.get_attribute("data-char") for r in rows] == [c for c, _ in top]
    assert rows[0].text.split()[1] == f"{100 * top[0][1]:.1f}%"
    browser.save_screenshot(str(tmp_path / "write.png"))
    # Clicking a candidate continues the text from that choice.
    chosen = top[1][0]
    rows[1].click()
    expect_prompt = "ROMEO:" + want["text"][:target] + chosen
    wait(browser, lambda d: "characters" in by_id(d, "status").text
         and by_id(d, "output").get_attribute("textContent").startswith(expect_prompt)
         and len(css(d, "#output .gen")) == 60)
    assert by_id(browser, "prompt").get_attribute("value") == expect_prompt


def test_inside_shows_a_heatmap_and_the_units_table(browser, url, tmp_path):
    browser.get(url + "/inside")
    wait(browser, lambda d: css(d, "#model option"))
    text = "ROMEO: But, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun."
    by_id(browser, "text").send_keys(text)
    by_id(browser, "analyse").click()
    wait(browser, lambda d: css(d, "#ci-units tbody tr"))
    spans = css(browser, "#ci-text span")
    assert len(spans) == len(text)
    colours = {s.value_of_css_property("background-color") for s in spans}
    assert len(colours) > 3                           # a heatmap, not a blank text
    rows = css(browser, "#ci-units tbody tr")
    assert len(rows) >= 5
    clickable = [r for r in rows if "constant" not in r.text]
    clickable[0].click()
    assert "ci-selected" in clickable[0].get_attribute("class")
    unit = clickable[0].find_elements("css selector", "td")[1].text     # e.g. "L0.h #3"
    assert by_id(browser, "ci-kind").get_attribute("value") + " #" + by_id(browser, "ci-unit").get_attribute("value") == unit
    browser.save_screenshot(str(tmp_path / "inside.png"))


def test_train_shows_a_curve_that_grows_while_a_run_trains(browser, url, root, tmp_path):
    corpus = write_corpus(tmp_path, chars=60_000)
    proc = charnn_subprocess("train", "--data", corpus, "--out", root / "live", *SMALL, "--hidden-size", "48",
                             "--epochs", "1000", "--log-every", "2")   # far longer than the test: stopped below
    try:
        browser.get(url + "/train")
        wait(browser, lambda d: css(d, "#runs li[data-id='live']"))   # started after the server: it appears
        css(browser, "#runs li[data-id='live']")[0].click()
        chart = by_id(browser, "chart")
        wait(browser, lambda d: int(chart.get_attribute("data-points")) >= 3)
        first = int(chart.get_attribute("data-points"))
        assert proc.poll() is None, proc.stderr.read()        # still training: the curve has to grow
        wait(browser, lambda d: int(chart.get_attribute("data-points")) > first + 5)
        wait(browser, lambda d: int(chart.get_attribute("data-val-points")) >= 1 and css(d, "#samples .sample"))
        assert proc.poll() is None, proc.stderr.read()        # it grew while the run was still training
        assert "step" in by_id(browser, "status").text
        browser.save_screenshot(str(tmp_path / "train.png"))
        by_id(browser, "xaxis").send_keys("w")                 # wall time on the x axis
        assert by_id(browser, "xaxis").get_attribute("value") == "wall_s"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
