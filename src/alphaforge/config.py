"""Experiment configuration: a strict pydantic tree loaded from YAML with ``yaml.safe_load``.

Every section forbids unknown keys; a typo fails before any data is read, with a
:class:`~alphaforge.errors.ConfigError` that names the key and the valid ones. Model names and
metric names are checked against their registries. YAML names things only; it never imports code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alphaforge.backtest import BacktestSpec
from alphaforge.errors import ConfigError
from alphaforge.features import catalogue_features
from alphaforge.labels import LabelSpec
from alphaforge.metrics import get_metric
from alphaforge.registry import get_model


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """Where the panel comes from and which part of it to use."""

    source: str = Field(description="CSV/Parquet path, 'builtin:<name>' or 'synthetic:...'")
    symbols: list[str] | None = Field(None, description="keep only these symbols (default: all)")
    start: str | None = Field(None, description="first timestamp to keep (inclusive)")
    end: str | None = Field(None, description="last timestamp to keep (inclusive)")
    repair: bool = Field(
        False, description="drop defective rows (listed in run.log) instead of failing"
    )


class FeaturesConfig(_Section):
    """Which engineered features to build."""

    names: list[str] | None = Field(None, description="catalogue names (default: all)")
    cross_section: bool = Field(True, description="add per-timestamp ranks and z-scores")
    cs_features: list[str] | None = Field(
        None, description="features to rank (default set if None)"
    )
    pca_components: int = Field(0, ge=0, description="PCA factors fitted per fold on train rows")
    catalogue: Literal["default", "alpha158", "both"] = Field(
        "default", description="feature catalogue: ours, Qlib's Alpha158 definitions, or both"
    )
    normalize: Literal["none", "cs_rank", "cs_zscore", "robust_zscore"] = Field(
        "none",
        description="per fold: ranks or z-scores across symbols per timestamp, or a median/MAD "
        "z-score fitted on the training rows (clipped at 3)",
    )


class LabelConfig(_Section):
    """What to predict."""

    kind: str = "forward_return"
    horizon: int = Field(1, ge=1, description="bars ahead")
    price: str = "close"
    transform: Literal["none", "demean", "zscore", "rank", "rank_gauss"] = Field(
        "none",
        description="per-timestamp transform of the training target across symbols; "
        "predictions, metrics and backtests stay on the raw label",
    )

    def spec(self) -> LabelSpec:
        """The :class:`~alphaforge.labels.LabelSpec` models are fitted with."""
        return LabelSpec(self.kind, self.horizon, self.price, self.transform)


class SplitConfig(_Section):
    """Walk-forward layout, in bars of the panel's timestamp grid."""

    train: int = Field(ge=1)
    valid: int = Field(0, ge=0)
    test: int = Field(ge=1)
    step: int | None = Field(None, ge=1)
    purge: int | None = Field(None, ge=0, description="default: label horizon")
    embargo: int = Field(0, ge=0)
    expanding: bool = True
    n_folds: int | None = Field(None, ge=1, description="keep the most recent n folds")


class ModelConfig(_Section):
    """One model of the registry with parameter overrides of its config dataclass."""

    name: str
    label: str | None = Field(None, description="display name (default: the registry name)")
    params: dict[str, Any] = Field(default_factory=dict)
    seeds: int = Field(
        1,
        ge=1,
        description="fit this many seeds (seed, seed+1, ...) and average their predictions "
        "(a cross-sectional rank average when the label transform is cross-sectional)",
    )
    params_from: str | None = Field(
        None,
        description="directory of tuned per-symbol params (hyperparams/best): fits one model "
        "per symbol with its tuned params merged under these params",
    )

    @field_validator("label")
    @classmethod
    def _plain_label(cls, v: str | None) -> str | None:
        # the display name becomes a folder under models/: keep it a plain file name
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}", v):
            raise ValueError("use letters, digits, '_' and '-' only (at most 64 characters)")
        return v

    @property
    def display(self) -> str:
        return self.label or self.name


class EnsembleConfig(_Section):
    """One ensemble over models of the run (by display name) or registry models.

    A member is a name (a ``models:`` entry's display name, whose params it reuses, else a
    registry name with its defaults) or a mapping ``{name, params, features, label}``.
    """

    name: str = Field(description="display name of the ensemble")
    kind: Literal["residual", "fusion", "weighted"]
    base: Any = Field(None, description="residual: the base member (default lightgbm)")
    residual: Any = Field(
        None,
        description="residual: the member fitted on the base's "
        "out-of-fold residuals (default transformer)",
    )
    members: Any = Field(
        None,
        description="fusion / weighted: list of members; weighted also "
        "takes a mapping member -> weight",
    )
    method: Literal["ols", "ridge", "nnls"] | None = Field(None, description="fusion method")
    alpha: float | None = Field(None, description="fusion ridge penalty")
    intercept: bool | None = None
    sum_to_one: bool | None = Field(None, description="nnls: weights sum to one")
    rank_average: bool | None = Field(None, description="weighted: blend cross-sectional ranks")
    inner_folds: int | None = Field(
        None, description="inner walk-forward folds for out-of-fold predictions"
    )
    stop_frac: float | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}", v):
            raise ValueError("use letters, digits, '_' and '-' only (at most 64 characters)")
        return v

    def to_model(self, models: list[ModelConfig], horizon: int) -> ModelConfig:
        """The registry entry (``residual`` / ``fusion`` / ``weighted``) this ensemble runs as.

        Raises:
            ConfigError: Options that do not belong to the kind, or a missing member list.
        """
        by_name = {m.display: m for m in models}

        def member(ref: Any) -> Any:
            if isinstance(ref, str) and ref in by_name:
                m = by_name[ref]
                return {"name": m.name, "params": dict(m.params), "label": m.display}
            return ref

        allowed = {
            "residual": {"base", "residual", "inner_folds", "stop_frac"},
            "fusion": {
                "members",
                "method",
                "alpha",
                "intercept",
                "sum_to_one",
                "inner_folds",
                "stop_frac",
            },
            "weighted": {"members", "rank_average"},
        }[self.kind]
        given = {k for k in self.model_fields_set if k not in ("name", "kind")}
        wrong = sorted(given - allowed)
        if wrong:
            raise ConfigError(
                f"ensembles[{self.name}]: option(s) {wrong} do not apply to kind "
                f"{self.kind!r}; valid: {sorted(allowed)}"
            )
        params: dict[str, Any] = {
            k: getattr(self, k) for k in given if k not in ("members", "base", "residual")
        }
        if self.kind == "residual":
            for k in ("base", "residual"):
                if getattr(self, k) is not None:
                    params[k] = member(getattr(self, k))
        else:
            if not self.members:
                raise ConfigError(f"ensembles[{self.name}]: kind {self.kind!r} needs `members`")
            if isinstance(self.members, dict):
                if self.kind != "weighted":
                    raise ConfigError(
                        f"ensembles[{self.name}]: member weights are for kind "
                        "'weighted'; list the members"
                    )
                params["members"] = [member(k) for k in self.members]
                params["weights"] = [float(w) for w in self.members.values()]
            else:
                params["members"] = [member(r) for r in self.members]
        if self.kind != "weighted":
            params["purge"] = horizon
        return ModelConfig(name=self.kind, label=self.name, params=params)


class ClusterConfig(_Section):
    """The Dask cluster of ``engine: dask``: an existing one, or a local one started for the run."""

    scheduler: str | None = Field(
        None, description="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786"
    )
    workers: int | None = Field(None, ge=1, description="local cluster: worker processes")
    threads_per_worker: int = Field(1, ge=1, description="local cluster: threads per worker")
    memory_limit: str | None = Field(
        None, description="local cluster: memory cap per worker, e.g. 4GB (default: RAM / workers)"
    )
    processes: bool = Field(True, description="local cluster: workers in their own processes")


class ExperimentConfig(_Section):
    """A whole experiment: data -> features -> label -> walk-forward -> models -> metrics."""

    name: str = "experiment"
    seed: int = 0
    data: DataConfig
    features: FeaturesConfig = FeaturesConfig()
    label: LabelConfig = LabelConfig()
    split: SplitConfig
    models: list[ModelConfig] = Field(min_length=1)
    ensembles: list[EnsembleConfig] = Field(
        default_factory=list,
        description="ensembles over the models (residual, fusion, "
        "weighted); all learned on out-of-fold predictions",
    )
    baselines: bool = Field(True, description="add the registry's baselines for the label kind")
    configurations_tried: int = Field(
        0,
        ge=0,
        description="configurations tried before settling on this one (tuning trials, earlier "
        "variants); added to this run's models x seeds for the Deflated Sharpe Ratio",
    )
    metrics: list[str] | None = Field(None, description="metric names (default: by label kind)")
    backtest: BacktestSpec | None = Field(
        None,
        description="portfolio backtest of test predictions (default: long_short with 5 bp "
        "costs, or sign for one symbol; skipped for volatility labels)",
    )
    output_dir: str = Field("runs", description="parent folder of run directories")
    engine: Literal["memory", "dask"] = Field(
        "memory", description="where features and trees are computed: this process or Dask"
    )
    cluster: ClusterConfig = ClusterConfig()

    def ensemble_models(self) -> list[ModelConfig]:
        """The ensembles as registry entries (members resolved against ``models``)."""
        return [e.to_model(list(self.models), self.label.horizon) for e in self.ensembles]

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_mapping(cls, v: Any) -> Any:
        # allow `models: {lightgbm: {num_leaves: 15}}` as well as a list of {name, params}
        if isinstance(v, dict):
            return [{"name": k, "params": p or {}} for k, p in v.items()]
        return v


def load_config(source: str | os.PathLike[str] | dict[str, Any]) -> ExperimentConfig:
    """Load and check an experiment config.

    Args:
        source: Path to a YAML file, or an already parsed mapping.

    Returns:
        The validated config. Model, metric, label and feature names are all checked.

    Raises:
        ConfigError: unreadable YAML, unknown keys (naming valid ones), bad values or names.
    """
    where = "config"
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_explain(exc)}") from None
    check_names(cfg)
    return cfg


def check_names(cfg: ExperimentConfig) -> None:
    """Check every name in ``cfg`` against its registry (models, their params, metrics, labels)."""
    cfg.label.spec()  # kind, horizon and transform together
    for i, m in enumerate(cfg.models):
        try:
            get_model(m.name).from_params(m.params, random_state=cfg.seed)
        except ConfigError as exc:
            raise ConfigError(f"models[{i}] ({m.name}): {exc}") from None
    for e in cfg.ensembles:
        m = e.to_model(list(cfg.models), cfg.label.horizon)
        try:
            get_model(m.name).from_params(m.params, random_state=cfg.seed)
        except ConfigError as exc:
            raise ConfigError(f"ensembles[{e.name}]: {exc}") from None
    seen = [m.display.lower() for m in cfg.models] + [e.name.lower() for e in cfg.ensembles]
    dupes = {n for n in seen if seen.count(n) > 1}
    if dupes:
        raise ConfigError(
            f"models: duplicate model names {sorted(dupes)}; set `label:` (models) "
            "or `name:` (ensembles) to tell them apart"
        )
    for name in cfg.metrics or []:
        get_metric(name)
    if cfg.features.names is not None:
        known = catalogue_features("both")
        unknown = [n for n in cfg.features.names if n not in set(known)]
        if unknown:
            raise ConfigError(
                f"features.names: unknown features {unknown}; valid: the default catalogue "
                f"and Alpha158 names ({len(known)}, e.g. {known[:3]} ... {known[-2:]})"
            )


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r}; valid keys here: {_valid_keys(err['loc'])}")
        elif err["type"] == "missing":
            parts.append(f"missing required key {loc!r}")
        else:
            parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    # walk the model tree along `loc` (minus the offending key) to list the section's fields
    model: type[BaseModel] = ExperimentConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            break
        ann = field.annotation
        nested = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)]
        nested += [
            b
            for a in getattr(ann, "__args__", ())
            for b in getattr(a, "__args__", ())
            if isinstance(b, type)
        ]
        sub = next((a for a in nested if issubclass(a, BaseModel)), None)
        if sub is None:
            break
        model = sub
    return sorted(model.model_fields)


def dump_config(cfg: ExperimentConfig) -> str:
    """Resolved config as YAML text (what ``config.yaml`` in a run directory holds)."""
    # None is every optional key's default: leaving them out keeps the file loadable again
    # (an ensemble refuses options of other kinds, even as None)
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False)
