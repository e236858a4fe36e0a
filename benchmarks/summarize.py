"""Gather the tables of every ``benchmarks/results/*.json`` into the book's Performance appendix.

The table replaces the text between the two marker comments of ``book/appendix_performance.md``; the page is
committed with the last measured table, so the book shows it without re-running the benchmarks.

Usage:  python benchmarks/summarize.py   (the last step of ``make bench``)
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "book" / "appendix_performance.md"
START, END = "<!-- benchmark table: start (written by benchmarks/summarize.py) -->", "<!-- benchmark table: end -->"
ORDER = ["chapter_times", "is_figures", "torchebm_samplers", "sklearn_rbm", "score_matching_cost"]


def table_markdown(results: list[dict]) -> str:
    lines = ["| benchmark | case | ebmlib | peer or budget | ratio | ratio means | goal |", "|---|---|---|---|---|---|---|"]
    for result in results:
        for r in result["table"]:
            cells = [r["benchmark"], r["case"], r["ebmlib"], r["peer"], f"{r['ratio']:.2f}", r["ratio_means"], r["goal"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    env = results[0]["environment"] if results else {}
    lines += ["", f"Measured on {env.get('date', '?')}: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores, "
              f"{env.get('torch_threads', '?')} torch threads; Python {env.get('python', '?')}, "
              f"PyTorch {env.get('torch', '?')}, NumPy {env.get('numpy', '?')}, "
              f"scikit-learn {env.get('sklearn', '?')}."]
    return "\n".join(lines)


def main() -> None:
    found = {}
    for path in sorted((HERE / "results").glob("*.json")):
        content = json.loads(path.read_text())
        if isinstance(content, dict) and isinstance(content.get("table"), list):
            found[path.stem] = content
        else:
            print(f"skipping {path.name}: written by an older script without a summary table; re-run it")
    results = [found[k] for k in ORDER if k in found] + [v for k, v in found.items() if k not in ORDER]
    missing = [k for k in ORDER if k not in found]
    text = PAGE.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{PAGE} lacks the benchmark-table markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(f"{head}{START}\n{table_markdown(results)}\n{END}{tail}")
    print(f"wrote {len(results)} benchmark tables into {PAGE}" + (f"; missing: {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    main()
