"""Cost of the score-matching objectives against the dimension d (chapter 6, section 6.6), at larger
sizes.

For a 2-layer SiLU energy of width 128 and a batch of 128 points, times one evaluation of each loss
plus its parameter gradient (best of several runs after warm-up): exact score matching (one backward
pass per dimension for the Hessian trace), sliced score matching (one extra pass) and denoising
score matching (no second derivative).

Usage:  python benchmarks/bench_score_matching_cost.py [--dims 2 8 32 128 256 512]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import row as summary_row
from _common import write_result

from ebmlib import MLPEnergy
from ebmlib.losses import (
    denoising_score_matching_loss,
    score_matching_loss,
    sliced_score_matching_loss,
)
from ebmlib.timing import best_time


def _loss_calls(net, x, g) -> dict:
    """One evaluation of each loss and its parameter gradient, as zero-argument callables."""
    return {
        "exact_sm_ms": lambda: score_matching_loss(net, x).backward(),
        "sliced_sm_ms": lambda: sliced_score_matching_loss(net, x, 1, generator=g).backward(),
        "dsm_ms": lambda: denoising_score_matching_loss(net, x, 0.1, generator=g).backward(),
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 32, 128, 256, 512])
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    rows = []
    for d in args.dims:
        net = MLPEnergy(d, 128, generator=torch.Generator().manual_seed(d))
        x = torch.randn(args.batch, d, generator=torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(1)
        row = {"d": d}
        for name, call in _loss_calls(net, x, g).items():
            row[name] = round(1000 * best_time(call, repeats=5 if d <= 64 else 2, warmup=1), 3)
        row["exact_over_sliced"] = round(row["exact_sm_ms"] / row["sliced_sm_ms"], 1)
        rows.append(row)
        print(
            f"d={d:4d}: exact {row['exact_sm_ms']:9.2f} ms   "
            f"sliced {row['sliced_sm_ms']:7.2f} ms   denoising {row['dsm_ms']:7.2f} ms   "
            f"exact/sliced {row['exact_over_sliced']:6.1f}x"
        )
    big = [r for r in rows if r["d"] >= 32]
    if len(big) >= 2:
        slope = np.polyfit(
            np.log([r["d"] for r in big]), np.log([r["exact_sm_ms"] for r in big]), 1
        )[0]
        print(f"exact score matching cost grows like d^{slope:.2f} for d >= 32")
    table = [
        summary_row(
            "Score-matching cost against d (chapter 6)",
            f"2-layer SiLU, width 128, d = {r['d']}",
            f"sliced {r['sliced_sm_ms']:.2f} ms, denoising {r['dsm_ms']:.2f} ms",
            f"exact {r['exact_sm_ms']:.2f} ms",
            r["exact_over_sliced"],
            "time exact SM / sliced SM",
        )
        for r in rows
        if r["d"] in (args.dims[0], args.dims[-1])
    ]
    result = {"rows": rows, "table": table}
    write_result("score_matching_cost", result)
    return result


if __name__ == "__main__":
    main()
