"""Explicit, lazy tables from the short names used in configs to the classes that implement them.

Adding a model is one file plus one line in :data:`MODELS`;
:func:`alphaforge.testing.check_forecaster` then runs the contract suite on it
(``tests/models/test_contract.py`` walks this table). Nothing is imported until a name is asked
for, so ``alphaforge --help`` does not import torch or LightGBM. Each row also states what
``alphaforge models`` lists (family, extra, description, capability flags, label kinds and the
packages it imports), so :func:`list_models` imports no model module;
``tests/models/test_registry.py`` holds every row equal to its class's ``capabilities``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alphaforge.errors import ConfigError

if TYPE_CHECKING:
    from alphaforge.models.base import BaseForecaster


#: Fields of ``alphaforge.models.base.Capabilities``, in order (the test suite holds them equal).
CAPABILITY_FIELDS: tuple[str, ...] = (
    "family",
    "supports_valid",
    "early_stopping",
    "needs_sequence",
    "cross_sectional",
    "multi_output",
    "feature_importance",
    "label_kinds",
    "deterministic_cpu",
    "needs_context",
    "checkpointable",
)
_FLAGS = frozenset(CAPABILITY_FIELDS) - {"family", "label_kinds"}  # the boolean ones


@dataclass(frozen=True)
class ModelEntry:
    """One registry row.

    Attributes:
        target: ``"module:Class"`` of the forecaster.
        family: ``"tree"``, ``"baseline"``, ``"neural"``, ...
        extra: The pip extra that installs its optional dependencies, or ``None`` when the core
            install has everything.
        description: One line for ``alphaforge models``.
        flags: The boolean ``capabilities`` of the class that are true (``needs_context``
            resolved), or ``None`` when the row does not state them: :func:`list_models` then
            imports the class to read them (a model registered from outside the package).
        label_kinds: ``capabilities.label_kinds`` of the class.
        requires: Top-level packages its module imports beyond the core ones (numpy, pandas,
            scipy); :func:`list_models` checks them with ``importlib.util.find_spec``.
    """

    target: str
    family: str
    extra: str | None
    description: str
    flags: tuple[str, ...] | None = None
    label_kinds: tuple[str, ...] = ("return", "volatility")
    requires: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.flags or ()) - _FLAGS)
        if unknown:
            raise ValueError(f"ModelEntry {self.target}: unknown flags {unknown}")


# capability flags and packages shared by several rows
_GBDT = ("supports_valid", "early_stopping", "feature_importance", "deterministic_cpu")
_SEQ = (
    "supports_valid",
    "early_stopping",
    "needs_sequence",
    "deterministic_cpu",
    "needs_context",
    "checkpointable",
)
_SEQ_MULTI = (*_SEQ, "multi_output")
_FOUNDATION = ("needs_sequence", "deterministic_cpu", "needs_context")
_ENSEMBLE = ("supports_valid", "needs_sequence", "deterministic_cpu", "needs_context")
_TREES = ("lightgbm", "xgboost", "sklearn")  # trees.py and forest.py import all three
_TORCH = ("torch",)
_RETURN = ("return",)


MODELS: dict[str, ModelEntry] = {
    "lightgbm": ModelEntry(
        "alphaforge.models.trees:LightGBMForecaster",
        "tree",
        None,
        "LightGBM GBDT, early stopping on the validation window",
        flags=_GBDT,
        requires=_TREES,
    ),
    "xgboost": ModelEntry(
        "alphaforge.models.trees:XGBoostForecaster",
        "tree",
        None,
        "XGBoost hist GBDT, early stopping on the validation window",
        flags=_GBDT,
        requires=_TREES,
    ),
    "random_forest": ModelEntry(
        "alphaforge.models.forest:RandomForestForecaster",
        "tree",
        None,
        "random forest on LightGBM rf (engine: sklearn for exact CART)",
        flags=("feature_importance", "deterministic_cpu"),
        requires=_TREES,
    ),
    "lstm": ModelEntry(
        "alphaforge.models.rnn:LSTMForecaster",
        "neural",
        None,
        "stacked LSTM over per-symbol lookback windows",
        flags=_SEQ,
        requires=_TORCH,
    ),
    "gru": ModelEntry(
        "alphaforge.models.rnn:GRUForecaster",
        "neural",
        None,
        "stacked GRU over per-symbol lookback windows",
        flags=_SEQ,
        requires=_TORCH,
    ),
    "residual_lstm": ModelEntry(
        "alphaforge.models.rnn:ResidualLSTMForecaster",
        "neural",
        None,
        "LSTM layers with pre-LayerNorm residual connections",
        flags=_SEQ,
        requires=_TORCH,
    ),
    "attention_lstm": ModelEntry(
        "alphaforge.models.rnn:AttentionLSTMForecaster",
        "neural",
        None,
        "LSTM with attention pooling over the window",
        flags=_SEQ,
        requires=_TORCH,
    ),
    "cnn_lstm": ModelEntry(
        "alphaforge.models.rnn:CNNLSTMForecaster",
        "neural",
        None,
        "causal Conv1d feature extractor, then an LSTM",
        flags=_SEQ,
        requires=_TORCH,
    ),
    "multitask_lstm": ModelEntry(
        "alphaforge.models.rnn:MultiTaskLSTMForecaster",
        "neural",
        None,
        "LSTM with return and volatility heads (MSE + QLIKE)",
        flags=_SEQ_MULTI,
        requires=_TORCH,
    ),
    "transformer": ModelEntry(
        "alphaforge.models.transformer:TransformerForecaster",
        "neural",
        None,
        "pre-LN causal transformer encoder, last-token head",
        flags=_SEQ,
        requires=_TORCH,
    ),
    "multitask_transformer": ModelEntry(
        "alphaforge.models.transformer:MultiTaskTransformerForecaster",
        "neural",
        None,
        "transformer with return and volatility heads (MSE + QLIKE)",
        flags=_SEQ_MULTI,
        requires=_TORCH,
    ),
    "ranker": ModelEntry(
        "alphaforge.models.ranker:RankingTransformerForecaster",
        "neural",
        None,
        "gated transformer ranking assets per date (multi-lag/horizon heads)",
        flags=_SEQ_MULTI,
        label_kinds=_RETURN,
        requires=_TORCH,
    ),
    "gpt": ModelEntry(
        "alphaforge.models.gpt_forecaster:TokenGPTForecaster",
        "neural",
        None,
        "GPT over VQ-VAE return tokens; forecasts from sampled continuations",
        flags=_SEQ,
        label_kinds=_RETURN,
        requires=_TORCH,
    ),
    "kronos": ModelEntry(
        "alphaforge.models.foundation.kronos:KronosAdapter",
        "foundation",
        "kronos",
        "Kronos candle-token foundation model, zero-shot samples",
        flags=_FOUNDATION,
        requires=_TORCH,
    ),
    "toto": ModelEntry(
        "alphaforge.models.foundation.toto:TotoAdapter",
        "foundation",
        "toto",
        "Toto (toto-ts) Student-t mixture foundation model, zero-shot samples",
        flags=_FOUNDATION,
        requires=("torch", "toto", "gluonts"),
    ),
    "chronos": ModelEntry(
        "alphaforge.models.foundation.chronos:ChronosAdapter",
        "foundation",
        "chronos",
        "Chronos-Bolt quantile foundation model, zero-shot",
        flags=_FOUNDATION,
        label_kinds=_RETURN,
        requires=("torch", "chronos", "transformers"),
    ),
    "residual": ModelEntry(
        "alphaforge.models.ensemble:ResidualForecaster",
        "ensemble",
        None,
        "base model + a model of its out-of-fold residuals",
        flags=_ENSEMBLE,
    ),
    "fusion": ModelEntry(
        "alphaforge.models.ensemble:FusionForecaster",
        "ensemble",
        None,
        "OLS / ridge / non-negative blend fitted on out-of-fold predictions",
        flags=_ENSEMBLE,
    ),
    "weighted": ModelEntry(
        "alphaforge.models.ensemble:WeightedForecaster",
        "ensemble",
        None,
        "fixed or equal weights, optionally a cross-sectional rank average",
        flags=_ENSEMBLE,
    ),
    "per_symbol": ModelEntry(
        "alphaforge.models.per_symbol:PerSymbolForecaster",
        "ensemble",
        None,
        "one model per symbol, each fitted with its tuned params (hyperparams/best)",
        flags=_ENSEMBLE,
    ),
    "zero": ModelEntry(
        "alphaforge.models.baselines:ZeroForecaster",
        "baseline",
        None,
        "predicts 0 (no-skill return forecast)",
        flags=("deterministic_cpu",),
        label_kinds=_RETURN,
    ),
    "trailing_mean": ModelEntry(
        "alphaforge.models.baselines:TrailingMeanForecaster",
        "baseline",
        None,
        "per-symbol mean of the training labels",
        flags=("deterministic_cpu",),
    ),
    "last_value": ModelEntry(
        "alphaforge.models.baselines:LastValueForecaster",
        "baseline",
        None,
        "predicts one feature column, e.g. the last realised return",
        flags=("deterministic_cpu",),
    ),
    "garch": ModelEntry(
        "alphaforge.models.baselines:GarchForecaster",
        "baseline",
        None,
        "per-symbol GARCH(1,1) forecast of realised volatility over h bars",
        flags=("deterministic_cpu", "needs_context"),
        label_kinds=("volatility",),
        requires=("arch",),
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
        ConfigError: unknown name (names the closest registered one and lists them all), or a
            missing optional package (says what to install).
    """
    try:
        entry = MODELS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(name, MODELS, n=1) if isinstance(name, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        raise ConfigError(
            f"unknown model {name!r}{hint} available: {', '.join(sorted(MODELS))}"
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
    """One row per registered model, for ``alphaforge models``; imports no model module.

    Everything comes from the :data:`MODELS` rows; whether a model's packages are installed is
    answered by ``importlib.util.find_spec``, which finds a package without importing it. Only
    a row that states no ``flags`` (a model registered from outside the package) has its class
    imported to read them.

    Returns:
        Dicts with ``name``, ``family``, ``extra``, ``description``, ``baseline`` (bool),
        ``available`` (every package in the row's ``requires`` is installed) and
        ``capabilities`` (the class's ``capabilities`` as a dict, field by field, even when the
        model is not available; ``None`` only for an unavailable row without ``flags``).
    """
    rows = []
    for name, entry in MODELS.items():
        available = all(_installed(pkg) for pkg in entry.requires)
        if entry.flags is not None:
            capabilities: dict[str, Any] | None = _capabilities(entry)
        else:  # no static summary: read it from the class
            try:
                capabilities = dataclasses.asdict(get_model(name).capabilities)
            except ConfigError:
                capabilities, available = None, False
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "extra": entry.extra,
                "description": entry.description,
                "baseline": name in BASELINES,
                "available": available,
                "capabilities": capabilities,
            }
        )
    return rows


def _capabilities(entry: ModelEntry) -> dict[str, Any]:
    """A row's ``capabilities`` as ``dataclasses.asdict(cls.capabilities)`` would give them."""
    flags = set(entry.flags or ())
    special = {"family": entry.family, "label_kinds": entry.label_kinds}
    return {f: special[f] if f in special else f in flags for f in CAPABILITY_FIELDS}


def _installed(package: str) -> bool:
    """Whether a top-level package can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: in sys.modules without a __spec__
        return False


def baselines_for(label_kind: str) -> list[str]:
    """Baselines meant for a label kind (the ``label_kinds`` of their :data:`MODELS` rows).

    Args:
        label_kind: ``"return"``, ``"volatility"``, ...

    Returns:
        Registry names from :data:`BASELINES`, in table order.
    """
    return [n for n in BASELINES if label_kind in MODELS[n].label_kinds]
