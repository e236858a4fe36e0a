import pytest
import torch

# Unit tests use one torch thread: their tensors are small, so a second thread costs more in synchronisation than
# it saves, and on a loaded 2-core machine it oversubscribes the CPU (measured: AIS in 16-d, 2.4 s with one
# thread against 60 s with two while other jobs ran).
torch.set_num_threads(1)


@pytest.fixture
def gen():
    """A fresh, fixed-seed generator for each test (seeds are fixed, never searched)."""
    return torch.Generator().manual_seed(1234)
