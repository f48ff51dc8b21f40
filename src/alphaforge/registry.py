"""Explicit, lazy tables from the short names used in configs to the classes that implement them.

Adding a model is one file plus one line in :data:`MODELS`;
:func:`alphaforge.testing.check_forecaster` then runs the contract suite on it
(``tests/models/test_contract.py`` walks this table). Nothing is imported until a name is asked
for, so ``alphaforge --help`` does not import torch or LightGBM.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alphaforge.errors import ConfigError

if TYPE_CHECKING:
    from alphaforge.models.base import BaseForecaster


@dataclass(frozen=True)
class ModelEntry:
    """One registry row.

    Attributes:
        target: ``"module:Class"`` of the forecaster.
        family: ``"tree"``, ``"baseline"``, ``"neural"``, ...
        extra: The pip extra that installs its optional dependencies, or ``None`` when the core
            install has everything.
        description: One line for ``alphaforge models``.
    """

    target: str
    family: str
    extra: str | None
    description: str


MODELS: dict[str, ModelEntry] = {
    "lightgbm": ModelEntry(
        "alphaforge.models.trees:LightGBMForecaster",
        "tree",
        None,
        "LightGBM GBDT, early stopping on the validation window",
    ),
    "xgboost": ModelEntry(
        "alphaforge.models.trees:XGBoostForecaster",
        "tree",
        None,
        "XGBoost hist GBDT, early stopping on the validation window",
    ),
    "random_forest": ModelEntry(
        "alphaforge.models.trees:RandomForestForecaster",
        "tree",
        None,
        "scikit-learn random forest, saved as pickle-free node arrays",
    ),
    "lstm": ModelEntry(
        "alphaforge.models.rnn:LSTMForecaster",
        "neural",
        None,
        "stacked LSTM over per-symbol lookback windows",
    ),
    "gru": ModelEntry(
        "alphaforge.models.rnn:GRUForecaster",
        "neural",
        None,
        "stacked GRU over per-symbol lookback windows",
    ),
    "residual_lstm": ModelEntry(
        "alphaforge.models.rnn:ResidualLSTMForecaster",
        "neural",
        None,
        "LSTM layers with pre-LayerNorm residual connections",
    ),
    "attention_lstm": ModelEntry(
        "alphaforge.models.rnn:AttentionLSTMForecaster",
        "neural",
        None,
        "LSTM with attention pooling over the window",
    ),
    "cnn_lstm": ModelEntry(
        "alphaforge.models.rnn:CNNLSTMForecaster",
        "neural",
        None,
        "causal Conv1d feature extractor, then an LSTM",
    ),
    "multitask_lstm": ModelEntry(
        "alphaforge.models.rnn:MultiTaskLSTMForecaster",
        "neural",
        None,
        "LSTM with return and volatility heads (MSE + QLIKE)",
    ),
    "transformer": ModelEntry(
        "alphaforge.models.transformer:TransformerForecaster",
        "neural",
        None,
        "pre-LN causal transformer encoder, last-token head",
    ),
    "multitask_transformer": ModelEntry(
        "alphaforge.models.transformer:MultiTaskTransformerForecaster",
        "neural",
        None,
        "transformer with return and volatility heads (MSE + QLIKE)",
    ),
    "ranker": ModelEntry(
        "alphaforge.models.ranker:RankingTransformerForecaster",
        "neural",
        None,
        "gated transformer ranking assets per date (multi-lag/horizon heads)",
    ),
    "gpt": ModelEntry(
        "alphaforge.models.gpt_forecaster:TokenGPTForecaster",
        "neural",
        None,
        "GPT over VQ-VAE return tokens; forecasts from sampled continuations",
    ),
    "kronos": ModelEntry(
        "alphaforge.models.foundation.kronos:KronosAdapter",
        "foundation",
        "kronos",
        "Kronos candle-token foundation model, zero-shot samples",
    ),
    "toto": ModelEntry(
        "alphaforge.models.foundation.toto:TotoAdapter",
        "foundation",
        "toto",
        "Toto (toto-ts) Student-t mixture foundation model, zero-shot samples",
    ),
    "chronos": ModelEntry(
        "alphaforge.models.foundation.chronos:ChronosAdapter",
        "foundation",
        "chronos",
        "Chronos-Bolt quantile foundation model, zero-shot",
    ),
    "residual": ModelEntry(
        "alphaforge.models.ensemble:ResidualForecaster",
        "ensemble",
        None,
        "base model + a model of its out-of-fold residuals",
    ),
    "fusion": ModelEntry(
        "alphaforge.models.ensemble:FusionForecaster",
        "ensemble",
        None,
        "OLS / ridge / non-negative blend fitted on out-of-fold predictions",
    ),
    "weighted": ModelEntry(
        "alphaforge.models.ensemble:WeightedForecaster",
        "ensemble",
        None,
        "fixed or equal weights, optionally a cross-sectional rank average",
    ),
    "per_symbol": ModelEntry(
        "alphaforge.models.per_symbol:PerSymbolForecaster",
        "ensemble",
        None,
        "one model per symbol, each fitted with its tuned params (hyperparams/best)",
    ),
    "zero": ModelEntry(
        "alphaforge.models.baselines:ZeroForecaster",
        "baseline",
        None,
        "predicts 0 (no-skill return forecast)",
    ),
    "trailing_mean": ModelEntry(
        "alphaforge.models.baselines:TrailingMeanForecaster",
        "baseline",
        None,
        "per-symbol mean of the training labels",
    ),
    "last_value": ModelEntry(
        "alphaforge.models.baselines:LastValueForecaster",
        "baseline",
        None,
        "predicts one feature column, e.g. the last realised return",
    ),
    "garch": ModelEntry(
        "alphaforge.models.baselines:GarchForecaster",
        "baseline",
        None,
        "per-symbol GARCH(1,1) forecast of realised volatility over h bars",
    ),
}

BASELINES: tuple[str, ...] = ("zero", "trailing_mean", "last_value", "garch")
"""Registry names of the reference models every run can be compared against; see
:func:`baselines_for` for the ones that suit a label kind (``garch`` only for volatility)."""


def get_model(name: str) -> type[BaseForecaster]:
    """Import and return the forecaster class registered under ``name``.

    Args:
        name: A key of :data:`MODELS`, e.g. ``"lightgbm"``.

    Returns:
        The class (unfitted; build it with ``cls.from_params(params, random_state=seed)``).

    Raises:
        ConfigError: unknown name (lists the valid ones), or a missing optional package (says
            what to install).
    """
    try:
        entry = MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}"
        ) from None
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.partition(".")[0] == "alphaforge":
            raise  # our own module is missing: a packaging bug, keep the traceback
        extra = entry.extra
        hint = f"pip install 'alphaforge[{extra}]'" if extra else f"pip install {exc.name}"
        raise ConfigError(
            f"model {name!r} needs the package {exc.name!r}, which is not installed; "
            f"install it with: {hint}"
        ) from exc
    return getattr(module, attr)


def name_of(cls: type) -> str | None:
    """Registry name of a forecaster class, or ``None`` if it is not registered."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for name, entry in MODELS.items() if entry.target == target), None)


def list_models() -> list[dict[str, Any]]:
    """One row per registered model, for ``alphaforge models``.

    Returns:
        Dicts with ``name``, ``family``, ``extra``, ``description``, ``baseline`` (bool),
        ``available`` (its dependencies import) and ``capabilities`` (a dict, ``None`` when the
        model cannot be imported). Importing each model happens here, not at import time.
    """
    rows = []
    for name, entry in MODELS.items():
        try:
            capabilities = dataclasses.asdict(get_model(name).capabilities)
        except ConfigError:
            capabilities = None
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "extra": entry.extra,
                "description": entry.description,
                "baseline": name in BASELINES,
                "available": capabilities is not None,
                "capabilities": capabilities,
            }
        )
    return rows


def baselines_for(label_kind: str) -> list[str]:
    """Baselines meant for a label kind (read from each model's ``capabilities.label_kinds``).

    Args:
        label_kind: ``"return"``, ``"volatility"``, ...

    Returns:
        Registry names from :data:`BASELINES`, in table order.
    """
    return [n for n in BASELINES if label_kind in get_model(n).capabilities.label_kinds]
