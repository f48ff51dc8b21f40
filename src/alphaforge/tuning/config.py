"""Every option of :func:`alphaforge.tuning.tune`, typed once: :class:`TuneConfig`.

Python (``tune(**options)``), YAML (``configs/tune.yaml`` through :func:`load_tune_config`) and
the command line (``alphaforge tune``, whose defaults and help come from
``TuneConfig.model_fields``) all build the same :class:`TuneConfig`, so an option means the same
thing, in the same unit, wherever it is given. This module imports no model, data or Optuna code,
so the command line can read it cheaply.

Studies are per ``(symbol, model)``: one symbol per timestamp, so nothing in a study can rank
symbols. Cross-sectional validation metrics (``rank_ic``, ``ic``, top-k hit rates, ...) and
``early_stopping_metric: rank_ic`` in ``fixed_params`` are configuration errors here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alphaforge.errors import ConfigError
from alphaforge.metrics import METRICS, get_metric
from alphaforge.registry import BASELINES, MODELS

__all__ = ["TuneConfig", "load_tune_config", "make_tune_config", "resolve_models"]


class TuneConfig(BaseModel):
    """What to tune, how long, where to store it and when to promote the result.

    Unknown keys are errors naming the valid ones. Window lengths count each symbol's labelled
    bars. Build one with :func:`make_tune_config` (a mapping plus overrides, errors as
    :class:`~alphaforge.errors.ConfigError`) or :func:`load_tune_config` (a YAML file).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    data: Any = Field(
        None,
        description="panel source: CSV/Parquet file, builtin:NAME, "
        "synthetic:... or a DataFrame (required)",
    )
    model: str | list[str] = Field(
        "lightgbm",
        description="registry name, 'both' (lightgbm + xgboost), 'all' or a list of names",
    )
    symbols: list[str] | None = Field(
        None, description="symbols to tune (default: all in the data)"
    )
    trials: int = Field(
        100,
        ge=1,
        description="new trials per (symbol, model) study in this run, shared between the workers",
    )
    workers: int = Field(
        1,
        ge=1,
        description="worker processes on this machine (> 1 needs a "
        "journal file or PostgreSQL storage)",
    )
    storage: str | None = Field(
        None,
        description="Optuna storage: sqlite:///F.db, F.journal or "
        "postgresql://... (default: ROOT/optuna.db, or "
        "ROOT/optuna.journal with several workers)",
    )
    min_improvement: float = Field(
        1.0,
        ge=0,
        description="relative validation improvement needed to promote, percent (1.0 = 1%)",
    )
    force: bool = Field(False, description="promote the new best whatever the stored one")
    timeout: float | None = Field(
        None,
        ge=0,
        description="search time limit, seconds (default: "
        "none); the promotion gate runs afterwards",
    )
    seed: int = Field(
        0, ge=0, description="base seed: worker i samples with seed + i, models fit with seed"
    )
    root: Path = Field(
        Path("tuning"),
        description="directory for hyperparams/, results/, logs/ and the default storage "
        "(relative to the working directory)",
    )
    val: int = Field(30, ge=1, description="validation window, bars")
    test: int = Field(
        20, ge=1, description="held-out test window, bars (scored once for the best params)"
    )
    metric: str = Field(
        "pct_return_mae",
        description="validation metric, a key of alphaforge.metrics.METRICS that is not "
        "cross-sectional (studies are per symbol); its direction is used",
    )
    folds: int = Field(
        1,
        ge=1,
        description="walk-forward validation windows of VAL bars; a trial scores their mean",
    )
    stop: int | None = Field(
        None, ge=1, description="early-stopping bars before each scored window (default: VAL)"
    )
    prune: bool = Field(
        True,
        description="median-prune hopeless trials of iterative models on their early-stopping loss",
    )
    label: str = Field(
        "forward_return", description="label kind, a key of alphaforge.labels.LABELS"
    )
    horizon: int = Field(
        1, ge=1, description="label horizon, bars ahead; also the purge between windows"
    )
    features: list[str] | None = Field(
        None, description="feature names (default: the whole catalogue)"
    )
    fixed_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="{model: {param: value}} applied over every sampled "
        "config (e.g. a thread count)",
    )

    def __init__(self, **options: Any) -> None:
        """Validate ``options``.

        Raises:
            ConfigError: Unknown options (the valid ones are listed) or a bad value (the option
                is named), including a metric or early-stopping metric that needs a
                cross-section.
        """
        _check_names(options)
        try:
            super().__init__(**options)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None
        _check_per_symbol(self)

    @property
    def stop_bars(self) -> int:
        """Early-stopping bars before each scored window (``stop``, or ``val`` when unset)."""
        return self.val if self.stop is None else self.stop

    def options(self) -> dict[str, Any]:
        """The options as a plain ``{name: value}`` dict (values not copied)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


def make_tune_config(
    config: TuneConfig | Mapping[str, Any] | None = None, *, source: str = "tune", **options: Any
) -> TuneConfig:
    """A validated :class:`TuneConfig` from a config or mapping, with ``options`` over it.

    Args:
        config: A :class:`TuneConfig`, a mapping of options or None (the defaults).
        source: Where the options come from (a file name), at the start of error messages.
        **options: Options that override ``config``'s.

    Returns:
        The validated config.

    Raises:
        ConfigError: Unknown options (the valid ones are listed) or a bad value (the option is
            named).
    """
    if isinstance(config, TuneConfig):
        base = config.options()
    elif config is None:
        base = {}
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        raise ConfigError(
            f"{source}: config must be a TuneConfig, a mapping or None, got {type(config).__name__}"
        )
    merged = {**base, **options}
    try:
        _check_names(merged)
        return TuneConfig(**merged)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_names(options: Mapping[Any, Any]) -> None:
    """Raise ConfigError for option names that are not fields of :class:`TuneConfig`."""
    valid = list(TuneConfig.model_fields)
    unknown = sorted(str(k) for k in options if k not in valid)
    if unknown:
        raise ConfigError(f"unknown tune option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def _check_per_symbol(cfg: TuneConfig) -> None:
    """Raise ConfigError for what a one-symbol study cannot compute: a cross-sectional metric
    (one symbol per timestamp: no timestamp is scored) or cross-sectional early stopping."""
    if get_metric(cfg.metric).kind == "cross_sectional":
        usable = [name for name, spec in METRICS.items() if spec.kind != "cross_sectional"]
        raise ConfigError(
            f"tune option 'metric': {cfg.metric!r} is cross-sectional (it compares symbols at "
            f"each timestamp), but every study tunes one symbol; use a time-series metric: "
            f"{', '.join(usable)}"
        )
    for model, params in cfg.fixed_params.items():
        early = params.get("early_stopping_metric", "loss")
        if early != "loss":
            raise ConfigError(
                f"tune option 'fixed_params': {model}.early_stopping_metric={early!r} ranks "
                f"symbols at each timestamp, but every study fits one symbol; use 'loss'"
            )


def _describe(exc: ValidationError) -> str:
    """One line per pydantic error: the option's name, what was wrong and the value given."""
    lines = []
    for e in exc.errors():
        name = ".".join(str(p) for p in e["loc"]) or "config"
        lines.append(f"tune option {name!r}: {e['msg']}, got {e.get('input')!r}")
    return "; ".join(lines)


def load_tune_config(path: str | os.PathLike[str]) -> TuneConfig:
    """The :class:`TuneConfig` of a YAML file (e.g. ``configs/tune.yaml``), read with
    ``yaml.safe_load``.

    Raises:
        ConfigError: Unreadable file, not a mapping, unknown keys (the valid ones are listed)
            or a bad value.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read tune config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of tune options, got {type(raw).__name__}")
    return make_tune_config(raw, source=str(path))


def resolve_models(model: str | Sequence[str]) -> list[str]:
    """Registry names for ``model``: a name, ``"both"`` (lightgbm, xgboost) or ``"all"`` (every
    model that is neither a baseline, an ensemble nor a foundation model).

    Raises:
        ConfigError: An unknown name (lists the valid ones).
    """
    names = [model] if isinstance(model, str) else list(model)
    out: list[str] = []
    for name in names:
        if name == "both":
            out += ["lightgbm", "xgboost"]
        elif name == "all":
            # ensembles tune through their members' studies, baselines have nothing to tune
            # foundation models need local weights: tune them by name with fixed_params
            out += [
                n
                for n in MODELS
                if n not in BASELINES and MODELS[n].family not in ("ensemble", "foundation")
            ]
        elif name in MODELS:
            out.append(name)
        else:
            raise ConfigError(
                f"unknown model {name!r}; valid: 'both', 'all', {', '.join(sorted(MODELS))}"
            )
    return list(dict.fromkeys(out))
