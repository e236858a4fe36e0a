"""Point the book at another repository (a fork): rewrite the one repository address everywhere it
is written.

Usage:  python tools/set_repository_url.py https://github.com/OWNER/NAME

It rewrites ``_config.yml`` (the launch, repository and issue buttons), ``CITATION.cff``
(``repository-code`` and ``url``), ``pyproject.toml`` (``[project.urls]``), and the links in
``README.md`` and ``book/intro.md`` (the citation), and every chapter's install cell, including
the GitHub Pages address ``https://OWNER.github.io/NAME/`` derived from it.
``tests/test_packaging.py`` checks that they agree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("_config.yml", "CITATION.cff", "pyproject.toml", "README.md", "book/intro.md") + tuple(
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
)
_GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")


def pages_url(repository: str) -> str:
    """The GitHub Pages address of a ``https://github.com/OWNER/NAME`` repository."""
    match = _GITHUB.fullmatch(repository)
    if match is None:
        raise ValueError(f"expected https://github.com/OWNER/NAME, got {repository!r}")
    owner, name = match.groups()
    return f"https://{owner.lower()}.github.io/{name}/"


def current_repository() -> str:
    """The repository address written in ``_config.yml``."""
    match = re.search(r"^\s*url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.MULTILINE)
    return match.group(1)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    new = argv[0].rstrip("/")
    old = current_repository()
    new_pages, old_pages = pages_url(new), pages_url(old)
    for name in FILES:
        path = ROOT / name
        text = path.read_text().replace(old_pages, new_pages).replace(old, new)
        path.write_text(text)
        print(f"{name}: {old} -> {new}")


if __name__ == "__main__":
    main(sys.argv[1:])
