"""Gather the tables of every ``benchmarks/results/*.json`` into the book's Performance appendix.

The table replaces the text between the two marker comments of ``book/appendix_performance.md``; the
page is committed with the last measured table, so the book shows it without re-running the
benchmarks.

The chapter run times also go into the table of ``book/for_instructors.md``.

Usage:  python benchmarks/summarize.py                       (the last step of ``make bench``)
        python benchmarks/summarize.py --chapter-times-only  (after bench_chapter_times.py alone)
        python benchmarks/summarize.py --only sklearn_rbm    (after one benchmark: its rows only)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "book" / "appendix_performance.md"
START, END = (
    "<!-- benchmark table: start (written by benchmarks/summarize.py) -->",
    "<!-- benchmark table: end -->",
)
INSTRUCTORS = HERE.parent / "book" / "for_instructors.md"
TIMES_START = "<!-- chapter times: start (written by benchmarks/summarize.py) -->"
TIMES_END = "<!-- chapter times: end -->"
ORDER = ["chapter_times", "is_figures", "torchebm_samplers", "sklearn_rbm", "score_matching_cost"]


HEADER = [
    "| benchmark | case | ebmlib | peer or budget | ratio | ratio means | goal | goal met "
    "| measured |",
    "|---|---|---|---|---|---|---|---|---|",
]
_GOAL = re.compile(r"^(<=|>=|<|>|≤|≥)\s*(-?[0-9.]+)$")


def goal_met(ratio: float, goal: str) -> bool | None:
    """Whether ``ratio`` meets a goal written ``< x``, ``<= x``, ``> x``, ``>= x`` or ``within ±x``;
    None for a goal of another form (its script then says, in the row's ``met``)."""
    goal = goal.strip()
    within = re.fullmatch(r"within ±\s*([0-9.]+)", goal)
    if within:
        return abs(ratio) <= float(within.group(1))
    match = _GOAL.fullmatch(goal)
    if not match:
        return None
    op, x = match.group(1), float(match.group(2))
    return {
        "<": ratio < x,
        ">": ratio > x,
        "<=": ratio <= x,
        "≤": ratio <= x,
        ">=": ratio >= x,
        "≥": ratio >= x,
    }[op]


def measured(env: dict) -> str:
    """Where and when a row was measured: date, CPU, threads and the source commit."""
    commit = env.get("commit") or "?"
    commit = commit[:7] + ("+dirty" if commit.endswith("+dirty") else "")
    return (
        f"{env.get('date', '?')}, {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores, "
        f"{env.get('torch_threads', '?')} threads, commit {commit}"
    )


def table_markdown(results: list[dict]) -> str:
    lines = list(HEADER)
    for result in results:
        where = measured(result.get("environment", {}))
        for r in result["table"]:
            met = r.get("met")
            met = goal_met(r["ratio"], r["goal"]) if met is None else met
            cells = [
                r["benchmark"],
                r["case"],
                r["ebmlib"],
                r["peer"],
                f"{r['ratio']:.2f}",
                r["ratio_means"],
                r["goal"],
                "" if met is None else ("yes" if met else "**no**"),
                where,
            ]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    env = results[0]["environment"] if results else {}
    lines += [
        "",
        f"Versions: Python {env.get('python', '?')}, PyTorch {env.get('torch', '?')}, "
        f"NumPy {env.get('numpy', '?')}, scikit-learn {env.get('sklearn', '?')}.",
    ]
    return "\n".join(lines)


def chapter_times_markdown(result: dict) -> str:
    """The run time of each chapter, for the instructors' page."""
    lines = ["| chapter | run time |", "|---|---|"]
    lines += [f"| {r['chapter']} | {r['seconds']:.0f} s |" for r in result["records"]]
    total = sum(r["seconds"] for r in result["records"])
    core = sum(
        r["seconds"]
        for r in result["records"]
        if r["chapter"][:2] in {f"{n:02d}" for n in range(1, 10)}
    )
    env = result.get("environment", {})
    lines += [
        f"| chapters 1-9, one at a time | {core:.0f} s |",
        f"| whole book, one chapter at a time | {total:.0f} s |",
        "",
        f"Measured on {env.get('date', '?')}: {env.get('cpu', '?')}, "
        f"{env.get('cpu_count', '?')} cores.",
    ]
    return "\n".join(lines)


def replace_between(path: Path, start: str, end: str, body: str) -> None:
    """Replace the text between the ``start`` and ``end`` marker lines of ``path`` by ``body``."""
    text = path.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{path} lacks the markers {start!r} ... {end!r}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def _update_rows(results: list[dict]) -> None:
    """Replace, in the Performance table, the rows of the given benchmarks only (all rows with the
    same benchmark names, the fresh ones where the old ones began); each row names where and when
    it was measured."""
    text = PAGE.read_text()
    head, rest = text.split(START, 1)
    body, tail = rest.split(END, 1)
    old = body.strip().splitlines()
    header, rows = HEADER, [line for line in old[2:] if line.startswith("|")]
    footer = [line for line in old[2:] if not line.startswith("|")]

    def key(line: str) -> tuple[str, str]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        return cells[0], cells[1]

    for result in results:
        fresh = [line for line in table_markdown([result]).splitlines()[2:] if line.startswith("|")]
        names = {key(line)[0] for line in fresh}
        at = [i for i, r in enumerate(rows) if key(r)[0] in names]
        rows = [r for r in rows if key(r)[0] not in names]
        start = at[0] if at else len(rows)
        rows[start:start] = fresh

    PAGE.write_text(f"{head}{START}\n" + "\n".join(header + rows + footer) + f"\n{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    chapter_times_only = "--chapter-times-only" in args
    # --only NAME[,NAME]: replace the rows of these benchmarks, keep every other row as committed
    only = args[args.index("--only") + 1].split(",") if "--only" in args else []
    found = {}
    for path in sorted((HERE / "results").glob("*.json")):
        content = json.loads(path.read_text())
        if isinstance(content, dict) and isinstance(content.get("table"), list):
            found[path.stem] = content
        else:
            print(
                f"skipping {path.name}: written by an older script without a summary table; "
                "re-run it"
            )
    results = [found[k] for k in ORDER if k in found] + [
        v for k, v in found.items() if k not in ORDER
    ]
    missing = [k for k in ORDER if k not in found]
    if chapter_times_only:
        if "chapter_times" not in found:
            raise SystemExit(
                "no benchmarks/results/chapter_times.json: run benchmarks/bench_chapter_times.py"
            )
        _update_rows([found["chapter_times"]])
        replace_between(
            INSTRUCTORS, TIMES_START, TIMES_END, chapter_times_markdown(found["chapter_times"])
        )
        print(f"wrote the chapter times into {PAGE} and {INSTRUCTORS}")
        return
    if only:
        _update_rows([found[name] for name in only])
        print(f"wrote the rows of {', '.join(only)} into {PAGE}")
        return
    replace_between(PAGE, START, END, table_markdown(results))
    if "chapter_times" in found:
        replace_between(
            INSTRUCTORS, TIMES_START, TIMES_END, chapter_times_markdown(found["chapter_times"])
        )
    print(
        f"wrote {len(results)} benchmark tables into {PAGE}"
        + (f"; missing: {', '.join(missing)}" if missing else "")
    )


if __name__ == "__main__":
    main()
