"""alphaforge: honest, out-of-sample forecasts, rankings and backtests for panels of market bars.

The public API is imported lazily, so ``import alphaforge`` stays fast and has no side effects.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_API = {
    "load_panel": "alphaforge.data:load_panel",
    "validate_panel": "alphaforge.data:validate_panel",
    "builtin_datasets": "alphaforge.data:builtin_datasets",
    "synthetic_panel": "alphaforge.data:synthetic_panel",
    "build_features": "alphaforge.features:build_features",
    "FEATURES": "alphaforge.features:FEATURES",
    "PCAFactors": "alphaforge.features.pca:PCAFactors",
    "forward_return": "alphaforge.labels:forward_return",
    "make_label": "alphaforge.labels:make_label",
    "WalkForward": "alphaforge.splits:WalkForward",
    "Fold": "alphaforge.splits:Fold",
    "get_model": "alphaforge.registry:get_model",
    "list_models": "alphaforge.registry:list_models",
    "run_experiment": "alphaforge.run:run_experiment",
    "fit": "alphaforge.bundle:fit",
    "predict": "alphaforge.bundle:predict",
    "Bundle": "alphaforge.bundle:Bundle",
    "load_bundle": "alphaforge.bundle:load_bundle",
    "tune": "alphaforge.tuning:tune",
    # `backtest` is a module of the same name: use alphaforge.backtest.backtest (a lazy alias
    # here would shadow the submodule)
    "bar_returns": "alphaforge.backtest:bar_returns",
    "load_config": "alphaforge.config:load_config",
    "ExperimentConfig": "alphaforge.config:ExperimentConfig",
    "AlphaforgeError": "alphaforge.errors:AlphaforgeError",
    "DataError": "alphaforge.errors:DataError",
    "ConfigError": "alphaforge.errors:ConfigError",
    "NotFittedError": "alphaforge.errors:NotFittedError",
    "LeakageError": "alphaforge.errors:LeakageError",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    try:
        target = _API[name]
    except KeyError:
        raise AttributeError(f"module 'alphaforge' has no attribute {name!r}") from None
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
