"""Write the robustness appendix (``book/appendix_robustness.md``) from a sweep's ``summary.json``.

The sweep is ``make robustness`` (every chapter at SEED 0..19 on the current commit,
``outputs/robustness/``). The page states when, where and on which commit it was measured, and
gives, chapter by chapter, how many claims held at every seed; every claim that failed at some
seed, with its rate, the 95% upper bound on its failure rate and its margins; and, for every
claim that records a margin, how close it came to failing (smallest and median margin, in the
units of the statistic it tests).

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
#: A claim that fails at more than this fraction of the seeds is qualified in its chapter.
TOLERATED = 1 / 20


def _margin(value: float | None) -> str:
    return "" if value is None else f"{value:+.3g}"


def _upper_95(failures: int, runs: int) -> float:
    """The one-sided 95% Clopper-Pearson upper bound on a failure rate, after ``failures`` of
    ``runs``."""
    from scipy.stats import beta

    return 1.0 if failures >= runs else float(beta.ppf(0.95, failures + 1, runs - failures))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def page(summary: dict) -> str:
    records = summary["chapters"]
    rows = robustness(records)
    seeds = sorted({r["seed"] for r in records})
    env = summary.get("environment", {})
    engine = summary.get("engine", {})
    n = len(seeds)
    workers = engine.get("workers", engine.get("scheduler", "?"))
    bound0 = _upper_95(0, n)
    intro = f"""# Robustness: the claims at {n} seeds

Each chapter states its findings as named claims (`ebmlib.book.Claims`) and asserts them at the
seed it is published with. This page re-runs every chapter at SEED {seeds[0]} to {seeds[-1]} with
`make robustness` (`python -m ebmlib.reproduce --seeds {seeds[0]}:{seeds[-1] + 1}`, one Dask task
per chapter and seed) and reports, for every claim, the fraction of seeds at which it held.

- **Measured** on {env.get("date", "an unrecorded date")}, at commit `{env.get("commit")}`, with
  ebmlib {env.get("ebmlib", "")} and torch {env.get("torch", "")}, on a
  {env.get("cpu_count", "?")}-core {env.get("cpu", "CPU")}; {workers} worker(s) ran the chapters
  side by side, each with {env.get("worker_threads", "one")} torch thread(s). The published
  chapters ran with all the cores' threads, so SEED 0 here can differ from the published run in
  the last digits, and in chapters 4, 8 and 10 by more (their trajectories are chaotic).
  `reproduce` refuses to resume a sweep made at another commit.
- **What a pass means.** A claim that held at all {n} seeds may still fail at some other seed: the
  95% upper bound on its failure rate is {bound0:.0%}. A claim that failed at more than one seed
  in {int(round(1 / TOLERATED))} is counted in the table below; the book's rule is that its chapter
  qualifies it, with the rate measured here, where it states it.
- **Margins.** A claim made with `Claims.less` or `Claims.greater` records the statistic it tests
  and its threshold; its margin is how far the statistic lay inside the threshold, in the
  statistic's own units (negative: the claim failed). The smallest margin over the seeds shows
  how close a claim came to failing; margins of different claims are not comparable, and where
  the threshold is itself computed from the data, the test shown is the first seed's. Claims
  checked with `Claims.check` (a condition that is not one comparison) have no margin.

Written by `tools/robustness_page.py` from the sweep's `summary.json`; the sweep's own
`summary.md` lists every run.
"""
    swept = set(r["chapter"] for r in records)
    absent = [p.stem for p in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))]
    absent = [stem for stem in absent if stem not in swept]
    if absent:
        intro += (
            f"\n**Not in this sweep:** {', '.join(absent)}. Their claims have not been run at "
            f"{n} seeds on this commit.\n"
        )
    lines = [
        intro,
        "| chapter | runs | claims | held at every seed | failed at more than one seed in 20 "
        "| wall time per run (mean, max) | peak memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for chapter in dict.fromkeys(r["chapter"] for r in records):
        runs = [r for r in records if r["chapter"] == chapter]
        mine = [row for row in rows if row["chapter"] == chapter]
        always = sum(1 for row in mine if row["held"] == row["runs"])
        often = sum(1 for row in mine if row["runs"] - row["held"] > TOLERATED * row["runs"] + 1e-9)
        secs = [r["seconds"] for r in runs if r.get("seconds") is not None]
        mem = [r["peak_memory_mb"] for r in runs if r.get("peak_memory_mb") is not None]
        ok = sum(1 for r in runs if r["status"].startswith("ok"))
        time_text = f"{sum(secs) / len(secs):.0f} s, {max(secs):.0f} s" if secs else ""
        lines.append(
            f"| {chapter} | {ok}/{len(runs)} ok | {len(mine)} | {always} | {often} | "
            f"{time_text} | {max(mem) if mem else ''} MB |"
        )
    failing = [row for row in rows if row["held"] < row["runs"]]
    lines += ["", "## Claims that did not hold at every seed", ""]
    if not failing:
        lines.append("None: every claim held at every seed.")
    else:
        lines += [
            "Failure rate: failed seeds over runs, with its one-sided 95% upper bound.",
            "",
            "| chapter | claim | held | failure rate (95% bound) | margin: min, median "
            "| failed at SEED |",
            "|---|---|---|---|---|---|",
        ]
        for row in failing:
            failed = ", ".join(map(str, row["failed_seeds"] + row["missing_seeds"]))
            k = row["runs"] - row["held"]
            rate = f"{k}/{row['runs']} ({_upper_95(k, row['runs']):.0%})"
            margin = ", ".join(
                m for m in (_margin(row["margin_min"]), _margin(row["margin_median"])) if m
            )
            lines.append(
                f"| {row['chapter']} | {_cell(row['claim'])} | {row['held']}/{row['runs']} "
                f"| {rate} | {margin} | {failed} |"
            )
    lines += [
        "",
        "## How close every claim came to failing",
        "",
        "Every claim that records a margin, chapter by chapter, in the chapter's order; the margin "
        "is in the units of the statistic the claim tests.",
        "",
    ]
    for chapter in dict.fromkeys(r["chapter"] for r in records):
        mine = [r for r in rows if r["chapter"] == chapter and r["margin_min"] is not None]
        if not mine:
            continue
        lines += [
            f"### {chapter}",
            "",
            "| claim | test | held | margin: min | median |",
            "|---|---|---|---|---|",
        ]
        for row in mine:
            claim, test = _cell(row["claim"]), _cell(row["test"] or "")
            lines.append(
                f"| {claim} | {test} | {row['held']}/{row['runs']} "
                f"| {_margin(row['margin_min'])} | {_margin(row['margin_median'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "outputs/robustness/summary.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "book/appendix_robustness.md"
    dst.write_text(page(json.loads(src.read_text())))
    print(dst)


if __name__ == "__main__":
    main()
