"""Forecasters: one estimator contract (:class:`BaseForecaster`) over many model families.

Build models by registry name (``alphaforge.get_model("lightgbm")``); the classes are also
reachable here by name (``alphaforge.models.LightGBMForecaster``), imported on first use so that
``import alphaforge.models`` does not pull in LightGBM, XGBoost or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from alphaforge.models.base import BaseForecaster, Capabilities, EmptyConfig
from alphaforge.registry import MODELS

__all__ = ["BaseForecaster", "Capabilities", "EmptyConfig"]


def __getattr__(name: str) -> Any:
    for entry in MODELS.values():
        module, _, attr = entry.target.partition(":")
        if attr == name:
            value = getattr(importlib.import_module(module), attr)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
