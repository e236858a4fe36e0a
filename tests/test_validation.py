import math

import pytest
import torch

from ebmlib.validation import (
    check_batch,
    check_bounds,
    check_energy_output,
    check_finite,
    check_generator,
    check_int,
    check_positive,
    check_tensor,
)


def test_check_batch_accepts_and_rejects():
    x = torch.zeros(3, 2)
    assert check_batch(x, "x", dim=2) is x
    with pytest.raises(ValueError, match=r"x must have shape \(n, d\)"):
        check_batch(torch.zeros(3), "x")
    with pytest.raises(ValueError, match="x is an empty batch"):
        check_batch(torch.zeros(0, 2), "x")
    with pytest.raises(ValueError, match="x must have 3 columns"):
        check_batch(x, "x", dim=3)
    with pytest.raises(ValueError, match="x contains NaN"):
        check_batch(torch.tensor([[math.inf, 0.0]]), "x")
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        check_batch(torch.zeros(3, 2, dtype=torch.int32), "x")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        check_tensor([[1.0]], "x")
    with pytest.raises(ValueError, match="y contains NaN"):
        check_finite(torch.tensor([float("nan")]), "y")


@pytest.mark.parametrize(
    "value, err",
    [
        (0, ValueError),
        (-1.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
        (torch.ones(2), TypeError),
    ],
)
def test_check_positive_rejects(value, err):
    with pytest.raises(err, match="step_size"):
        check_positive(value, "step_size")


def test_check_positive_accepts_numbers_and_scalar_tensors():
    assert check_positive(2, "a") == 2.0
    assert check_positive(torch.tensor(0.5), "a") == 0.5
    assert check_positive(0.0, "a", allow_zero=True) == 0.0


def test_check_int_and_generator():
    assert check_int(3, "n") == 3
    with pytest.raises(TypeError, match="n must be an integer"):
        check_int(3.0, "n")
    with pytest.raises(ValueError, match="n must be >= 1"):
        check_int(0, "n")
    with pytest.raises(ValueError, match="n must be <= 5"):
        check_int(6, "n", maximum=5)
    assert check_generator(None) is None
    with pytest.raises(TypeError, match="generator"):
        check_generator(42)


def test_check_bounds_and_energy_output():
    assert check_bounds((-1, 1)) == [(-1.0, 1.0)]
    assert check_bounds([(-1, 1), (0, 2)]) == [(-1.0, 1.0), (0.0, 2.0)]
    with pytest.raises(ValueError, match=r"bounds\[0\] must be a \(low, high\) pair"):
        check_bounds([(1, 2, 3)])
    with pytest.raises(ValueError, match="energy_fn must map"):
        check_energy_output(torch.zeros(3, 1), 3)


def test_best_time_runs_the_function_and_validates():
    from ebmlib.timing import best_time

    calls = []
    t = best_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t >= 0
    with pytest.raises(ValueError, match="repeats"):
        best_time(lambda: None, repeats=0)
