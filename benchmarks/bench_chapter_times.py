"""Wall time of every chapter at its defaults, executed one at a time through ``ebmlib.reproduce``,
against the book's budget: each chapter well under a minute, the whole book within 5 minutes, on a
2-core CPU.

Usage:  python benchmarks/bench_chapter_times.py [CHAPTER ...]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import row, write_result

from ebmlib import reproduce

BUDGET_S, BOOK_BUDGET_S = 60.0, 300.0


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
    table = [
        row(
            "Chapter execution time",
            r["chapter"],
            f"{r['seconds']:.0f} s",
            f"budget {BUDGET_S:.0f} s",
            r["seconds"] / BUDGET_S,
            "time / budget (papermill, kernel start-up included)",
            "< 1",
        )
        for r in records
    ]
    total = sum(r["seconds"] for r in records)
    table.append(
        row(
            "Chapter execution time",
            "whole book, one chapter at a time",
            f"{total:.0f} s",
            f"budget {BOOK_BUDGET_S:.0f} s",
            total / BOOK_BUDGET_S,
            "time / budget",
            "< 1",
        )
    )
    for r in table:
        print(f"{r['case']:40s} {r['ebmlib']:>8s}  ratio {r['ratio']:.2f}")
    result = {"records": records, "table": table}
    write_result("chapter_times", result)
    return result


if __name__ == "__main__":
    main()
