import math

import pytest
import torch

# Unit tests use one torch thread: their tensors are small, so a second thread costs more in
# synchronisation than it saves, and on a loaded 2-core machine it oversubscribes the CPU (measured:
# AIS in 16-d, 2.4 s with one thread against 60 s with two while other jobs ran). `make test` runs
# the unit tests in two processes (pytest-xdist, -n 2), each with this one thread.
torch.set_num_threads(1)

# The one tolerance of every statistical test: an estimate must lie within Z_TOL standard errors of
# the exact value. A correct implementation fails one two-sided check with probability
# P_FALSE_ALARM = 6.8e-6; over the suite's ~130 statistical checks that is about 1e-3, so a change
# that merely reshuffles the random streams almost never makes a correct library fail (seeds are
# fixed, never searched for). Checks stated as a p-value or a quantile (Kolmogorov-Smirnov) use
# P_FALSE_ALARM, the same rate.
#
# Sample sizes follow from it: a test draws enough samples that the error it guards against (a
# sampler's bias, a wrong variance formula, chains that have not mixed) is at least 2 * Z_TOL
# standard errors, so that a bug of that size fails the check with probability above 1 - 1e-5, and
# not many more.
Z_TOL = 4.5
P_FALSE_ALARM = math.erfc(Z_TOL / math.sqrt(2))  # P(|Z| > Z_TOL) for a standard normal Z


@pytest.fixture
def gen():
    """A fresh, fixed-seed generator for each test (seeds are fixed, never searched)."""
    return torch.Generator().manual_seed(1234)
