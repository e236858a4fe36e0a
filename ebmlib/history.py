"""The record of a training run, shared by the training loop and the RBM trainer."""

from __future__ import annotations

import torch

__all__ = ["History"]


class History(dict):
    """Record of a run: a dict mapping a name (``"step"``, ``"loss"``, any logged key) to a list.

    Attributes
    ----------
    stopped_early : bool
        True when a callback asked the loop to stop.
    """

    stopped_early: bool = False

    def append(self, logs: dict) -> None:
        for key, value in logs.items():
            self.setdefault(key, []).append(value)

    def record(self, step: int, logs: dict, callbacks) -> bool:
        """Call ``callback(step, logs)`` for each callback (they may add entries), append ``logs``,
        and return True (setting :attr:`stopped_early`) when any callback returned a truthy value.
        """
        stop = False
        for callback in callbacks:
            stop = bool(callback(step, logs)) or stop
        self.append(logs)
        self.stopped_early = stop
        return stop

    def as_tensor(self, key: str) -> torch.Tensor:
        """The record ``key`` as a float64 tensor."""
        return torch.as_tensor(self[key], dtype=torch.float64)
