"""Progress bars that show in a terminal or Jupyter but stay out of the rendered book.

Set the environment variable ``EBMLIB_PROGRESS=0`` (the Makefile does, for the
book build, nbval and papermill runs) to silence every bar; pass
``progress=True``/``False`` to a function to decide per call.
"""

from __future__ import annotations

import os

from tqdm import tqdm


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress`` argument: ``None`` means "on unless EBMLIB_PROGRESS=0"."""
    if progress is None:
        return os.environ.get("EBMLIB_PROGRESS", "1") not in ("0", "false", "False", "")
    return bool(progress)


def progress_bar(
    iterable, *, total: int | None = None, desc: str | None = None, progress: bool | None = None
):
    """Wrap ``iterable`` in a tqdm bar, or return it unchanged when progress is off."""
    if not progress_enabled(progress):
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
