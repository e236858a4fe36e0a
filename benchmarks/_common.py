"""What every benchmark script shares: where results go, what they record about the machine, the
summary table.

Each ``bench_*.py`` returns a result dict whose ``"table"`` lists its headline comparisons, one dict
per row:

    {"benchmark": ..., "case": ..., "ebmlib": "...", "peer": "...", "ratio": float,
     "ratio_means": "...", "goal": "..." or "", "met": bool or None}

``met`` says whether the row reached its goal; where a script leaves it out, ``summarize.py``
reads it off a goal of the form ``< x``, ``<= x``, ``> x``, ``>= x`` or ``within ±x``.

:func:`write_result` stores the whole result, with the environment, as
``benchmarks/results/<name>.json``; ``benchmarks/summarize.py`` (the last step of ``make bench``)
gathers every table into the book's Performance appendix.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict:
    """Versions, CPU model and thread counts of this run (as recorded by ``ebmlib.reproduce``), and
    the date."""
    from ebmlib.reproduce import environment as reproduce_environment

    return dict(reproduce_environment(), date=time.strftime("%Y-%m-%d"))


def row(
    benchmark: str,
    case: str,
    ebmlib: str,
    peer: str,
    ratio: float,
    ratio_means: str,
    goal: str = "",
    met: bool | None = None,
) -> dict:
    """One line of the summary table."""
    return {
        "met": None if met is None else bool(met),
        "benchmark": benchmark,
        "case": case,
        "ebmlib": ebmlib,
        "peer": peer,
        "ratio": round(float(ratio), 2),
        "ratio_means": ratio_means,
        "goal": goal,
    }


def write_result(name: str, result: dict) -> Path:
    """Write ``result`` (with ``"table"`` rows and the environment added) to
    ``benchmarks/results/<name>.json``."""
    if not isinstance(result.get("table"), list):
        raise ValueError(f"benchmark {name!r} must give its summary rows under 'table'")
    result = {"benchmark": name, **result, "environment": environment()}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)
    return path
