"""Zero-shot foundation-model adapters and the sample aggregations they share.

- :mod:`~alphaforge.models.foundation.kronos`: Kronos, our own implementation (no extra needed to
  run; ``safetensors`` to read released weights: ``alphaforge[kronos]``).
- :mod:`~alphaforge.models.foundation.toto`: Toto through ``toto-ts`` (``alphaforge[toto]``).
- :mod:`~alphaforge.models.foundation.chronos`: Chronos-Bolt through ``chronos-forecasting``
  (``alphaforge[chronos]``).

The Toto and Chronos modules import their packages at import time; they are reached through the
registry (``get_model("toto")``), which turns a missing package into an install hint.
"""

from __future__ import annotations

from alphaforge.models.foundation.aggregate import (
    AGGREGATIONS,
    aggregate,
    check_aggregation,
    score_sample_bank,
)
from alphaforge.models.foundation.base import FoundationAdapter, FoundationParams

__all__ = ["AGGREGATIONS", "FoundationAdapter", "FoundationParams", "aggregate",
           "check_aggregation", "score_sample_bank"]
