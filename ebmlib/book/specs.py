"""The parameters of every chapter: one :class:`~ebmlib.book.parameters.ParameterSpec` each.

:data:`SPECS` maps a chapter's notebook stem to its spec. The names, in order, are those of the
chapter's ``parameters`` cell (``tests/test_parameters.py`` checks it); each chapter's hidden
``check-parameters`` cell and ``python -m ebmlib.reproduce`` check values against it. The
published defaults are in the notebooks, not here.

Lists that a chapter iterates in order come back sorted (``order="ascending"``) where it relies
on the order, e.g. the sample sizes of a log-log slope; reals come back as floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .parameters import (
    ParameterSpec,
    Rule,
    at_least,
    at_most,
    device,
    fixed,
    integer,
    mapping,
    nonnegative,
    positive,
    real,
    sequence,
)

__all__ = ["SPECS", "spec_for", "check_parameters"]

SEED = integer(minimum=0)


def _min_below_max(name: str, labels: str = "min < max") -> Rule:
    """A pair or triple whose first two entries must increase (a grid, a box)."""
    return Rule((name,), lambda v: v[0] < v[1], f"{name} must have {labels}, got {{{name}}}")


CH01 = ParameterSpec(
    {
        "SEED": SEED,
        "THETA_STAR": positive(),
        "N_OBS": integer(minimum=2),
        "POLY_THETA": fixed(
            real(),
            positive(reason="b > 0 makes a x^2 + b x^4 normalizable"),
            labels=("a", "b"),
        ),
        "M_VALUES": sequence(
            integer(minimum=2),
            order="ascending",
            min_distinct=2,
            reason="a slope needs at least two distinct sample sizes",
        ),
        "N_RUNS": integer(minimum=20),
        "N_STEPS": integer(minimum=20),
        "M_GRAD": integer(minimum=1),
        "LEARNING_RATE": positive(),
    }
)

# Section 7 of the reference paper: the grid of theta, the proposals q1 and q2
_THETA_GRID = fixed(
    positive(), positive(), integer(minimum=5), labels=("min", "max", "number of points")
)
_Q1 = fixed(real(), positive(), labels=("mean", "standard deviation"))
_Q2 = fixed(real(), nonnegative(), labels=("mean", "scale intercept"))

CH02 = ParameterSpec(
    {
        "SEED": SEED,
        "THETA_STAR": positive(),
        "N_OBS": integer(minimum=2),
        "M_VALUES": sequence(integer(minimum=2), order="ascending"),
        "N_RUNS": integer(minimum=10),
        "THETA_GRID": _THETA_GRID,
        "Q1": _Q1,
        "Q2": _Q2,
        "REPORT_THETA": positive(),
    },
    rules=(_min_below_max("THETA_GRID"),),
)

CH03 = ParameterSpec(
    {
        "SEED": SEED,
        "THETA_STAR": positive(),
        "N_OBS": integer(minimum=2),
        "M": integer(minimum=2),
        "N_RUNS": integer(minimum=20),
        "THETA_GRID": _THETA_GRID,
        "Q1": _Q1,
        "Q2": _Q2,
        "T_DF": real(above=2.0, reason="the twin has q1's sd, which needs df > 2"),
        "NARROW_SD": positive(),
        "N_STREAM": integer(minimum=1000),
        "WIDTH_K": sequence(real(above=1, reason="section 3.2 tries scales k and 1/k, k > 1")),
        "WIDE_FACTOR": real(
            above=1 / math.sqrt(2), reason="the weights' variance is finite only above 1/sqrt(2)"
        ),
        "DIMS": sequence(integer(maximum=256), order="ascending", unique=True),
        "GRAD_THETAS": sequence(positive()),
        "GRAD_M": integer(minimum=2),
        "GRAD_RUNS": integer(minimum=20),
        "SGD_RUNS": integer(minimum=2),
        "SGD_STEPS": integer(minimum=10),
        "SGD_M": integer(minimum=2),
        "MIX_WEIGHTS": sequence(positive(), length=2),
        "MIX_MEANS": sequence(real(), length=2),
        "MIX_SDS": sequence(positive(), length=2),
        "MIX_N": integer(minimum=10),
        "MIX_M": integer(minimum=10),
    },
    rules=(_min_below_max("THETA_GRID"),),
)

CH04 = ParameterSpec(
    {
        "SEED": SEED,
        "CORRELATION": real(above=-0.999, below=0.999),
        "SDS": sequence(positive(), length=2),
        "N_CHAINS_CHECK": integer(minimum=1000),
        "CHECK_STEPS": integer(),
        "N_CHAINS_MIX": integer(minimum=20),
        "GRAD_BUDGET": integer(),
        "N_LEAPFROG": integer(),
        "SCALING_DIMS": sequence(
            integer(minimum=2), order="ascending", unique=True, min_distinct=3
        ),
        "SCALING_BUDGET": integer(minimum=100),
        "HMC_TIME": positive(),
        "ULA_STEPS": sequence(
            real(above=0, below=1, reason="ULA diverges on N(0, 1) at step size 2; keep away"),
            order="ascending",
        ),
        "RING_RADII": sequence(positive(), order="ascending"),
        "RING_STD": positive(),
        "PT_TEMPERATURES": integer(minimum=2),
        "PT_BETA_MIN": real(above=0, below=1),
    },
    rules=(
        at_least("GRAD_BUDGET", "N_LEAPFROG", factor=20),
        at_most("PT_TEMPERATURES", "GRAD_BUDGET", divisor=20),
    ),
)

CH05 = ParameterSpec(
    {
        "SEED": SEED,
        "N_OBS": integer(minimum=50),
        "CD_KS": sequence(integer(), order="ascending"),
        "MALA_STEP": positive(),
        "FIT_STEPS": integer(minimum=20),
        "FIT_LR": positive(),
        "TRAIN_N": integer(minimum=100),
        "MLP_STEPS": integer(minimum=300),
        "MLP_LR": positive(),
        "LONG_STEPS": integer(),
        "EXACT_GRID": integer(minimum=3),
        "HIDDEN": integer(),
        "BATCH": integer(minimum=2),
        "LANGEVIN_STEPS": integer(),
        "LANGEVIN_STEP": positive(),
        "HMC_LEAPFROG": integer(),
        "HMC_STEP": positive(),
        "BUFFER": integer(),
        "RESTART": nonnegative(maximum=1),
        "ENERGY_PENALTY": nonnegative(),
        "DEVICE": device(),
    },
    rules=(at_least("LONG_STEPS", "MLP_STEPS"), at_least("BUFFER", "BATCH")),
)

CH06 = ParameterSpec(
    {
        "SEED": SEED,
        "N_OBS": integer(minimum=10),
        "S_DATA": positive(),
        "SIGMAS": sequence(positive(), order="ascending"),
        "DSM_RUNS": integer(minimum=20),
        "SLICED_DIM": integer(minimum=3),
        "SLICED_DRAWS": integer(minimum=20),
        "RING_N": integer(minimum=100),
        "HIDDEN": integer(),
        "TRAIN_STEPS": integer(minimum=10),
        "BATCH": integer(minimum=2),
        "DSM_SIGMA": positive(),
        "COST_DIMS": sequence(integer(), order="ascending"),
        "CD_STEP_SIZES": sequence(positive(), order="descending"),
        "CD_REPLICAS": integer(minimum=10),
        "DEVICE": device(),
    }
)

CH07 = ParameterSpec(
    {
        "SEED": SEED,
        "THETA_STAR": positive(),
        "N_OBS": integer(minimum=10),
        "NU_VALUES": sequence(positive(), order="ascending"),
        "NOISE_SCALES": sequence(positive()),
        "N_RUNS": integer(minimum=10),
        "RING_N": integer(minimum=100),
        "HIDDEN": integer(),
        "TRAIN_STEPS": integer(minimum=100),
        "BATCH": integer(minimum=2),
        "MLP_NU": positive(),
        "CNCE_EPS": sequence(
            positive(),
            order="descending",
            unique=True,
            min_distinct=2,
            reason="the small-noise limit needs at least two noise scales",
        ),
        "DEVICE": device(),
    },
    rules=(
        Rule(
            ("NU_VALUES", "N_OBS"),
            lambda nus, n: all(int(round(nu * n)) >= 1 for nu in nus),
            "NU_VALUES must give at least one noise point, round(nu * N_OBS) >= 1, at N_OBS = "
            "{N_OBS}, got {NU_VALUES}",
        ),
    ),
)

CH08 = ParameterSpec(
    {
        "SEED": SEED,
        "N_HIDDEN": integer(maximum=22),
        "N_EPOCHS": integer(minimum=4),
        "BATCH_SIZE": integer(),
        "LEARNING_RATE": positive(),
        "MOMENTUM": nonnegative(below=1),
        "CD_K": integer(minimum=2),
        "TRACK_EVERY": integer(),
        "AIS_TRACK_TEMPERATURES": integer(minimum=2),
        "AIS_RUNS": integer(minimum=10),
        "AIS_TEMPERATURES": sequence(integer(minimum=2), order="ascending"),
        "AIS_REPEATS": integer(minimum=3),
        "DIM_COPIES": sequence(integer(maximum=16), order="ascending"),
        "DIM_HIDDEN": integer(maximum=20),
        "DIM_EPOCHS": integer(),
        "DIM_TEMPERATURES": sequence(integer(minimum=2), order="ascending"),
        "DIM_REPEATS": integer(),
        "N_HIDDEN_LARGE": integer(minimum=25),
        "LARGE_EPOCHS": integer(),
        "RAISE_POINTS": integer(minimum=10, maximum=297),
        "RAISE_CHAINS": integer(),
        "BRACKET_TEMPERATURES": sequence(integer(minimum=2), order="ascending"),
        "SK_EPOCHS": integer(),
        "SK_LEARNING_RATE": positive(),
        "SK_SEEDS": integer(minimum=2),
    },
    rules=(at_most("TRACK_EVERY", "N_EPOCHS", divisor=2),),
)

CH09 = ParameterSpec(
    {
        "SEED": SEED,
        "THETA_STAR": fixed(real(), positive(), labels=("theta_1", "theta_2")),
        "N_VALUES": sequence(integer(minimum=20), order="ascending"),
        "N_RUNS": integer(minimum=20),
        "BOUNDS": fixed(real(), real(), labels=("low", "high")),
        "QUAD_NODES": integer(minimum=101),
        "IS_PROPOSALS": sequence(fixed(real(), positive(), labels=("mean", "sd"))),
        "IS_RATIO": integer(),
        "NCE_NUS": sequence(integer(), order="ascending"),
        "NCE_NOISE_SD": positive(),
        "DSM_SIGMAS": sequence(positive(), order="ascending"),
        "DSM_PAIRS": integer(),
        "CD_K": integer(minimum=2),
        "MALA_STEP": positive(),
        "ULA_STEP": positive(),
        "CD_BATCH": integer(minimum=10),
        "CD_STEPS": integer(),
        "CD_BURN_IN": integer(),
        "CD_LR": positive(),
    },
    rules=(
        _min_below_max("BOUNDS", "low < high"),
        at_least("CD_STEPS", "CD_BURN_IN", offset=10),
    ),
)

#: Chapter 10's training methods, the keys of its LEARNING_RATES.
CH10_METHODS = ("PCD-HMC", "PCD-Langevin", "DSM", "NCE")

CH10 = ParameterSpec(
    {
        "SEED": SEED,
        "LAMBDA": real(above=0, below=0.5),
        "GMM_COMPONENTS": sequence(integer(minimum=2), order="ascending"),
        "GRBM_HIDDEN": integer(maximum=16),
        "GRBM_STEPS": integer(minimum=100),
        "GRBM_LR": positive(),
        "HIDDEN": integer(),
        "STEPS": integer(minimum=4),
        "BATCH": integer(minimum=2, maximum=1250),
        "LEARNING_RATES": mapping(CH10_METHODS, positive()),
        "HMC_STEP": positive(),
        "HMC_LEAPFROG": integer(),
        "LANGEVIN_STEPS": integer(),
        "LANGEVIN_STEP": positive(),
        "BUFFER": integer(),
        "RESTART": nonnegative(maximum=1),
        "ENERGY_PENALTY": nonnegative(),
        "DSM_SIGMA": positive(),
        "NCE_NU": integer(),
        "AIS_RUNS": integer(minimum=8),
        "AIS_TEMPERATURES": integer(minimum=10),
        "AIS_TOLERANCE": positive(),
        "AIS_MAX_TEMPERATURES": integer(),
        "TRACK_EVERY": integer(),
        "TRACK_TEMPERATURES": integer(minimum=10),
        "TRACK_RUNS": integer(minimum=8),
        "SAMPLE_CHAINS": integer(minimum=8),
        "SAMPLE_STEPS": integer(),
        "DEVICE": device(),
    },
    rules=(
        at_least("BUFFER", "BATCH"),
        at_least("AIS_MAX_TEMPERATURES", "AIS_TEMPERATURES", factor=2),
        at_most("TRACK_EVERY", "STEPS"),
    ),
)

#: Every chapter's spec, by notebook stem.
SPECS: dict[str, ParameterSpec] = {
    "01_mle_gradient": CH01,
    "02_importance_sampling_mle": CH02,
    "03_proposal_choice": CH03,
    "04_mcmc_samplers": CH04,
    "05_contrastive_divergence": CH05,
    "06_score_matching": CH06,
    "07_noise_contrastive_estimation": CH07,
    "08_rbm_ais": CH08,
    "09_head_to_head": CH09,
    "10_neural_ebm_digits": CH10,
}


def spec_for(chapter: str) -> ParameterSpec:
    """The spec of ``chapter``, a notebook stem such as ``"05_contrastive_divergence"``.

    Raises
    ------
    KeyError
        No chapter of that name has a spec in :mod:`ebmlib.book.specs`.
    """
    try:
        return SPECS[chapter]
    except KeyError:
        raise KeyError(
            f"no parameter spec for chapter {chapter!r}; ebmlib.book.specs has: " + ", ".join(SPECS)
        ) from None


def check_parameters(chapter: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Check a chapter's parameters against its spec; return them checked and normalized.

    Parameters
    ----------
    chapter : str
        The notebook's stem, e.g. ``"05_contrastive_divergence"``.
    namespace : mapping
        Where the parameters are, e.g. the notebook's ``globals()``; other names are ignored.

    Returns
    -------
    dict
        ``{name: value}`` for exactly the spec's names; ``globals().update(...)`` it.

    Raises
    ------
    TypeError, ValueError
        The first parameter or rule that fails, with a message naming the parameter.
    KeyError
        ``chapter`` has no spec.
    """
    return spec_for(chapter).check(namespace)
