"""Wall time of every chapter at its defaults, executed one at a time through ``ebmlib.reproduce``,
against the book's budget on a 2-core CPU: each chapter under a minute (chapter 10 under 150 s), and
chapters 1-9 together within 5 minutes.

Usage:  python benchmarks/bench_chapter_times.py [CHAPTER ...]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import row, write_result

from ebmlib import reproduce

BUDGET_S, CORE_BUDGET_S = 60.0, 300.0
#: chapters with a budget of their own (seconds)
CHAPTER_BUDGETS_S = {"10_neural_ebm_digits": 150.0}
#: the chapters that share the 5-minute budget
CORE_CHAPTERS = tuple(f"{n:02d}_" for n in range(1, 10))


def table_rows(records: list[dict]) -> list[dict]:
    """One row per chapter against its budget, then chapters 1-9 together and the whole book."""
    table = []
    for r in records:
        budget = CHAPTER_BUDGETS_S.get(r["chapter"], BUDGET_S)
        table.append(
            row(
                "Chapter execution time",
                r["chapter"],
                f"{r['seconds']:.0f} s",
                f"budget {budget:.0f} s",
                r["seconds"] / budget,
                "time / budget (papermill, kernel start-up included)",
                "< 1",
            )
        )
    core = sum(r["seconds"] for r in records if r["chapter"].startswith(CORE_CHAPTERS))
    total = sum(r["seconds"] for r in records)
    book_budget = CORE_BUDGET_S + sum(CHAPTER_BUDGETS_S.values())
    for case, seconds, budget in (
        ("chapters 1-9, one at a time", core, CORE_BUDGET_S),
        ("whole book, one chapter at a time", total, book_budget),
    ):
        table.append(
            row(
                "Chapter execution time",
                case,
                f"{seconds:.0f} s",
                f"budget {budget:.0f} s",
                seconds / budget,
                "time / budget",
                "< 1",
            )
        )
    return table


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*")
    args = parser.parse_args()
    chapters = reproduce.select(reproduce.find_chapters(), args.chapters)
    parameters = {c.stem: {} for c in chapters}
    out = Path(tempfile.mkdtemp(prefix="ebm-chapter-times-"))
    try:
        records = reproduce.run(
            chapters, parameters, out=out, run_id="times", jobs=1, progress=False
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    failed = [r["chapter"] for r in records if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"chapters failed: {failed}")
    table = table_rows(records)
    for r in table:
        print(f"{r['case']:40s} {r['ebmlib']:>8s}  ratio {r['ratio']:.2f}")
    result = {"records": records, "table": table}
    write_result("chapter_times", result)
    return result


if __name__ == "__main__":
    main()
