"""`charnn inspect`: the Inside view of a trained run as one self-contained HTML file, through the real
command line, and the page drawn by headless Chromium."""
from __future__ import annotations

import json

import pytest

from charnn import model
from charnn.apps import inside, inside_html
from charnn.data import split
from charnn.train import checkpoint

from clihelp import SMALL, assert_user_error, charnn, write_corpus

CORPUS_CHARS = 12_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    out = folder / "run"
    res = charnn("train", "--data", write_corpus(folder, CORPUS_CHARS), "--out", out, "--epochs", "1", *SMALL)
    assert res.rc == 0, res.err
    return out


def validation_text(run) -> str:
    ck = checkpoint.load(checkpoint.resolve(run))
    text = (run.parent / "tiny.txt").read_text(encoding="utf-8")
    _, val = split(ck.vocab.encode(text), ck.config.train_fraction)
    return ck.vocab.decode(val)


def test_default_text_is_a_slice_of_the_validation_split(run, tmp_path):
    page = tmp_path / "inside.html"
    res = charnn("inspect", run, "--out", page, "--start", "100", "--length", "500")
    assert res.rc == 0, res.err
    data = inside_html.extract(page.read_text(encoding="utf-8"))
    want = validation_text(run)[100:600]
    assert data["text"] == want and data["chars"] == 500 and data["schema"] == inside.SCHEMA
    assert f"inside view: {page}" in res.out and f"mean surprise {data['mean_surprise']:.4f}" in res.out
    ck = checkpoint.load(checkpoint.resolve(run))
    assert data == {**inside.analyze(ck.model_params, ck.vocab, want), "source": data["source"]}
    whole = charnn("inspect", run, "--out", tmp_path / "all.html")          # default: the first 2,000
    assert whole.rc == 0
    assert inside_html.extract((tmp_path / "all.html").read_text())["text"] == validation_text(run)[:inside.DEFAULT_SLICE]


def test_a_given_text_unit_and_json(run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("ROMEO:\nWhat light, through yonder window, breaks?\n", encoding="utf-8")
    page, js = tmp_path / "v.html", tmp_path / "v.json"
    res = charnn("inspect", run, "--text", text, "--out", page, "--unit", "L0.h:7", "--json", js, "--max-chars", "20")
    assert res.rc == 0, res.err
    data = inside_html.extract(page.read_text(encoding="utf-8"))
    assert data == json.loads(js.read_text(encoding="utf-8"))
    assert data["initial"] == {"name": "L0.h", "unit": 7}
    assert data["chars"] == len(text.read_text()) and data["shown"] == 20 and data["text"] == "ROMEO:\nWhat light, t"
    best = {u["feature"]: u for u in data["units"]}
    assert best["capital"]["score"] is not None and best["digit"]["score"] is None


@pytest.mark.parametrize("flags, needle", [
    (["--unit", "L3.h:0"], "--unit"), (["--unit", "L0.h:99"], "--unit"), (["--unit", "L0.h"], "--unit"),
    (["--text", "/nonexistent/t.txt"], "not found"), (["--out", "/nonexistent/dir/x.html"], "does not exist"),
    (["--length", "0"], "--length"), (["--start", "-1"], "--start"), (["--max-chars", "0"], "--max-chars"),
])
def test_bad_options_are_one_line_exit_2(run, tmp_path, flags, needle):
    args = ["inspect", run, *flags] if "--out" in flags else ["inspect", run, "--out", tmp_path / "o.html", *flags]
    assert_user_error(charnn(*args), needle)
    assert not (tmp_path / "o.html").exists()


def test_bad_texts_are_one_line_exit_2(run, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert_user_error(charnn("inspect", run, "--text", empty, "--out", tmp_path / "o.html"))
    odd = tmp_path / "odd.txt"
    odd.write_text("ab\u00a7c", encoding="utf-8")
    assert_user_error(charnn("inspect", run, "--text", odd, "--out", tmp_path / "o.html"), "'§'")
    assert not (tmp_path / "o.html").exists()


def test_the_page_draws_in_a_browser(run, tmp_path):
    """Headless Chromium opens the file (no server, no network): the text is coloured, the units table
    is there, a click on a row shows that unit and underlines the feature, and the surprise view draws."""
    from webhelp import chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = tmp_path / "inside.html"
    assert charnn("inspect", run, "--out", page, "--length", "400").rc == 0
    data = inside_html.extract(page.read_text(encoding="utf-8"))
    browser = chrome()
    try:
        browser.get(page.as_uri())
        spans = browser.find_elements(By.CSS_SELECTOR, "#ci-text span")
        assert len(spans) == 400
        colours = {s.value_of_css_property("background-color") for s in spans[:100]}
        assert len(colours) > 5                                    # a heatmap, not one colour
        rows = browser.find_elements(By.CSS_SELECTOR, "#ci-units tbody tr")
        assert len(rows) == len(data["units"])
        found = next(u for u in data["units"] if u["feature"] == "whitespace")
        row = browser.find_element(By.CSS_SELECTOR, '#ci-units tr[data-feature="whitespace"]')
        row.click()
        assert Select(browser.find_element(By.ID, "ci-kind")).first_selected_option.text == found["name"]
        assert browser.find_element(By.ID, "ci-unit").get_attribute("value") == str(found["unit"])
        under = [i for i, s in enumerate(spans) if "ci-on" in s.get_attribute("class")]
        assert under == [i for i, ch in enumerate(data["text"]) if ch in " \t\n\r"]
        Select(browser.find_element(By.ID, "ci-view")).select_by_value("surprise")
        worst = max(range(400), key=lambda i: data["surprise"][i])
        assert "surprise" in spans[worst].get_attribute("title")
        browser.save_screenshot(str(tmp_path / "inside.png"))
        # an LSTM's page: a row whose unit is not in the first state kind switches the kind too
        ck = checkpoint.load(checkpoint.resolve(run))
        lstm = model.init_params(len(ck.vocab), 8, seed=1, cell="lstm", layers=2)
        view = inside.analyze(lstm, ck.vocab, data["text"])
        u = next(u for u in view["units"] if u["name"] not in (None, "L0.h"))
        inside_html.write(tmp_path / "lstm.html", view)
        browser.get((tmp_path / "lstm.html").as_uri())
        assert len(browser.find_elements(By.CSS_SELECTOR, "#ci-saturation svg")) == 2   # one plot per layer
        assert len(browser.find_elements(By.CSS_SELECTOR, "#ci-saturation circle")) == 2 * 3 * 8
        browser.find_element(By.CSS_SELECTOR, f'#ci-units tr[data-feature="{u["feature"]}"]').click()
        assert Select(browser.find_element(By.ID, "ci-kind")).first_selected_option.text == u["name"]
        assert browser.find_element(By.ID, "ci-unit").get_attribute("value") == str(u["unit"])
    finally:
        browser.quit()
