"""ebmlib's Langevin and HMC samplers against TorchEBM 0.8.9 and a hand-written autograd loop
(chapter 4).

Same energy (a 2-64-64-1 SiLU MLP, float32), same 1000 chains, same step size, in one process. Each
sampler runs a fixed number of steps; the best of ``--repeats`` runs after a warm-up run is reported
as gradient evaluations per second (for HMC: leapfrog steps per second, the unit in which both
libraries pay for a trajectory).

TorchEBM's leapfrog evaluates the force at both ends of every leapfrog step and re-evaluates the
energies for the Metropolis test; ebmlib keeps the gradient and energy from the end of each step, so
a trajectory of L leapfrog steps costs L gradient evaluations.

Usage:  python benchmarks/bench_torchebm_samplers.py [--chains 1000] [--repeats 5]
Needs:  pip install --no-deps -r benchmarks/requirements.txt   (``make bench`` does this)
"""

from __future__ import annotations

import argparse
import math

import torch
from _common import row as summary_row
from _common import write_result

from ebmlib import MLPEnergy
from ebmlib.samplers import sample
from ebmlib.timing import best_time


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--langevin-steps", type=int, default=200)
    parser.add_argument("--hmc-steps", type=int, default=20)
    parser.add_argument("--leapfrog", type=int, default=10)
    args = parser.parse_args()
    try:
        import torchebm
        from torchebm.core import BaseModel
        from torchebm.samplers import HamiltonianMonteCarlo, LangevinDynamics
    except ImportError as err:
        raise SystemExit(
            "TorchEBM is not installed: pip install --no-deps -r benchmarks/requirements.txt"
        ) from err

    energy = MLPEnergy(2, 64, generator=torch.Generator().manual_seed(0))
    # parameters keep requires_grad, as during training; both libraries differentiate with respect
    # to x only

    class Wrapped(BaseModel):  # the same network, seen through TorchEBM's model interface
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    peer_model = Wrapped(energy)
    x0 = torch.randn(args.chains, 2, generator=torch.Generator().manual_seed(1))
    eps, n_lang, n_hmc, L = 0.01, args.langevin_steps, args.hmc_steps, args.leapfrog
    gen = torch.Generator().manual_seed(2)

    def plain_ula():
        x = x0
        for _ in range(n_lang):
            xr = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(energy(xr).sum(), xr)
            x = x - eps * g + math.sqrt(2 * eps) * torch.randn(x.shape, generator=gen)
        return x

    peer_langevin = LangevinDynamics(peer_model, step_size=eps, noise_scale=1.0)
    peer_hmc = HamiltonianMonteCarlo(peer_model, step_size=eps, n_leapfrog_steps=L)
    calls = {
        "langevin": {
            "ebmlib": lambda: sample(
                energy, x0, method="langevin", n_steps=n_lang, step_size=eps, generator=gen
            ),
            "torchebm": lambda: peer_langevin.sample(x=x0.clone(), n_steps=n_lang, generator=gen),
            "autograd_loop": plain_ula,
        },
        "hmc": {
            "ebmlib": lambda: sample(
                energy, x0, method="hmc", n_steps=n_hmc, step_size=eps, n_leapfrog=L, generator=gen
            ),
            "torchebm": lambda: peer_hmc.sample(x=x0.clone(), n_steps=n_hmc, generator=gen),
        },
    }
    evals = {"langevin": n_lang, "hmc": n_hmc * L}
    rows = []
    for sampler, impls in calls.items():
        for fn in impls.values():  # warm up every implementation before timing any
            fn()
        row = {"sampler": sampler}
        for name, fn in impls.items():
            row[f"{name}_evals_per_s"] = round(
                evals[sampler] / best_time(fn, repeats=args.repeats, warmup=0), 1
            )
        row["ebmlib_over_torchebm"] = round(
            row["ebmlib_evals_per_s"] / row["torchebm_evals_per_s"], 2
        )
        if "autograd_loop_evals_per_s" in row:
            row["ebmlib_over_autograd_loop"] = round(
                row["ebmlib_evals_per_s"] / row["autograd_loop_evals_per_s"], 2
            )
        rows.append(row)
        print(row)
    # A Langevin step costs one gradient in both libraries. A leapfrog step costs ebmlib one
    # gradient and TorchEBM two (it evaluates the force at both ends of every step): HMC's ratio
    # is in leapfrog steps, and half of it is that saving, not a faster implementation.
    UNIT = {
        "langevin": "steps/s (1 gradient each)",
        "hmc": "leapfrog steps/s (ebmlib 1 gradient each, TorchEBM 2)",
    }
    table = [
        summary_row(
            f"TorchEBM {torchebm.__version__} samplers",
            f"{r['sampler']}, 2-64-64-1 SiLU MLP, {args.chains} chains",
            f"{r['ebmlib_evals_per_s']:.0f} {UNIT[r['sampler']]}",
            f"{r['torchebm_evals_per_s']:.0f} {UNIT[r['sampler']]}",
            r["ebmlib_over_torchebm"],
            "throughput ebmlib / TorchEBM",
            ">= 1.0" if r["sampler"] == "langevin" else ">= 1.5",
        )
        for r in rows
    ]
    result = {"torchebm": torchebm.__version__, "chains": args.chains, "rows": rows, "table": table}
    write_result("torchebm_samplers", result)
    return result


if __name__ == "__main__":
    main()
