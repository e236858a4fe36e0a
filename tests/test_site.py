"""Headless-browser checks of the built HTML book (run by `make test` after the strict build).

Each chapter page listed in book/_toc.yml is served from _build/html on a loopback port, loaded in
headless Chromium, and its DOM, after scripts have run, is checked for three things:

1. mathematics is typeset: every math element of the page became a MathJax ``mjx-container``;
2. every ``<img>`` resolves to a file inside the built site;
3. no ``<script>``, ``<link>`` or ``<img>`` points outside the site (the book must work offline).

The test skips, saying why, only when no Chromium is installed; CI installs Debian's chromium.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
pytestmark = pytest.mark.site


def _chapter_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [entry["file"] for entry in part.get("chapters", [])]
    return [f"{p}.html" for p in pages]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Refs(HTMLParser):
    """Collect src/href of <script>, <link> and <img> elements."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img") and attrs.get("src"):
            self.refs.append((tag, attrs["src"]))
        elif tag == "link" and attrs.get("href"):
            self.refs.append((tag, attrs["href"]))


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book at {SITE}: run the strict build (make build-strict) first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if path is None:
        pytest.skip(
            "no Chromium installed: the browser check needs one (CI installs Debian's 'chromium'; "
            "locally: apt-get install chromium)"
        )
    return path


def _dump_dom(browser: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"chromium failed on {url}: {out.stderr[-2000:]}"
    return out.stdout


@pytest.mark.parametrize("page", _chapter_pages())
def test_chapter_page_renders_offline(page, server, browser):
    raw = (SITE / page).read_text(encoding="utf-8")
    dom = _dump_dom(browser, f"{server}/{page}")
    assert "<body" in dom, f"{page}: the browser returned no document"

    # 1. math typeset: each math element in the source page became an mjx-container
    n_math = len(re.findall(r'class="math[ "]', raw))
    n_typeset = dom.count("<mjx-container")
    if n_math:
        assert n_typeset >= n_math, (
            f"{page}: {n_math} math elements but only {n_typeset} typeset by MathJax"
        )

    # 2 and 3. every script, style sheet and image is local; every image is a file of the site
    parser = _Refs()
    parser.feed(dom)
    outside = [
        (tag, ref)
        for tag, ref in parser.refs
        if urlparse(ref).scheme not in ("", "data")
        and not ref.startswith(server)
        or ref.startswith("//")
    ]
    assert not outside, f"{page}: elements point outside the site: {outside}"
    images = [ref for tag, ref in parser.refs if tag == "img"]
    for ref in images:
        if urlparse(ref).scheme == "data":
            continue
        rel = unquote(urlparse(ref).path)
        target = (SITE / rel.lstrip("/")) if rel.startswith("/") else (SITE / page).parent / rel
        assert target.resolve().is_file(), (
            f"{page}: image {ref} does not resolve to a file of the site"
        )
        assert SITE.resolve() in target.resolve().parents, (
            f"{page}: image {ref} lies outside the site"
        )


def test_chapter_with_figures_shows_them(server, browser):
    """Chapter 1 has figures; they must be present as images (guards against a build that drops
    outputs)."""
    dom = _dump_dom(browser, f"{server}/01_mle_gradient.html")
    parser = _Refs()
    parser.feed(dom)
    assert sum(1 for tag, _ in parser.refs if tag == "img") >= 3


def _chapters_only() -> list[str]:
    return [p for p in _chapter_pages() if re.match(r"\d\d_", p)]


@pytest.mark.parametrize("page", _chapters_only())
def test_chapter_page_ends_with_exercises_and_collapsed_solutions(page):
    """At least five exercises, each with a solution collapsed in a dropdown, one of them with
    executed code and one open-ended."""
    html = (SITE / page).read_text(encoding="utf-8")
    exercises = re.findall(r'<div class="exercise admonition" id="([^"]+)"', html)
    solutions = re.findall(
        r'<div class="solution dropdown admonition"[^>]*>\s*<p class="admonition-title">'
        r'Solution to<a class="reference internal" href="#([^"]+)"',
        html,
    )
    assert len(exercises) >= 5, f"{page}: {len(exercises)} exercises"
    assert set(exercises) <= set(solutions), f"{page}: exercises without a collapsed solution"
    kinds = " ".join(
        re.findall(r"\(((?:Conceptual|Derivation|Computational|Open-ended)[^)]*)\)", html)
    )
    for kind in ("Conceptual", "Derivation", "Computational", "Open-ended"):
        assert kind in kinds, f"{page}: no {kind.lower()} exercise"
    solution_blocks = html.split('<div class="solution dropdown admonition"')[1:]
    assert any(
        'class="cell_output' in block.split('<div class="exercise admonition"')[0]
        for block in solution_blocks
    ), f"{page}: no solution with an executed code cell"


def test_intro_gives_a_bibtex_entry_and_the_launch_buttons_are_links():
    html = (SITE / "intro.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", html)  # the entry is syntax-highlighted span by span
    assert "@book{ebmbook2026," in text and "url       = {https://" in text
    chapter = (SITE / "08_rbm_ais.html").read_text(encoding="utf-8")
    for service in ("colab.research.google.com", "mybinder.org"):
        links = re.findall(rf'<a href="(https://{re.escape(service)}[^"]*)"', chapter)
        assert links, f"no {service} launch link"
        assert f'<script src="https://{service}' not in chapter
