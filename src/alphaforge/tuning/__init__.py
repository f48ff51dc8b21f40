"""Building blocks of :mod:`alphaforge.tune`: the promotion gate and the Optuna storages."""

from alphaforge.tuning.gate import improvement, promote
from alphaforge.tuning.storage import (
    OWNER_ATTR,
    open_storage,
    repair_journal,
    resolve_storage,
    sweep,
    sweep_stale,
)

__all__ = ["OWNER_ATTR", "improvement", "open_storage", "promote", "repair_journal",
           "resolve_storage", "sweep", "sweep_stale"]
