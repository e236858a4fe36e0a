"""Write the robustness appendix (``book/appendix_robustness.md``) from a sweep's ``summary.json``.

The sweep is ``make robustness`` (every chapter at SEED 0..4, ``outputs/robustness/``). The page
lists, chapter by chapter, every claim that failed at some seed (with the seeds), the number of
claims that held at every seed, and each chapter's cost; the per-claim table of every claim stays
in the sweep's own ``summary.md``.

Usage:
    python tools/robustness_page.py [SUMMARY_JSON] [PAGE]

(defaults: outputs/robustness/summary.json and book/appendix_robustness.md)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ebmlib.reproduce import robustness

ROOT = Path(__file__).resolve().parent.parent


def page(summary: dict) -> str:
    records = summary["chapters"]
    rows = robustness(records)
    seeds = sorted({r["seed"] for r in records})
    intro = f"""# Robustness: every claim at several seeds

Each chapter states its findings as named claims (`ebmlib.book.Claims`) and asserts them at the
seed it is published with. This page re-runs every chapter at SEED {", ".join(map(str, seeds))}
with `make robustness` (`python -m ebmlib.reproduce --seeds 0:5`, one Dask task per chapter and
seed) and reports, for each chapter, how many of its claims held at every seed, and every claim
that failed at some seed. A claim that fails at some seeds is a finding that depends on the draw:
its chapter says so where it states it.

Written by `tools/robustness_page.py` from the sweep's `summary.json`; the sweep's own
`summary.md` lists every claim.
"""
    lines = [
        intro,
        "| chapter | runs | claims | held at every seed | wall time per run (mean, max) "
        "| peak memory |",
        "|---|---|---|---|---|---|",
    ]
    for chapter in dict.fromkeys(r["chapter"] for r in records):
        runs = [r for r in records if r["chapter"] == chapter]
        mine = [row for row in rows if row["chapter"] == chapter]
        always = sum(1 for row in mine if row["held"] == row["runs"])
        secs = [r["seconds"] for r in runs if r.get("seconds") is not None]
        mem = [r["peak_memory_mb"] for r in runs if r.get("peak_memory_mb") is not None]
        ok = sum(1 for r in runs if r["status"].startswith("ok"))
        lines.append(
            f"| {chapter} | {ok}/{len(runs)} ok | {len(mine)} | {always} | "
            f"{sum(secs) / len(secs):.0f} s, {max(secs):.0f} s | {max(mem)} MB |"
        )
    failing = [row for row in rows if row["held"] < row["runs"]]
    lines += ["", "## Claims that did not hold at every seed", ""]
    if not failing:
        lines.append("None: every claim held at every seed.")
    else:
        lines += ["| chapter | claim | held | failed at SEED |", "|---|---|---|---|"]
        for row in failing:
            failed = ", ".join(map(str, row["failed_seeds"] + row["missing_seeds"]))
            claim = row["claim"].replace("|", "\\|")
            lines.append(f"| {row['chapter']} | {claim} | {row['held']}/{row['runs']} | {failed} |")
    env = summary.get("environment", {})
    cpu = env.get("cpu") or env.get("processor") or ""
    lines += [
        "",
        f"Measured with two workers on a {env.get('cpu_count', 2)}-core CPU {cpu}".rstrip()
        + ": the runs went two at a time, so their wall times are longer than a chapter's alone"
        + " (the Performance appendix times each chapter by itself).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "outputs/robustness/summary.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "book/appendix_robustness.md"
    dst.write_text(page(json.loads(src.read_text())))
    print(dst)


if __name__ == "__main__":
    main()
