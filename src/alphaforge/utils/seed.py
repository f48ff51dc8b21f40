"""One place that seeds global RNGs at the start of a run; models use explicit generators."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and (if installed) torch global RNGs, and return a NumPy generator.

    Args:
        seed: Non-negative integer seed.

    Returns:
        A fresh ``np.random.Generator`` seeded with ``seed``.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # torch is a core dependency, but seeding must not require it
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)
