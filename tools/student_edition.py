"""Write the student edition of the book: every chapter without its exercises' solutions.

    python tools/student_edition.py [--out _student]

writes ``OUT/book/`` (the chapters with their solutions removed, and the book's other pages) and
``OUT/_config.yml`` (the book's configuration with sphinx-exercise's ``hide_solutions``), so that

    jupyter-book build OUT/book --path-output OUT

builds an HTML book without solutions, and the notebooks in ``OUT/book/`` can be handed out as
they are (``make student`` does both). A solution is either a ``{solution}`` directive in a
markdown cell, or a gated one: the cells from the one holding ``{solution-start}`` to the one
holding ``{solution-end}``, code cells included. Exercises, their labels and everything else stay.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
_SOLUTION = re.compile(r"^```\{solution\}[^\n]*\n.*?^```[ \t]*\n?", re.M | re.S)
_START = re.compile(r"^```\{solution-start\}[^\n]*\n.*?^```[ \t]*\n?", re.M | re.S)
_END = re.compile(r"^```\{solution-end\}[^\n]*\n.*?^```[ \t]*\n?", re.M | re.S)


def strip_solutions(nb: dict) -> dict:
    """A copy of the notebook ``nb`` (nbformat 4 JSON) without exercise solutions.

    Raises ``ValueError`` for a ``{solution-start}`` without its ``{solution-end}``.
    """
    cells, inside = [], False
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if inside:
                if not _END.search(text):
                    continue
                text, inside = _END.split(text, maxsplit=1)[1], False
            text = _SOLUTION.sub("", text)
            if _START.search(text):
                before, after = _START.split(text, maxsplit=1)
                if _END.search(after):  # start and end in one cell
                    text = before + _END.split(after, maxsplit=1)[1]
                else:
                    text, inside = before, True
            if not text.strip():
                continue
            cell = {**cell, "source": text.splitlines(keepends=True)}
        elif inside:
            continue
        cells.append(cell)
    if inside:
        raise ValueError("a {solution-start} has no {solution-end}")
    return {**nb, "cells": cells}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_student", help="output folder")
    args = parser.parse_args(argv)
    out_book = args.out / "book"
    if out_book.exists():
        shutil.rmtree(out_book)
    shutil.copytree(ROOT / "book", out_book, ignore=shutil.ignore_patterns("_build", "*.ipynb"))
    n_solutions = 0
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        student = strip_solutions(nb)
        n_solutions += len(nb["cells"]) - len(student["cells"])
        text = json.dumps(student, indent=1, ensure_ascii=False) + "\n"
        (out_book / path.name).write_text(text)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    config["title"] = config.get("title", "") + " (student edition)"
    (args.out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"wrote {out_book} without solutions ({n_solutions} cells removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
