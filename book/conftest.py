"""nbval's settings for the chapters (``pytest --nbval-lax book``).

A cell marked ``# NBVAL_CHECK_OUTPUT`` is compared by what it *prints*, rounded to what is stable on
any CPU. The numbers a chapter glues for its prose (myst-nb ``glue``, stored as
``application/papermill.record/...`` outputs) are the executed run's values at full precision:
they differ in the last digits between instruction sets (AVX2, AVX-512, ARM64) and are never
compared. What a chapter concludes from them is checked by its named claims.
"""

from __future__ import annotations

#: Output mimetypes nbval never compares: glued values (myst-nb's papermill records).
GLUE_MIMETYPES = tuple(
    f"application/papermill.record/{kind}"
    for kind in ("text/plain", "text/html", "text/markdown", "text/latex", "image/png")
)


def pytest_collection_modifyitems(items):
    for item in items:
        notebook = getattr(item, "parent", None)
        skip = getattr(notebook, "skip_compare", None)
        if skip is not None and GLUE_MIMETYPES[0] not in skip:
            notebook.skip_compare = tuple(skip) + GLUE_MIMETYPES
