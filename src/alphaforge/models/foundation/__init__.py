"""Zero-shot foundation-model adapters and the sample aggregations they share.

- :mod:`~alphaforge.models.foundation.kronos`: Kronos, our own implementation (no extra needed to
  run; ``safetensors`` to read released weights: ``alphaforge[kronos]``).
- :mod:`~alphaforge.models.foundation.toto`: Toto through ``toto-ts`` (``alphaforge[toto]``).
- :mod:`~alphaforge.models.foundation.chronos`: Chronos-Bolt through ``chronos-forecasting``
  (``alphaforge[chronos]``).

The Toto and Chronos modules import their packages at import time; they are reached through the
registry (``get_model("toto")``), which turns a missing package into an install hint. The adapter
base (torch) is imported on first use, so the sample aggregations (numpy only) serve tuning
without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from alphaforge.models.foundation.aggregate import (
    AGGREGATIONS,
    aggregate,
    check_aggregation,
    score_sample_bank,
)

if TYPE_CHECKING:
    from alphaforge.models.foundation.base import FoundationAdapter, FoundationParams

__all__ = [
    "AGGREGATIONS",
    "FoundationAdapter",
    "FoundationParams",
    "aggregate",
    "check_aggregation",
    "score_sample_bank",
]

_LAZY = {"FoundationAdapter", "FoundationParams"}  # torch-based: imported on first use


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("alphaforge.models.foundation.base"), name)
    globals()[name] = value
    return value
