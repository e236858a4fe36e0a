"""Figures 1-2 of the reference paper (Geyer IS-MLE, Section 7): ebmlib against a straightforward
NumPy/SciPy implementation, side by side in one run, at the paper's scale.

Both compute J_GL(theta) = sum_n x_n^2 / (2 theta^2) + N log Z-hat(theta) for theta* = 2, N = 100,
the proposals q1 = N(2, 2^2) and q2(.|theta) = N(2, (2 + theta)^2), M in {100, 5000}, 1000 runs, and
the same 111-point grid theta in [0.5, 6]. The reference loops over runs, vectorizes each run over
theta and the samples (for q2 drawing a fresh sample at each theta, as the paper describes) and uses
scipy.special.logsumexp. ebmlib calls ebmlib.book.gaussian_scale.paper_experiment, exactly as
chapter 2 does.

The two must agree statistically: their mean curves are compared within Monte-Carlo error before the
timing is reported.

Usage:  python benchmarks/bench_is_figures.py [--runs 1000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch
from _common import row, write_result
from scipy import special

from ebmlib import GaussianEnergy
from ebmlib.book import gaussian_scale

THETA_STAR, N_OBS, M_VALUES = 2.0, 100, (100, 5000)
THETAS = np.linspace(0.5, 6.0, 111)


def _norm_logpdf(y, mean, std):
    return -0.5 * ((y - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)


def reference(
    x: np.ndarray, thetas: np.ndarray, m_values, n_runs: int, rng: np.random.Generator
) -> dict:
    """A straightforward NumPy/SciPy implementation of the paper's experiment: a loop over runs,
    each run vectorized over theta and the M samples, with scipy.special.logsumexp."""
    n, sum_x2 = x.size, float(np.sum(x**2))
    data_term = sum_x2 / (2 * thetas**2)
    scales = 2.0 + thetas[:, None]  # q2's standard deviation at each theta
    out = {}
    for m in m_values:
        curves = np.empty((n_runs, thetas.size))
        for r in range(n_runs):  # q1: one sample per run, shared by every theta
            y = rng.normal(2.0, 2.0, m)
            log_w = (
                -(y[None, :] ** 2) / (2 * thetas[:, None] ** 2) - _norm_logpdf(y, 2.0, 2.0)[None, :]
            )
            curves[r] = data_term + n * (special.logsumexp(log_w, axis=1) - math.log(m))
        out[("q1", m)] = curves
    for m in m_values:
        curves = np.empty((n_runs, thetas.size))
        for r in range(
            n_runs
        ):  # q2: a fresh sample of size M at every theta, as the paper describes
            y = rng.normal(2.0, scales, (thetas.size, m))
            log_w = -(y**2) / (2 * thetas[:, None] ** 2) - _norm_logpdf(y, 2.0, scales)
            curves[r] = data_term + n * (special.logsumexp(log_w, axis=1) - math.log(m))
        out[("q2", m)] = curves
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed repetitions of each (best is reported)"
    )
    args = parser.parse_args()

    x_t = GaussianEnergy(0.0, THETA_STAR).sample(N_OBS, generator=torch.Generator().manual_seed(0))
    x_np = x_t[:, 0].numpy()
    thetas_t = torch.as_tensor(THETAS)

    # warm-up (imports, first-call allocations) on a small problem
    gaussian_scale.paper_experiment(
        x_t, thetas_t, (100,), 10, generator=torch.Generator().manual_seed(1)
    )
    reference(x_np, THETAS, (100,), 2, np.random.default_rng(1))

    t_ours, t_ref = [], []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        ours = gaussian_scale.paper_experiment(
            x_t, thetas_t, M_VALUES, args.runs, generator=torch.Generator().manual_seed(10 + rep)
        )
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = reference(x_np, THETAS, M_VALUES, args.runs, np.random.default_rng(10 + rep))
        t_ref.append(time.perf_counter() - t0)

    # statistical agreement of the mean curves, at every theta, within 5 combined standard errors
    worst = 0.0
    for key in ref:
        a, b = ours[key].numpy(), ref[key]
        se = np.sqrt(a.var(0, ddof=1) / a.shape[0] + b.var(0, ddof=1) / b.shape[0])
        finite = se > 0
        worst = max(worst, float(np.max(np.abs(a.mean(0) - b.mean(0))[finite] / se[finite])))
    assert worst < 5, f"ebmlib and the reference disagree: largest |z| = {worst:.1f}"

    result = {
        "benchmark": "is_figures",
        "setting": (
            f"theta*={THETA_STAR}, N={N_OBS}, M={list(M_VALUES)}, runs={args.runs}, "
            f"grid={THETAS.size}"
        ),
        "ebmlib_s": round(min(t_ours), 3),
        "reference_numpy_scipy_s": round(min(t_ref), 3),
        "speedup": round(min(t_ref) / min(t_ours), 1),
        "max_abs_z_mean_curves": round(worst, 2),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    print(f"Figures 1-2 at the paper's scale ({result['setting']})")
    print(f"  ebmlib (gaussian_scale.paper_experiment): {result['ebmlib_s']:8.2f} s")
    print(f"  straightforward NumPy/SciPy reference:    {result['reference_numpy_scipy_s']:8.2f} s")
    print(f"  speed-up: {result['speedup']}x   (mean curves agree: max |z| = {worst:.2f})")
    result["table"] = [
        row(
            "Chapter 2 Figures 1–2 (IS-MLE)",
            result["setting"],
            f"{result['ebmlib_s']:.2f} s",
            f"{result['reference_numpy_scipy_s']:.2f} s (NumPy/SciPy reference)",
            result["speedup"],
            "speed-up over the reference (time reference / ebmlib)",
            "> 1",
        )
    ]
    write_result("is_figures", result)
    return result


if __name__ == "__main__":
    main()
