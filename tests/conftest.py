"""Fixtures for the whole suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests train tiny nets, where torch's thread pool only adds contention (and, on a busy
    machine, long stalls); every test runs on one intra-op thread and restores the setting."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
