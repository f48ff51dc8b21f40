"""Hyperparameter search per ``(symbol, model)`` with Optuna, a promotion gate and crash-safe
storage.

One Optuna study per ``(symbol, model)`` named ``"{symbol}:{model}"``; each model brings its own
``search_space(trial)``. Every option is a field of :class:`TuneConfig`, given from Python
(``tune(data=..., model=..., trials=20)``), YAML (:func:`load_tune_config`) or the command line
(``alphaforge tune``), in the same units everywhere (``min_improvement`` in percent).

Modules, one concern each:

- :mod:`~alphaforge.tuning.config`: :class:`TuneConfig`, YAML loading, model names;
- :mod:`~alphaforge.tuning.windows`: each symbol's rows cut into validation folds and a test
  window (:func:`prepare`, :func:`cut_windows`);
- :mod:`~alphaforge.tuning.objective`: fit on the past, score the window (:func:`fit_score`);
- :mod:`~alphaforge.tuning.search`: worker processes and the live :func:`study_status`;
- :mod:`~alphaforge.tuning.storage`: :class:`StorageSpec`, opening storages, the sweeper;
- :mod:`~alphaforge.tuning.gate`: the promotion gate (:func:`promote`);
- :mod:`~alphaforge.tuning.results`: hyperparams records, run summaries, :func:`tune_history`;
- :mod:`~alphaforge.tuning.api`: :func:`tune`.

Names are imported lazily, so reading :class:`TuneConfig` (the command line does) does not
import Optuna, the data layer or the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alphaforge.tuning.api import tune
    from alphaforge.tuning.config import (
        TuneConfig,
        load_tune_config,
        make_tune_config,
        resolve_models,
    )
    from alphaforge.tuning.gate import Direction, improvement, promote
    from alphaforge.tuning.objective import PRUNE_EVERY, fit_score, fit_score_bank
    from alphaforge.tuning.results import SymbolResult, TuneSummary, tune_history
    from alphaforge.tuning.search import (
        StudyStatus,
        TuneJob,
        run_worker,
        study_name,
        study_status,
    )
    from alphaforge.tuning.storage import (
        OWNER_ATTR,
        StorageSpec,
        open_storage,
        repair_journal,
        resolve_storage,
        sweep,
        sweep_stale,
    )
    from alphaforge.tuning.windows import SymbolData, Window, cut_windows, data_hash, prepare

# public name -> submodule that defines it
_API = {
    "tune": "api",
    "TuneConfig": "config",
    "load_tune_config": "config",
    "make_tune_config": "config",
    "resolve_models": "config",
    "Direction": "gate",
    "improvement": "gate",
    "promote": "gate",
    "PRUNE_EVERY": "objective",
    "fit_score": "objective",
    "fit_score_bank": "objective",
    "SymbolResult": "results",
    "TuneSummary": "results",
    "tune_history": "results",
    "StudyStatus": "search",
    "TuneJob": "search",
    "run_worker": "search",
    "study_name": "search",
    "study_status": "search",
    "OWNER_ATTR": "storage",
    "StorageSpec": "storage",
    "open_storage": "storage",
    "repair_journal": "storage",
    "resolve_storage": "storage",
    "sweep": "storage",
    "sweep_stale": "storage",
    "SymbolData": "windows",
    "Window": "windows",
    "cut_windows": "windows",
    "data_hash": "windows",
    "prepare": "windows",
}

__all__ = [
    "Direction",
    "OWNER_ATTR",
    "PRUNE_EVERY",
    "StorageSpec",
    "StudyStatus",
    "SymbolData",
    "SymbolResult",
    "TuneConfig",
    "TuneJob",
    "TuneSummary",
    "Window",
    "cut_windows",
    "data_hash",
    "fit_score",
    "fit_score_bank",
    "improvement",
    "load_tune_config",
    "make_tune_config",
    "open_storage",
    "prepare",
    "promote",
    "repair_journal",
    "resolve_models",
    "resolve_storage",
    "run_worker",
    "study_name",
    "study_status",
    "sweep",
    "sweep_stale",
    "tune",
    "tune_history",
]


def __getattr__(name: str) -> Any:
    try:
        module = _API[name]
    except KeyError:
        raise AttributeError(f"module 'alphaforge.tuning' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"alphaforge.tuning.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
