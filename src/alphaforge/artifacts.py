"""The files of a run directory: their names, in one place for ``run``, ``report`` and ``backtest``.

::

    config.yaml                  resolved config
    predictions.parquet          timestamp, symbol, model, fold, split (valid|test), y_true, y_pred
    metrics.json                 per model: overall and per fold, for valid and test
    folds.json                   each fold's segment boundaries
    backtest.parquet             per-bar portfolio returns of each model's test predictions, at the
                                 configured delay ("base") and one bar later ("lagged")
    returns.parquet              one-bar returns the backtest used (for `alphaforge backtest`)
    feature_importance.parquet   tree models' importances per fold
    history.parquet              neural models' training curves per fold
    ensemble_components.parquet  residual ensembles: base, residual and final per row
    fusion_weights.json          fusion ensembles' weights and intercept per fold
    report.html                  self-contained report
    models/<model>/fold_<k>/     saved models (native formats + meta.json)
    run.log                      the library's log of the run
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "config.yaml"
PREDICTIONS = "predictions.parquet"
METRICS = "metrics.json"
FOLDS = "folds.json"
BACKTEST = "backtest.parquet"
RETURNS = "returns.parquet"
FEATURE_IMPORTANCE = "feature_importance.parquet"
HISTORY = "history.parquet"
GATES = "gates.parquet"
TUNING = "tuning.parquet"
ENSEMBLE_COMPONENTS = "ensemble_components.parquet"
FUSION_WEIGHTS = "fusion_weights.json"
REPORT = "report.html"
RUN_LOG = "run.log"
MODELS_DIR = "models"

#: what a fitted model's ``run_outputs()`` may return, and the file each one is written to
MODEL_OUTPUTS = {"ensemble_components": ENSEMBLE_COMPONENTS, "fusion_weights": FUSION_WEIGHTS}

#: files every run directory has (the report needs them)
REQUIRED = (CONFIG, METRICS, PREDICTIONS)


def model_dir(run_dir: Path, model: str, fold: int) -> Path:
    """Where a run saves the model ``model`` fitted in fold ``fold``."""
    return run_dir / MODELS_DIR / model / f"fold_{fold}"


def checkpoint_root(run_dir: Path) -> Path:
    """The folder beside ``run_dir`` that holds training checkpoints until the run completes."""
    return run_dir.with_name(run_dir.name + ".ckpt")


def to_json(obj: Any) -> str:
    """``obj`` as indented JSON; numpy scalars become Python numbers, NaN/inf become null."""
    return json.dumps(jsonable(obj), indent=2)


def jsonable(obj: Any) -> Any:
    """``obj`` with string keys, numpy scalars as Python numbers and non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
