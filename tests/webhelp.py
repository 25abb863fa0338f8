"""Helpers for the web app's tests (and tools/screenshots.py): a small trained run, a real
`charnn serve` process on a free loopback port, and headless Chromium driven through the system's
chromedriver (Debian's chromium and chromium-driver; nothing is downloaded)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from clihelp import SMALL, charnn, write_corpus
from system import binary

# The small run the web tests serve: 12k characters, H = 16, one epoch (a few seconds).
RUN_FLAGS = [*SMALL, "--epochs", "1", "--seed", "3"]


def train_small(root: Path, name: str = "small") -> Path:
    """Train the small run into root/name and return its folder."""
    corpus = write_corpus(root)
    res = charnn("train", "--data", corpus, "--out", root / name, *RUN_FLAGS)
    assert res.rc == 0, res.err
    return root / name


@contextmanager
def serve(*paths: Path, timeout: float = 60.0) -> Iterator[tuple[subprocess.Popen, str]]:
    """`charnn serve PATHS --port 0` as a child process: yields (process, base URL) once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "charnn.cli", "serve", *map(str, paths), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("charnn serve: http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split()[2].rstrip("/")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/api/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chrome(width: int = 1280, height: int = 900):
    """Headless Chromium through the system chromedriver (skips, or fails under CI, when missing)."""
    driver_path = binary("chromedriver")
    browser_path = binary("chromium", "chromium-browser")
    os.environ["SE_OFFLINE"] = "true"          # Selenium Manager must not look for a driver online
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = browser_path
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
