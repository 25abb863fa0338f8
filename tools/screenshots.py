"""The README's pictures of `charnn serve`: docs/img/web-write.png, web-inside.png, web-train.png.

Trains a GRU of the seed's size (H = 256) on the embedded Tiny Shakespeare for a few minutes, serves it, and drives
headless Chromium through the same driver setup as the browser tests (tests/webhelp.py):

    python tools/screenshots.py [--minutes 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clihelp import charnn  # noqa: E402
from webhelp import chrome, serve  # noqa: E402

IMG = ROOT / "docs" / "img"


def wait_for(check, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not show what was expected")
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="training minutes of the model shown [3]")
    ap.add_argument("--root", type=Path, help="keep the served run folder here (default: a temporary folder)")
    args = ap.parse_args()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        res = charnn("train", "--out", root / "shakespeare", "--cell", "gru", "--max-minutes", str(args.minutes),
                     "--eval-every", "100", "--log-every", "10", "--temperature", "0.8", "--no-progress")
        assert res.rc == 0, res.err
        with serve(root) as (_, url):
            d = chrome(1280, 900)
            try:
                find = lambda sel: d.find_elements(By.CSS_SELECTOR, sel)   # noqa: E731
                d.get(url + "/write")
                wait_for(lambda: find("#model option"))
                find("#prompt")[0].clear()
                find("#prompt")[0].send_keys("ROMEO:")
                d.execute_script("var t = document.getElementById('temperature'); t.value = 0.8;"
                                 "t.dispatchEvent(new Event('input'));")
                for sel, v in (("#length", "500"), ("#seed", "4")):
                    find(sel)[0].clear()
                    find(sel)[0].send_keys(v)
                find("#generate")[0].click()
                wait_for(lambda: "characters" in find("#status")[0].text)
                ActionChains(d).move_to_element(find("#output .gen")[40]).perform()
                wait_for(lambda: find("#tooltip")[0].is_displayed())
                d.save_screenshot(str(IMG / "web-write.png"))

                d.set_window_size(1280, 1500)
                d.get(url + "/inside")
                wait_for(lambda: find("#model option"))
                find("#slice-length")[0].clear()
                find("#slice-length")[0].send_keys("1500")
                find("#analyse")[0].click()
                wait_for(lambda: find("#ci-units tbody tr"))
                rows = [r for r in find("#ci-units tbody tr") if "constant" not in r.text]
                rows[0].click()
                d.save_screenshot(str(IMG / "web-inside.png"))

                d.set_window_size(1280, 760)
                d.get(url + "/train")
                wait_for(lambda: int(find("#chart")[0].get_attribute("data-points")) > 0)
                time.sleep(1.5)
                d.save_screenshot(str(IMG / "web-train.png"))
            finally:
                d.quit()
    for name in ("web-write.png", "web-inside.png", "web-train.png"):
        print(IMG / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
