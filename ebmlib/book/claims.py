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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MIMETYPE", "Claims", "read_claims"]

#: The mimetype of the output that :meth:`Claims.verify` displays: ``{"claims": [record, ...]}``.
MIMETYPE = "application/vnd.ebmlib.claims+json"


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
    if any failed. Records are plain dicts ``{"name": str, "held": bool, "detail": str}``.

    Examples
    --------
    >>> claims = Claims()
    >>> claims.check("two is even", 2 % 2 == 0)
    True
    >>> claims.check("one is even", 1 % 2 == 0, "1 % 2 == 1")
    >>> claims.failed
    ['one is even']
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

    def verify(self, *, display: bool = True) -> None:
        """Show every outcome, then assert that every claim held.

        Parameters
        ----------
        display : bool, optional
            Show one output carrying the records as JSON under :data:`MIMETYPE` and the
            :meth:`summary` as ``text/plain`` (in Jupyter, papermill or nbclient, where the
            executed notebook keeps both); printed as text outside IPython. Default True.

        Raises
        ------
        AssertionError
            One or more claims failed; the message names every one of them, with its detail.
            The outcomes are shown before the raise, so a failed run records them too.
        """
        if display:
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
        failed = [r for r in self._records if not r["held"]]
        if failed:
            lines = [f"{len(failed)} of {len(self)} claims failed:"]
            lines += [
                f"- {r['name']}" + (f": {r['detail']}" if r["detail"] else "") for r in failed
            ]
            raise AssertionError("\n".join(lines))


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
                    "name": str(record["name"]),
                    "held": bool(record["held"]),
                    "detail": str(record.get("detail", "")),
                }
    return None if found is None else list(found.values())
