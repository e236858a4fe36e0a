import pytest
import torch


@pytest.fixture
def gen():
    """A fresh, fixed-seed generator for each test (seeds are fixed, never searched)."""
    return torch.Generator().manual_seed(1234)
