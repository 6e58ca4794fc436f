"""Fixtures shared by the core tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Intra-op threads only slow these small ops down on a shared 2-core machine (results are identical)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
