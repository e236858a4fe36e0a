"""Helpers for the book's chapters: plumbing a chapter needs but the library's core does not.

The core modules of :mod:`ebmlib` never import from here. It ships in the wheel, because a
chapter copied alone into an empty folder runs with only the installed package.

- :mod:`ebmlib.book.parallel`: run a chapter's independent fits on every core.
- :mod:`ebmlib.book.claims`: a chapter's named, checked claims, asserted together at its end and
  recorded in the executed notebook for ``python -m ebmlib.reproduce``.
- :mod:`ebmlib.book.streams`: independent random streams for a chapter's purposes, from its SEED.
- :mod:`ebmlib.book.parameters` and :mod:`ebmlib.book.specs`: each chapter's parameters, declared
  once, checked by :func:`check_parameters` in a hidden cell and by ``python -m ebmlib.reproduce``.
"""

from .claims import Claims, read_claims
from .parallel import run_in_processes
from .specs import check_parameters
from .streams import stream

__all__ = ["Claims", "check_parameters", "read_claims", "run_in_processes", "stream"]
