"""Write the robustness appendix (``book/appendix_robustness.md``) from sweeps' ``summary.json``.

A sweep is ``make robustness`` (every chapter at SEED 0..19 on the current commit,
``outputs/robustness/``), or ``python -m ebmlib.reproduce 05 08 --seeds 0:20 ...`` for some
chapters. The page states when, where and on which commit each sweep was measured, and what has
changed since in the library or in the chapters it ran, and gives, chapter by chapter, how many
claims held at every seed; every claim that failed at some seed, with its rate, the 95% upper
bound on its failure rate and its margins; and, for every claim that records a margin, how close
it came to failing (smallest and median margin, in the units of the statistic it tests).

Usage:
    python tools/robustness_page.py [--out PAGE] [SUMMARY_JSON ...]

(defaults: book/appendix_robustness.md, and outputs/robustness/summary.json). Several summaries
(sweeps of different chapters, at different commits) make one page; a chapter may be in one only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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


def _sweep_line(summary: dict, changed: list[str] | None) -> str:
    env = summary.get("environment", {})
    engine = summary.get("engine", {})
    workers = engine.get("workers", engine.get("scheduler", "?"))
    chapters = ", ".join(dict.fromkeys(r["chapter"][:2] for r in summary["chapters"]))
    commit = str(env.get("commit"))
    text = (
        f"- **Chapters {chapters}** measured on {env.get('date', 'an unrecorded date')}, at "
        f"commit `{commit[:10]}`, with ebmlib {env.get('ebmlib', '')} and torch "
        f"{env.get('torch', '')}, on a {env.get('cpu_count', '?')}-core {env.get('cpu', 'CPU')}; "
        f"{workers} worker(s) ran the chapters side by side, each with "
        f"{env.get('worker_threads', 'one')} torch thread(s)."
    )
    if changed is None:
        return text
    if not changed:
        return text + " The code of the library and of these chapters is unchanged since."
    return (
        text
        + " Code changed since, in the library or these chapters: "
        + ", ".join(f"`{name}`" for name in changed)
        + "."
    )


def page(summaries: dict | list[dict], changed: dict[str, list[str]] | None = None) -> str:
    """The page's Markdown from one sweep's summary or several (of different chapters).

    ``changed`` maps a sweep's commit to the files of ``ebmlib/`` and of its chapters whose code
    differs at the commit the page is written from (:func:`changed_since`; None: not stated).
    """
    summaries = [summaries] if isinstance(summaries, dict) else list(summaries)
    records: list[dict] = []
    for summary in summaries:
        seen = {r["chapter"] for r in records}
        twice = seen & {r["chapter"] for r in summary["chapters"]}
        if twice:
            raise ValueError(f"summaries: {sorted(twice)} are in more than one sweep")
        records += summary["chapters"]
    rows = robustness(records)
    seeds = sorted({r["seed"] for r in records})
    n = len(seeds)
    bound0 = _upper_95(0, n)
    sweeps = "\n".join(
        _sweep_line(
            summary,
            None if changed is None else changed.get(summary.get("environment", {}).get("commit")),
        )
        for summary in summaries
    )
    intro = f"""# Robustness: the claims at {n} seeds

Each chapter states its findings as named claims (`ebmlib.book.Claims`) and asserts them at the
seed it is published with. This page re-runs every chapter at SEED {seeds[0]} to {seeds[-1]} with
`make robustness` (`python -m ebmlib.reproduce --seeds {seeds[0]}:{seeds[-1] + 1}`, one Dask task
per chapter and seed) and reports, for every claim, the fraction of seeds at which it held.

{sweeps}

- **Threads.** The published chapters ran with all the cores' threads, so SEED 0 here can differ
  from the published run in the last digits, and in chapters 4, 8 and 10 by more (their
  trajectories are chaotic). `reproduce` refuses to resume a sweep made at another commit.
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

Written by `tools/robustness_page.py` from the sweeps' `summary.json`; a sweep's own
`summary.md` lists every run.
"""
    swept = set(r["chapter"] for r in records)
    absent = [p.stem for p in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))]
    absent = [stem for stem in absent if stem not in swept]
    if absent:
        intro += (
            f"\n**Not in these sweeps:** {', '.join(absent)}. Their claims have not been run at "
            f"{n} seeds.\n"
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


def _code_cells(text: str) -> list[str]:
    return [
        "".join(c["source"]).strip() for c in json.loads(text)["cells"] if c["cell_type"] == "code"
    ]


def changed_since(summaries: list[dict]) -> dict[str, list[str]]:
    """For each sweep's commit, the files of ``ebmlib/`` and the chapters it ran whose code
    differs in the working tree: a chapter whose code cells are the same, in the same order, has
    changed only in its prose or outputs and is not listed."""
    out = {}
    for summary in summaries:
        commit = summary.get("environment", {}).get("commit")
        if not commit:
            continue
        chapters = dict.fromkeys(f"book/{r['chapter']}.ipynb" for r in summary["chapters"])
        diff = subprocess.run(
            ["git", "diff", "--name-only", commit, "--", "ebmlib", *chapters],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        out[commit] = []
        for name in diff:
            if name.endswith(".ipynb") and (ROOT / name).exists():
                before = subprocess.run(
                    ["git", "show", f"{commit}:{name}"],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                if _code_cells(before) == _code_cells((ROOT / name).read_text()):
                    continue
            out[commit].append(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "book/appendix_robustness.md")
    args = parser.parse_args()
    paths = args.summaries or [ROOT / "outputs/robustness/summary.json"]
    summaries = [json.loads(p.read_text()) for p in paths]
    args.out.write_text(page(summaries, changed_since(summaries)))
    print(args.out)


if __name__ == "__main__":
    main()
