"""Input validation shared by every public function of :mod:`ebmlib`.

Each check raises :class:`TypeError` (wrong kind of object) or
:class:`ValueError` (right kind, bad value) with a message that names the
argument, so that a reader who passes ``step_size=-1`` or a batch with a NaN
learns which argument is wrong instead of receiving a silent NaN later.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "ConvergenceWarning",
    "check_batch",
    "check_binary",
    "check_bounds",
    "check_energy_output",
    "check_finite",
    "check_generator",
    "check_int",
    "check_positive",
    "check_tensor",
]


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at its iteration limit before meeting its tolerance.

    The result it returns is its last iterate, which may still be useful; the warning names the
    solver, the number of iterations and the size of the last step or gradient. Raise the limit
    (``max_iter``), loosen ``tol``, or silence the warning with
    ``warnings.simplefilter("ignore", ebmlib.validation.ConvergenceWarning)`` once the result has
    been checked. A :class:`UserWarning`, not a :class:`RuntimeWarning`, so that it is not mistaken
    for a floating-point warning."""


def check_tensor(x, name: str) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor, else raise ``TypeError``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinity (a ``meta`` tensor, which holds no
    values, passes)."""
    if x.device.type != "meta" and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_batch(x, name: str, dim: int | None = None, *, finite: bool = True) -> torch.Tensor:
    """Validate a batch of points of shape ``(n, d)``.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point tensor of shape ``(n, d)`` with ``n >= 1``.
    name : str
        Argument name used in error messages.
    dim : int, optional
        Required number of columns ``d``.
    finite : bool
        Also reject NaN and infinite entries.
    """
    check_tensor(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n, d) (use (n, 1) for 1-D data), got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: it needs at least one row")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got shape {tuple(x.shape)}")
    if finite:
        check_finite(x, name)
    return x


def check_binary(
    v, name: str, dim: int | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Validate a batch of binary points, shape ``(n, d)``, entries exactly 0 or 1; return it in
    ``dtype`` (unchanged when ``None``)."""
    v = check_batch(v, name, dim)
    if v.device.type != "meta" and not bool(((v == 0) | (v == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1")
    return v if dtype is None else v.to(dtype)


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite positive number."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value


def check_int(value, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_generator(
    generator, name: str = "generator", *, device: torch.device | str | None = None
) -> torch.Generator | None:
    """Accept ``None`` or a :class:`torch.Generator`; with ``device``, one that can draw there.

    A :class:`torch.Generator` belongs to one device: a CPU generator cannot fill a CUDA tensor.
    The rule throughout :mod:`ebmlib` is that the generator lives on the device of the inputs it
    draws for (``torch.Generator(device=x.device)``). The ``meta`` device holds no data, so any
    generator is accepted there.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    if generator is not None and device is not None:
        want, have = torch.device(device), generator.device
        if want.type != "meta" and (
            want.type != have.type
            or (want.index is not None and have.index is not None and want.index != have.index)
        ):
            raise ValueError(
                f"{name} lives on {have} but the inputs on {want}: a generator draws only on its "
                f"own device; create it with torch.Generator(device={str(want)!r})"
            )
    return generator


def check_energy_output(e: torch.Tensor, n: int, name: str = "energy_fn") -> torch.Tensor:
    """Check that an energy returned a tensor of shape ``(n,)``."""
    if not isinstance(e, torch.Tensor) or e.shape != (n,):
        shape = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ValueError(f"{name} must map a batch of shape (n, d) to shape ({n},), got {shape}")
    return e


def check_bounds(bounds, name: str = "bounds") -> list[tuple[float, float]]:
    """Validate integration bounds: a sequence of ``(low, high)`` pairs, one per dimension."""
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__"):
        raise TypeError(
            f"{name} must be a sequence of (low, high) pairs, got {type(bounds).__name__}"
        )
    if len(bounds) == 2 and all(isinstance(b, numbers.Real) for b in bounds):
        bounds = [bounds]  # a single pair for 1-D
    out = []
    for i, pair in enumerate(bounds):
        if len(pair) != 2:
            raise ValueError(f"{name}[{i}] must be a (low, high) pair, got {pair!r}")
        low, high = float(pair[0]), float(pair[1])
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ValueError(f"{name}[{i}] must satisfy low < high with finite ends, got {pair!r}")
        out.append((low, high))
    if not out:
        raise ValueError(f"{name} must hold at least one (low, high) pair")
    return out


def check_float_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """Return ``dtype`` if it is a floating-point ``torch.dtype``; raise ``TypeError`` otherwise."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.dtype, got {dtype!r}")
    return dtype
