"""Chapter parameters, declared once and checked in one call before anything runs.

Every chapter opens with a cell tagged ``parameters`` (papermill overrides it). What each of
those names may hold is declared once, in :mod:`ebmlib.book.specs`, as a
:class:`ParameterSpec`: a :class:`Param` per name (its kind and range) and, for constraints
between parameters, :class:`Rule` objects. A hidden cell right after the parameters checks them
all::

    from ebmlib.book import check_parameters

    globals().update(check_parameters("05_contrastive_divergence", globals()))

(:func:`ebmlib.book.specs.check_parameters`, which looks the chapter's spec up in
:data:`ebmlib.book.specs.SPECS`).

:func:`check_parameters` returns the checked values, normalized (a sorted list, floats for
reals, a tuple for a fixed-length tuple), so the chapter's later cells see exactly those.
``python -m ebmlib.reproduce`` checks its overrides against the same spec before it submits any
task, without executing a notebook.

A bad value raises :class:`ValueError`, a value of the wrong type :class:`TypeError`; either
message names the parameter (``"N_OBS must be an integer >= 2, got 1"``).
"""

from __future__ import annotations

import ast
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Param",
    "ParameterSpec",
    "Rule",
    "at_least",
    "at_most",
    "choice",
    "device",
    "fixed",
    "flag",
    "integer",
    "mapping",
    "nonnegative",
    "positive",
    "read_parameters_cell",
    "real",
    "sequence",
]

#: The kinds of :class:`Param`.
KINDS = ("int", "real", "bool", "choice", "device", "sequence", "tuple", "dict")


def _number(x: float) -> str:
    """A bound as written in a message: ``2``, ``0.5``, full precision only where needed."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def _interval(minimum=None, maximum=None, above=None, below=None) -> str:
    """``">= 2"``, ``"< 1"``, ``"in [0, 1)"`` or ``""`` (no bound)."""
    low = high = None
    if minimum is not None:
        low = ("[", ">=", minimum)
    elif above is not None:
        low = ("(", ">", above)
    if maximum is not None:
        high = ("]", "<=", maximum)
    elif below is not None:
        high = (")", "<", below)
    if low and high:
        return f"in {low[0]}{_number(low[2])}, {_number(high[2])}{high[0]}"
    if low or high:
        _, op, bound = low or high
        return f"{op} {_number(bound)}"
    return ""


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _type_error(name: str, what: str, value) -> TypeError:
    return TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")


def _value_error(name: str, what: str, value, reason: str = "") -> ValueError:
    return ValueError(f"{name} must be {what}, got {value!r}" + (f"; {reason}" if reason else ""))


@dataclass(frozen=True)
class Param:
    """What one parameter may hold: its kind, range and how it is normalized.

    Build one with :func:`integer`, :func:`real`, :func:`positive`, :func:`nonnegative`,
    :func:`flag`, :func:`choice`, :func:`device`, :func:`sequence`, :func:`fixed` or
    :func:`mapping` rather than directly.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`: ``"int"`` (an integer, not a bool), ``"real"`` (a finite real
        number, returned as a float), ``"bool"``, ``"choice"`` (one of ``choices``),
        ``"device"`` (a usable torch device, returned as a string), ``"sequence"`` (a list or
        tuple whose entries are each checked by ``item``, returned as a list), ``"tuple"`` (one
        :class:`Param` per position in ``items``, returned as a tuple) or ``"dict"`` (exactly
        the keys ``keys``, each value checked by ``item``, returned in the order of ``keys``).
    minimum, maximum : float, optional
        Inclusive bounds of an int or a real.
    above, below : float, optional
        Exclusive bounds of a real.
    choices : tuple of str
        The allowed values of a choice.
    item : Param, optional
        The check of every entry of a sequence, or every value of a dict.
    items : tuple of Param
        The checks of a tuple, position by position.
    labels : tuple of str
        Names of a tuple's positions, shown in messages (``THETA_GRID[2] (number of points)``).
    keys : tuple of str
        The keys a dict must have, all of them and no others.
    length : int, optional
        The exact length of a sequence.
    min_length : int
        The least length of a sequence (default 1: never empty).
    min_distinct : int
        The least number of distinct entries of a sequence.
    unique : bool
        Drop a sequence's repeated entries (as ``set`` would), keeping the first of each.
    order : {None, "ascending", "descending"}
        Sort a sequence after its entries are checked; None keeps the given order.
    reason : str
        Why the range is what it is; appended to the :class:`ValueError`'s message.
    """

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    item: Param | None = None
    items: tuple[Param, ...] = ()
    labels: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    length: int | None = None
    min_length: int = 1
    min_distinct: int = 1
    unique: bool = False
    order: str | None = None
    reason: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Param kind must be one of {KINDS}, got {self.kind!r}")
        if self.order not in (None, "ascending", "descending"):
            raise ValueError(
                f"Param order must be None, 'ascending' or 'descending', got {self.order!r}"
            )
        if self.kind in ("sequence", "dict") and self.item is None:
            raise ValueError(f"a {self.kind} Param needs an item Param")
        if self.labels and len(self.labels) != len(self.items):
            raise ValueError("a tuple Param needs one label per item")

    def describe(self) -> str:
        """What the parameter may hold, in words: ``"an integer >= 2"``."""
        span = _interval(self.minimum, self.maximum, self.above, self.below)
        if self.kind == "int":
            return f"an integer {span}".rstrip()
        if self.kind == "real":
            return f"a finite number {span}".rstrip()
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.choices))
        if self.kind == "device":
            return "'cpu', or a 'cuda' or 'mps' device available here"
        if self.kind == "tuple":
            parts = self.labels or tuple(p.describe() for p in self.items)
            return f"a tuple ({', '.join(parts)})"
        if self.kind == "dict":
            return "a dict with exactly the keys " + ", ".join(map(repr, self.keys))
        size = "" if self.length is None else f" of {_entries(self.length)}"
        return f"a list or tuple{size}, each entry {self.item.describe()}"

    def check(self, value: Any, name: str) -> Any:
        """``value`` checked and normalized; raises ``TypeError`` or ``ValueError`` naming it."""
        return _CHECKS[self.kind](self, value, name)


def _check_int(p: Param, value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _type_error(name, "an integer", value)
    value = int(value)
    if (p.minimum is not None and value < p.minimum) or (
        p.maximum is not None and value > p.maximum
    ):
        raise _value_error(name, p.describe(), value, p.reason)
    return value


def _check_real(p: Param, value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _type_error(name, "a real number", value)
    value = float(value)
    bad = (
        not math.isfinite(value)
        or (p.minimum is not None and value < p.minimum)
        or (p.maximum is not None and value > p.maximum)
        or (p.above is not None and value <= p.above)
        or (p.below is not None and value >= p.below)
    )
    if bad:
        raise _value_error(name, p.describe(), value, p.reason)
    return value


def _check_bool(p: Param, value, name: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(name, "True or False", value)
    return value


def _check_choice(p: Param, value, name: str) -> str:
    if not isinstance(value, str):
        raise _type_error(name, "a string", value)
    if value not in p.choices:
        raise _value_error(name, p.describe(), value, p.reason)
    return value


def _check_device(p: Param, value, name: str) -> str:
    """A device torch can use here: the CPU, or CUDA or MPS when this machine has them."""
    if not isinstance(value, (str, torch.device)):
        raise _type_error(name, "a device name such as 'cpu' or 'cuda'", value)
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        raise _value_error(name, "a torch device such as 'cpu' or 'cuda'", value) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        usable = count > 0 and (dev.index is None or dev.index < count)
        why = f"this machine has {count} CUDA device(s)"
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        usable = mps is not None and mps.is_available() and dev.index in (None, 0)
        why = "MPS is not available on this machine"
    else:
        usable, why = dev.type == "cpu", f"the {dev.type!r} device is not supported"
    if not usable:
        raise _value_error(name, p.describe(), value, why)
    return str(dev)


def _check_sequence(p: Param, value, name: str) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _type_error(name, "a list or tuple", value)
    if p.length is not None and len(value) != p.length:
        raise _value_error(name, f"a list or tuple of {_entries(p.length)}", value, p.reason)
    if len(value) < p.min_length:
        raise _value_error(name, f"a list or tuple of at least {_entries(p.min_length)}", value)
    out = [p.item.check(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if len(set(out)) < p.min_distinct:
        what = f"a list or tuple of at least {p.min_distinct} distinct entries"
        raise _value_error(name, what, value, p.reason)
    if p.unique:
        out = list(dict.fromkeys(out))
    if p.order is not None:
        out.sort(reverse=p.order == "descending")
    return out


def _check_tuple(p: Param, value, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _type_error(name, "a list or tuple", value)
    if len(value) != len(p.items):
        raise _value_error(name, p.describe(), value, p.reason)
    labels = p.labels or ("",) * len(p.items)
    return tuple(
        q.check(v, f"{name}[{i}]" + (f" ({label})" if label else ""))
        for i, (q, v, label) in enumerate(zip(p.items, value, labels, strict=True))
    )


def _check_dict(p: Param, value, name: str) -> dict:
    if not isinstance(value, Mapping):
        raise _type_error(name, "a dict", value)
    if set(value) != set(p.keys):
        got = ", ".join(map(repr, value)) or "none"
        raise ValueError(f"{name} must be {p.describe()}, got the keys {got}")
    return {k: p.item.check(value[k], f"{name}[{k!r}]") for k in p.keys}


_CHECKS: dict[str, Callable[[Param, Any, str], Any]] = {
    "int": _check_int,
    "real": _check_real,
    "bool": _check_bool,
    "choice": _check_choice,
    "device": _check_device,
    "sequence": _check_sequence,
    "tuple": _check_tuple,
    "dict": _check_dict,
}


def integer(minimum: int | None = 1, maximum: int | None = None, *, reason: str = "") -> Param:
    """An integer in ``[minimum, maximum]``; ``minimum`` defaults to 1 (a count)."""
    return Param("int", minimum=minimum, maximum=maximum, reason=reason)


def real(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    reason: str = "",
) -> Param:
    """A finite real number, returned as a float; ``minimum``/``maximum`` are inclusive bounds,
    ``above``/``below`` exclusive ones."""
    return Param("real", minimum=minimum, maximum=maximum, above=above, below=below, reason=reason)


def positive(*, reason: str = "") -> Param:
    """A finite real number > 0, returned as a float."""
    return real(above=0, reason=reason)


def nonnegative(maximum: float | None = None, *, below: float | None = None) -> Param:
    """A finite real number >= 0 (and at most ``maximum``, or under ``below``)."""
    return real(0, maximum, below=below)


def flag() -> Param:
    """``True`` or ``False`` (not 0 or 1)."""
    return Param("bool")


def choice(*options: str) -> Param:
    """One of the strings ``options``."""
    return Param("choice", choices=tuple(options))


def device() -> Param:
    """A torch device name this machine can use: ``"cpu"``, or ``"cuda"``/``"mps"`` (with an
    index, ``"cuda:1"``) where :func:`torch.cuda.is_available` (or MPS) says so. Returned as
    ``str(torch.device(value))``."""
    return Param("device")


def sequence(
    item: Param,
    *,
    order: str | None = None,
    unique: bool = False,
    length: int | None = None,
    min_length: int = 1,
    min_distinct: int = 1,
    reason: str = "",
) -> Param:
    """A list or tuple of entries each checked by ``item``, returned as a list: sorted by
    ``order`` (``"ascending"``, ``"descending"``), without repeats if ``unique``."""
    return Param(
        "sequence",
        item=item,
        order=order,
        unique=unique,
        length=length,
        min_length=min_length,
        min_distinct=min_distinct,
        reason=reason,
    )


def fixed(*items: Param, labels: Sequence[str] = (), reason: str = "") -> Param:
    """A tuple of ``len(items)`` entries, entry ``i`` checked by ``items[i]``; returned as a
    tuple. ``labels`` name the positions in messages."""
    return Param("tuple", items=tuple(items), labels=tuple(labels), reason=reason)


def mapping(keys: Sequence[str], value: Param) -> Param:
    """A dict with exactly the keys ``keys``, every value checked by ``value``; returned with its
    keys in the order of ``keys``."""
    return Param("dict", keys=tuple(keys), item=value)


@dataclass(frozen=True)
class Rule:
    """A constraint between parameters, checked once each of them has passed its own check.

    Parameters
    ----------
    names : tuple of str
        The parameters it reads; the first is the one it constrains (and its message names).
    holds : callable
        Called with the (checked, normalized) values of ``names``, in order; true when the
        constraint holds.
    message : str or callable
        The :class:`ValueError`'s message: a :meth:`str.format` template over the values by
        name (``"THETA_GRID must have min < max, got {THETA_GRID}"``), or a function of the
        values' mapping that returns it.

    See Also
    --------
    at_least, at_most : the common rules, one parameter bounded by another.
    """

    names: tuple[str, ...]
    holds: Callable[..., bool]
    message: str | Callable[[Mapping[str, Any]], str]

    def check(self, values: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` with the message unless the constraint holds."""
        if not self.holds(*(values[n] for n in self.names)):
            message = self.message
            raise ValueError(message(values) if callable(message) else message.format(**values))


def _bound_text(other: str, factor: int, offset: int, divisor: int) -> str:
    text = other if factor == 1 else f"{factor} * {other}"
    text = text if divisor == 1 else f"{text} // {divisor}"
    return text if offset == 0 else f"{text} + {offset}"


def at_least(name: str, other: str, *, factor: int = 1, offset: int = 0) -> Rule:
    """``name >= factor * other + offset``: ``at_least("LONG_STEPS", "MLP_STEPS")``.

    Its message gives the bound and its value: ``"GRAD_BUDGET must be >= 20 * N_LEAPFROG = 200,
    got 100"``.
    """
    text = _bound_text(other, factor, offset, 1)
    return Rule(
        (name, other),
        lambda x, y: x >= factor * y + offset,
        lambda v: f"{name} must be >= {text} = {factor * v[other] + offset}, got {v[name]}",
    )


def at_most(name: str, other: str, *, divisor: int = 1) -> Rule:
    """``name <= other // divisor``: ``at_most("TRACK_EVERY", "N_EPOCHS", divisor=2)``."""
    text = _bound_text(other, 1, 0, divisor)
    return Rule(
        (name, other),
        lambda x, y: x <= y // divisor,
        lambda v: f"{name} must be <= {text} = {v[other] // divisor}, got {v[name]}",
    )


@dataclass(frozen=True)
class ParameterSpec:
    """A chapter's parameters: a :class:`Param` for each name, in the parameters cell's order,
    and the :class:`Rule` objects between them."""

    params: Mapping[str, Param]
    rules: tuple[Rule, ...] = field(default=())

    def __post_init__(self):
        for rule in self.rules:
            unknown = [n for n in rule.names if n not in self.params]
            if unknown:
                raise ValueError(f"a rule reads {unknown}, which the spec does not declare")

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters' names, in order."""
        return tuple(self.params)

    def check(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The checked, normalized values of exactly this spec's names, read from ``values``.

        Each parameter is checked in order, then each rule; the first failure raises.

        Raises
        ------
        TypeError
            A value of the wrong type, naming the parameter.
        ValueError
            A value out of its range, a broken rule, or a name ``values`` lacks.
        """
        missing = [n for n in self.params if n not in values]
        if missing:
            raise ValueError(f"{', '.join(missing)} not set (the parameters cell declares them)")
        out = {n: p.check(values[n], n) for n, p in self.params.items()}
        for rule in self.rules:
            rule.check(out)
        return out


def read_parameters_cell(source: str) -> dict[str, Any]:
    """The ``{NAME: value}`` assignments of a parameters cell, read without executing it.

    Every statement must assign a literal (numbers, strings, tuples, lists, dicts, with signs)
    to one name, as papermill's parameters cells do; comments are ignored.

    Raises
    ------
    ValueError
        A statement that is not such an assignment.
    """
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if not (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(target, ast.Name)
        ):
            raise ValueError(f"line {node.lineno} of the parameters cell is not `NAME = literal`")
        try:
            values[target.id] = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(
                f"{target.id} (line {node.lineno} of the parameters cell) is not a literal"
            ) from None
    return values
