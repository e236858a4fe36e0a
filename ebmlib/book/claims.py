"""Named claims: a chapter's findings, checked in code and asserted together at its end.

A chapter states what its experiments show as named, checked claims::

    claims = Claims()
    claims.check("PCD removes CD's bias", abs(bias_pcd) < 2 * se_pcd, f"bias {bias_pcd:.3f}")
    ...
    claims.verify()  # the chapter's last claims cell

:meth:`Claims.verify` shows every outcome in one output, then fails with an ``AssertionError``
that names *every* claim that did not hold, not only the first. The output carries the outcomes
as JSON under the mimetype :data:`MIMETYPE`, so an executed notebook records them in a
machine-readable form, even when the chapter failed; :func:`read_claims` reads them back
(``python -m ebmlib.reproduce`` does, to tabulate how robust each claim is across seeds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MIMETYPE", "Claims", "read_claims"]

#: The mimetype of the output that :meth:`Claims.verify` displays: ``{"claims": [record, ...]}``.
MIMETYPE = "application/vnd.ebmlib.claims+json"
#: What a claim made with :meth:`Claims.less` or :meth:`Claims.greater` records beyond its outcome.
_MARGIN_FIELDS = ("value", "bound", "relation", "margin")


def _as_bool(condition: Any, name: str) -> bool:
    """A plain ``bool`` from a bool, a NumPy bool or a one-element boolean array or tensor."""
    if isinstance(condition, bool):
        return condition
    dtype = getattr(condition, "dtype", None)
    if str(dtype) in ("bool", "torch.bool"):  # numpy.bool_, a boolean ndarray or tensor
        count = condition.numel() if str(dtype) == "torch.bool" else condition.size
        if count == 1:
            return bool(condition.item())
        raise TypeError(
            f"condition of claim {name!r} must be a single boolean, got {count} of them; "
            "reduce it with .all() or .any()"
        )
    raise TypeError(
        f"condition of claim {name!r} must be a bool (or a NumPy/PyTorch boolean), "
        f"got {type(condition).__name__}"
    )


class Claims:
    """The named, checked claims of one chapter.

    Each :meth:`check` records whether a claim held; :meth:`verify` shows them all and raises
    if any failed. Records are plain dicts ``{"name": str, "held": bool, "detail": str}``; a
    claim made with :meth:`less` or :meth:`greater` adds ``value``, ``bound``, ``relation`` and
    ``margin``.

    Examples
    --------
    >>> claims = Claims()
    >>> claims.check("two is even", 2 % 2 == 0)
    >>> claims.check("one is even", 1 % 2 == 0, "1 % 2 == 1")
    >>> claims.less("the bias is within 3 standard errors", 1.2, 3.0)
    >>> claims.failed
    ['one is even']
    >>> claims.records[-1]["margin"]
    1.8

    A claim made with :meth:`less` or :meth:`greater` records the statistic it tests
    (``value``), its threshold (``bound``) and its *margin*: how far the statistic lies inside
    the threshold, in the statistic's own units (``bound - value`` for :meth:`less`), negative
    when the claim failed. Across seeds, the smallest margin shows how close a claim came to
    failing (the Robustness appendix); margins of different claims are in different units.
    """

    def __init__(self) -> None:
        self._records: list[dict] = []

    def check(self, name: str, condition: Any, detail: str = "") -> None:
        """Record whether the claim ``name`` holds.

        Failing claims do not raise here: :meth:`verify` reports them all at once. The call
        returns nothing, so a chapter cell that ends with it displays nothing; the outcomes are in
        :attr:`records`.

        Parameters
        ----------
        name : str
            What is claimed, in words (``"PCD removes CD's bias"``); unique within a chapter.
        condition : bool
            Whether it holds. A NumPy boolean, or a one-element boolean array or tensor, is
            converted to ``bool``; anything else (an int, a float, a multi-element array) is
            refused, so a claim never holds by accident of truthiness.
        detail : str, optional
            The numbers behind the outcome (``"bias 0.012 ± 0.004"``), shown with it.

        Raises
        ------
        TypeError
            ``name`` or ``detail`` is not a string, or ``condition`` is not a boolean.
        ValueError
            ``name`` is empty or was already checked.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        if not name.strip():
            raise ValueError("name must be a non-empty string")
        if not isinstance(detail, str):
            raise TypeError(
                f"detail of claim {name!r} must be a string, got {type(detail).__name__}"
            )
        if any(r["name"] == name for r in self._records):
            raise ValueError(f"name: the claim {name!r} was already checked; names are unique")
        held = _as_bool(condition, name)
        self._records.append({"name": name, "held": held, "detail": detail})

    def less(self, name: str, value: Any, bound: Any, detail: str = "") -> None:
        """Record the claim ``value < bound``, with its statistic, threshold and margin.

        Parameters
        ----------
        name, detail : str
            As in :meth:`check`.
        value, bound : float
            The statistic the claim tests and its threshold (Python, NumPy or one-element torch
            numbers). A NaN fails the claim; an infinite one compares as infinity does.

        Raises
        ------
        TypeError, ValueError
            As :meth:`check`; also when ``value`` or ``bound`` is not a real number.
        """
        self._compare(name, value, bound, detail, below=True)

    def greater(self, name: str, value: Any, bound: Any, detail: str = "") -> None:
        """Record the claim ``value > bound``, with its statistic, threshold and margin
        ``value - bound``; otherwise as :meth:`less`."""
        self._compare(name, value, bound, detail, below=False)

    def _compare(self, name: str, value: Any, bound: Any, detail: str, *, below: bool) -> None:
        value, bound = _as_float(value, "value", name), _as_float(bound, "bound", name)
        held = (value < bound) if below else (value > bound)
        self.check(name, held, detail)
        margin = (bound - value) if below else (value - bound)

        def finite(x: float) -> float | None:  # JSON has no NaN or infinity
            return x if math.isfinite(x) else None

        self._records[-1].update(
            value=finite(value),
            bound=finite(bound),
            relation="<" if below else ">",
            margin=finite(margin),
        )

    @property
    def records(self) -> list[dict]:
        """Every claim checked so far, in order: ``[{"name", "held", "detail"}, ...]`` (copies)."""
        return [dict(r) for r in self._records]

    @property
    def failed(self) -> list[str]:
        """The names of the claims that did not hold, in order."""
        return [r["name"] for r in self._records if not r["held"]]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"Claims({len(self) - len(self.failed)} of {len(self)} held)"

    def summary(self) -> str:
        """A readable list of the outcomes: one line per claim, held or FAILED, with its detail."""
        lines = [f"Claims: {len(self) - len(self.failed)} of {len(self)} held"]
        for r in self._records:
            mark = "held  " if r["held"] else "FAILED"
            lines.append(f"  {mark} {r['name']}" + (f" ({r['detail']})" if r["detail"] else ""))
        return "\n".join(lines)

    def show(self) -> None:
        """Show every outcome (held or FAILED, with its detail) without asserting anything.

        In Jupyter, papermill or nbclient one output carries the records as JSON under
        :data:`MIMETYPE`, which :func:`read_claims` reads back, and the :meth:`summary` as
        ``text/plain``; outside IPython the summary is printed. A chapter shows its claims in one
        cell before its exercises and asserts them (:meth:`verify` with ``display=False``) in its
        last cell, so that a run at other parameters still reaches the exercises.
        """
        bundle = {MIMETYPE: {"claims": self.records}, "text/plain": self.summary()}
        try:
            from IPython import get_ipython
            from IPython.display import display as show
        except ImportError:  # plain Python: no notebook to record into
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            show(bundle, raw=True)
        else:
            print(bundle["text/plain"])

    def verify(self, *, display: bool = True) -> None:
        """Show every outcome, then assert that every claim held.

        Parameters
        ----------
        display : bool, optional
            First :meth:`show` the outcomes. Default True; a chapter that showed them already
            passes False.

        Raises
        ------
        AssertionError
            One or more claims failed; the message names every one of them, with its detail.
            The outcomes are shown before the raise, so a failed run records them too.
        """
        if display:
            self.show()
        failed = [r for r in self._records if not r["held"]]
        if failed:
            lines = [f"{len(failed)} of {len(self)} claims failed:"]
            lines += [
                f"- {r['name']}" + (f": {r['detail']}" if r["detail"] else "") for r in failed
            ]
            raise AssertionError("\n".join(lines))


def _as_float(x: Any, what: str, name: str) -> float:
    """A Python float from a real number, a NumPy scalar or a one-element array or tensor."""
    if isinstance(x, bool) or not hasattr(x, "__float__"):
        raise TypeError(f"{what} of claim {name!r} must be a real number, got {type(x).__name__}")
    try:
        return float(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} of claim {name!r} must be a single real number: {err}") from None


def read_claims(notebook: Mapping | str | bytes | Path) -> list[dict] | None:
    """The claim records of an executed notebook, as :meth:`Claims.verify` displayed them.

    Parameters
    ----------
    notebook : mapping, str, bytes or path
        An executed notebook: a parsed notebook (``nbformat`` node or the JSON dict), its JSON
        text or bytes, or the path of an ``.ipynb`` file.

    Returns
    -------
    list of dict or None
        ``[{"name", "held", "detail"}, ...]`` from every output of mimetype :data:`MIMETYPE`, in
        order; a claim shown twice keeps its last outcome. None when the notebook displayed no
        claims (it failed before :meth:`Claims.verify`, or it uses none).
    """
    if isinstance(notebook, Path):
        notebook = notebook.read_bytes()
    if isinstance(notebook, str | bytes):
        notebook = json.loads(notebook)
    if not isinstance(notebook, Mapping):
        raise TypeError(f"notebook must be a notebook, its JSON or a path, got {type(notebook)}")
    found: dict[str, dict] | None = None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            payload = output.get("data", {}).get(MIMETYPE)
            if payload is None:
                continue
            if isinstance(payload, str):  # some writers keep JSON mimetypes as text
                payload = json.loads(payload)
            found = {} if found is None else found
            for record in payload.get("claims", []):
                found[str(record["name"])] = {
                    **{k: record[k] for k in _MARGIN_FIELDS if k in record},
                    "name": str(record["name"]),
                    "held": bool(record["held"]),
                    "detail": str(record.get("detail", "")),
                }
    return None if found is None else list(found.values())
