"""Independent random streams for a chapter's purposes, all derived from its one ``SEED``.

A chapter that seeds its generators with ``SEED``, ``SEED + 1``, ``SEED * R + r`` ... can give two
purposes the same stream by accident: at ``SEED = 0`` a fit seeded with ``SEED * R + 0`` draws the
very normals that made the data. :func:`stream` derives each purpose's seed from ``SEED`` and the
purpose's name (and index) through NumPy's :class:`numpy.random.SeedSequence`, whose spawn keys
give statistically independent streams for distinct keys.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from ..validation import check_int


def _key(part: int | str) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode())  # stable across runs and machines, unlike hash()
    return check_int(part, "purpose", minimum=0)


def stream(seed: int, *purpose: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    """A :class:`torch.Generator` for one purpose of a run, independent of every other purpose.

    Parameters
    ----------
    seed : int
        The run's seed (a chapter's ``SEED``), >= 0.
    *purpose : str or int
        What the stream is for, e.g. ``("sgd fit", r)``: distinct purposes give independent
        streams, the same purpose always the same one. Integers must be >= 0.
    device : torch.device or str, optional
        Where the generator draws (default CPU).

    Returns
    -------
    torch.Generator
        Seeded with the first 32-bit word of ``SeedSequence(seed, spawn_key=purpose)`` (torch's
        CPU generator keeps 32 bits of a seed, so two of n purposes share a stream with
        probability about n^2 / 2^33).

    Examples
    --------
    >>> a = torch.randn(3, generator=stream(0, "data"))
    >>> b = torch.randn(3, generator=stream(0, "fit", 0))
    >>> bool((a == b).any())
    False
    """
    seed = check_int(seed, "seed", minimum=0)
    if not purpose:
        raise ValueError("purpose: name what the stream is for, e.g. stream(SEED, 'fit', r)")
    for part in purpose:
        if isinstance(part, bool) or not isinstance(part, (str, int)):
            raise TypeError(f"purpose: parts must be str or int, got {type(part).__name__}")
    words = np.random.SeedSequence(seed, spawn_key=tuple(_key(p) for p in purpose))
    state = int(words.generate_state(1, dtype=np.uint32)[0])
    return torch.Generator(device=device).manual_seed(state)
