"""The student edition (``make student``, ``tools/student_edition.py``) keeps every exercise and
drops every solution, plain and gated."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
student_edition = pytest.importorskip("student_edition")
sys.path.pop(0)


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def _code(text):
    return {"cell_type": "code", "metadata": {}, "outputs": [], "source": [text]}


def test_plain_and_gated_solutions_are_removed_and_exercises_kept():
    nb = {
        "cells": [
            _md(
                "## Exercises\n\n```{exercise} One\n:label: ex-a\n\nAsk.\n```\n\n"
                "```{solution} ex-a\n:class: dropdown\n\nAnswer $$x$$.\n```\n\n"
                "```{exercise} Two\n:label: ex-b\n\nAsk again.\n```\n\n"
                "```{solution-start} ex-b\n:class: dropdown\n```\n"
            ),
            _code("secret = 42"),
            _md("The answer is 42."),
            _md("```{solution-end}\n```\n\nAfter."),
            _code("print('kept')"),
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    out = student_edition.strip_solutions(nb)
    text = json.dumps(out)
    assert "{exercise} One" in text and "{exercise} Two" in text and "Ask again." in text
    assert "solution" not in text and "secret" not in text and "42" not in text
    assert "After." in text and "print('kept')" in text
    assert nb["cells"][1]["source"] == ["secret = 42"]  # the input is not modified


def test_an_unclosed_gated_solution_is_an_error():
    nb = {"cells": [_md("```{solution-start} ex-a\n```\n"), _code("x = 1")]}
    with pytest.raises(ValueError, match="solution-end"):
        student_edition.strip_solutions(nb)


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")), ids=str)
def test_every_chapter_loses_its_solutions_and_keeps_its_exercises(path):
    nb = json.loads(path.read_text())
    out = student_edition.strip_solutions(nb)
    before, after = json.dumps(nb), json.dumps(out)
    assert after.count("{exercise}") == before.count("{exercise}") > 0
    assert "{solution" not in after


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")), ids=str)
def test_the_student_edition_keeps_every_glued_number_the_text_quotes(path):
    """A number the chapter's text quotes must be glued outside the solutions, or the student
    edition, which drops them, cannot render it."""
    out = student_edition.strip_solutions(json.loads(path.read_text()))
    glued = {
        o.get("metadata", {}).get("scrapbook", {}).get("name")
        for c in out["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
    }
    quoted = {
        m.split(":")[0]
        for c in out["cells"]
        if c["cell_type"] == "markdown"
        for m in re.findall(r"\{glue:\w+\}`([^`]+)`", "".join(c["source"]))
    }
    assert quoted <= glued, f"quoted but glued only inside a solution: {sorted(quoted - glued)}"
