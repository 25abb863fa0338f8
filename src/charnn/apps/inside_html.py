"""The Inside view as one self-contained HTML file: the analysis (`charnn.apps.inside`) embedded as
JSON, drawn by static/inside.js with static/inside.css, both inlined. No network at any point.

The web app serves the same two static files and calls the same `CharnnInside.render(element,
data)` on the same JSON, so the file and the page show the same view.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
ASSETS = ("inside.js", "inside.css")


def asset(name: str) -> str:
    """The text of a static file of the Inside view (inside.js or inside.css)."""
    if name not in ASSETS:
        raise KeyError(name)
    return (STATIC / name).read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    """JSON safe inside <script>: '<', '>' and '&' escaped, so no text can close the element."""
    s = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(data: dict[str, Any], *, title: str = "charnn: inside the network") -> str:
    """The whole page for an Inside dict."""
    e = html.escape
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title>'
        f"<style>body{{max-width:1100px;margin:1.5em auto;padding:0 1em}}\n{asset('inside.css')}</style></head>"
        f"<body><h1>{e(title)}</h1><div id=\"inside\"></div>\n"
        f'<script type="application/json" id="inside-data">{_script_json(data)}</script>\n'
        f"<script>{asset('inside.js')}</script>\n"
        "<script>CharnnInside.render(document.getElementById('inside'), "
        "JSON.parse(document.getElementById('inside-data').textContent));</script>\n"
        "</body></html>\n")


def extract(page: str) -> dict[str, Any]:
    """The Inside dict embedded in a page that `render` wrote."""
    start = page.index('<script type="application/json" id="inside-data">')
    body = page[page.index(">", start) + 1: page.index("</script>", start)]
    return json.loads(body)


def write(path: str | Path, data: dict[str, Any], *, title: str = "charnn: inside the network") -> Path:
    """Write the page to `path` (its folder must exist)."""
    path = Path(path)
    path.write_text(render(data, title=title), encoding="utf-8")
    return path
