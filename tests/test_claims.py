"""ebmlib.book.Claims: named claims, asserted together, recorded in the executed notebook."""

import json

import numpy as np
import pytest
import torch

from ebmlib.book import Claims, read_claims
from ebmlib.book.claims import MIMETYPE


def test_check_records_a_plain_bool_and_returns_nothing():
    claims = Claims()
    # a chapter cell ending with a check must display nothing
    assert claims.check("two is even", 2 % 2 == 0) is None
    claims.check("numpy", np.float64(1.0) > 2, "1 > 2")
    claims.check("torch", torch.tensor(3.0) > 2)
    claims.check("0-d array", np.array(True))
    claims.check("one-element tensor", torch.tensor([False]))
    assert claims.records == [
        {"name": "two is even", "held": True, "detail": ""},
        {"name": "numpy", "held": False, "detail": "1 > 2"},
        {"name": "torch", "held": True, "detail": ""},
        {"name": "0-d array", "held": True, "detail": ""},
        {"name": "one-element tensor", "held": False, "detail": ""},
    ]
    assert all(type(r["held"]) is bool for r in claims.records)
    assert claims.failed == ["numpy", "one-element tensor"]
    assert len(claims) == 5 and repr(claims) == "Claims(3 of 5 held)"


@pytest.mark.parametrize(
    "condition, message",
    [
        (1, "must be a bool"),
        (0.0, "must be a bool"),
        (None, "must be a bool"),
        ("yes", "must be a bool"),
        (np.array([True, False]), "got 2 of them"),
        (torch.ones(3, dtype=torch.bool), "got 3 of them"),
        (torch.tensor(1.0), "must be a bool"),
    ],
)
def test_conditions_that_are_not_booleans_are_refused(condition, message):
    with pytest.raises(TypeError, match=message):
        Claims().check("claim", condition)


def test_bad_names_and_details_are_refused():
    claims = Claims()
    claims.check("once", True)
    with pytest.raises(ValueError, match="'once' was already checked"):
        claims.check("once", True)
    with pytest.raises(ValueError, match="name"):
        claims.check("  ", True)
    with pytest.raises(TypeError, match="name must be a string"):
        claims.check(3, True)
    with pytest.raises(TypeError, match="detail of claim 'x' must be a string"):
        claims.check("x", True, 0.5)
    assert [r["name"] for r in claims.records] == ["once"]


def test_verify_names_every_failed_claim(capsys):
    claims = Claims()
    claims.check("held", True, "fine")
    claims.check("first failure", False, "a = 1")
    claims.check("second failure", False)
    with pytest.raises(AssertionError) as info:
        claims.verify()
    message = str(info.value)
    assert message.startswith("2 of 3 claims failed:")
    assert "- first failure: a = 1" in message and "- second failure" in message
    assert "- held" not in message
    printed = capsys.readouterr().out  # outside IPython the summary is printed
    assert "Claims: 1 of 3 held" in printed and "FAILED first failure (a = 1)" in printed
    passing = Claims()
    passing.check("fine", True)
    passing.verify(display=False)  # no raise


def test_verify_displays_json_that_read_claims_reads_back(monkeypatch):
    # IPython and nbformat come with the book and reproduce extras (not with `make test-floors`)
    IPython = pytest.importorskip("IPython")
    display = pytest.importorskip("IPython.display")
    nbformat = pytest.importorskip("nbformat")

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(display, "display", lambda obj, raw: shown.append((obj, raw)))
    claims = Claims()
    claims.check("held", True, "x")
    claims.check("failed", False, "y")
    with pytest.raises(AssertionError):
        claims.verify()
    [(bundle, raw)] = shown
    assert raw is True and set(bundle) == {MIMETYPE, "text/plain"}
    # as an executed notebook stores it (a valid nbformat output), then read back
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("claims.verify()")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), cell]
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    assert json.loads(text)["cells"][1]["outputs"][0]["data"][MIMETYPE] == {
        "claims": claims.records
    }
    assert read_claims(text) == read_claims(text.encode()) == claims.records
    assert read_claims(nbformat.reads(text, as_version=4)) == claims.records
    assert read_claims(nbformat.v4.new_notebook()) is None


def test_show_displays_without_asserting(capsys):
    claims = Claims()
    claims.check("one is even", False, "1 % 2 == 1")
    claims.show()  # no raise
    assert "FAILED one is even (1 % 2 == 1)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="one is even"):
        claims.verify(display=False)


def test_less_and_greater_record_their_margin():
    claims = Claims()
    claims.less("z within 3", 1.5, 3.0)
    claims.greater("ratio above 2", 1.0, 2.0)
    claims.less("nan fails", float("nan"), 1.0)
    claims.greater("a nan bound fails, it does not stop the chapter", 1.0, float("nan"))
    first, second, third, fourth = claims.records
    assert first["held"] and first["margin"] == pytest.approx(1.5)
    assert first["value"] == 1.5 and first["bound"] == 3.0 and first["relation"] == "<"
    assert not second["held"] and second["margin"] == pytest.approx(-1.0)
    assert not third["held"] and third["margin"] is None and third["value"] is None
    assert not fourth["held"] and fourth["bound"] is None
    with pytest.raises(TypeError, match="value of claim 'x'"):
        claims.less("x", "1", 2.0)


def test_read_claims_keeps_the_margins(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    claims = Claims()
    claims.less("z within 3", 1.2, 3.0, "z 1.2")
    claims.check("plain", True)
    output = nbformat.v4.new_output(
        "display_data", data={MIMETYPE: {"claims": claims.records}, "text/plain": "x"}
    )
    cell = nbformat.v4.new_code_cell("claims.show()", outputs=[output])
    [less, plain] = read_claims(nbformat.v4.new_notebook(cells=[cell]))
    assert less == claims.records[0] and less["margin"] == pytest.approx(1.8)
    assert plain == {"name": "plain", "held": True, "detail": ""}
