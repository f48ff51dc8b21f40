"""Model bundles: fit on all the history a user has, then forecast the bars after the last one.

``fit`` runs the experiment's recipe once, on every labelled bar: the same features, label
transform, per-fold normalisation, models, ensembles and seeds as a walk-forward run, with the
last ``split.valid`` labelled bars (purged like a fold's) for early stopping. What it fits is the
model a walk-forward fold would fit if its test block started on the bar after the data: a bundle
fitted on bars up to ``t`` forecasts bar ``t + 1`` exactly as that fold does.

``predict`` reads a panel (the same one grown by new bars, or any panel with the bundle's
symbols), builds the features up to the as-of bar and forecasts, per symbol, from its latest bar.

A bundle is a folder, written into a temporary sibling and renamed into place::

    manifest.json      format + version, package version, creation time, data fingerprint,
                       training end, label, feature columns and lookback, models, size and
                       SHA-256 of every other file; sealed with its own SHA-256
    config.yaml        the resolved experiment config
    normalizer.json    per-fold feature statistics (robust z-score), when configured
    models/<model>/    each model in its native format (``BaseForecaster.save``; never pickle)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from alphaforge import __version__, artifacts
from alphaforge.config import ExperimentConfig, dump_config, load_config
from alphaforge.data import load_panel
from alphaforge.errors import ConfigError, DataError
from alphaforge.features import ALPHA158, FEATURES, max_lookback
from alphaforge.features.normalize import FeatureNormalizer
from alphaforge.labels import LabelSpec, make_label, transform_label
from alphaforge.models.base import BaseForecaster, predict_rows
from alphaforge.run import (
    RunMember,
    experiment_features,
    fit_model,
    run_members,
    select_panel,
)
from alphaforge.utils.integrity import check_seal, digest_tree, read_json, seal, verify_tree
from alphaforge.utils.io import atomic_write, atomic_write_text, check_source_file
from alphaforge.utils.locks import exclusive_output
from alphaforge.utils.seed import seed_everything

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "FORMAT_VERSION", "Bundle", "fit", "load_bundle", "predict"]

FORMAT = "alphaforge.bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.yaml"
NORMALIZER = "normalizer.json"
FORECAST_COLUMNS = ("asof", "target_timestamp", "symbol", "model", "horizon", "y_pred")
OHLCV = ("open", "high", "low", "close", "volume")


@dataclass
class Bundle:
    """Fitted models plus everything ``predict`` needs to rebuild their inputs.

    Attributes:
        config: The resolved experiment config.
        models: Display name -> fitted forecaster.
        manifest: What :func:`fit` recorded (see the module docstring).
        normalizer: The fitted robust z-score, when ``features.normalize`` is one.
    """

    config: ExperimentConfig
    models: dict[str, BaseForecaster]
    manifest: dict[str, Any]
    normalizer: FeatureNormalizer | None = None

    @property
    def label(self) -> LabelSpec:
        """What the models forecast."""
        return self.config.label.spec()

    @property
    def data_end(self) -> pd.Timestamp:
        """The last bar the bundle was fitted with."""
        return pd.Timestamp(self.manifest["data"]["last_timestamp"])

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the bundle folder atomically (temporary sibling, then rename), under the lock
        of ``path``.

        Raises:
            OutputError: another live writer holds ``path``; ``path`` is not empty without
                ``overwrite``; the disk filled up (nothing is left behind).
        """
        return _save(self, Path(path), overwrite)

    def predict(
        self, panel: pd.DataFrame | str | os.PathLike[str], *, asof: Any = None
    ) -> pd.DataFrame:
        """Forecast every symbol from its latest bar at or before ``asof``.

        Args:
            panel: A validated panel or anything :func:`~alphaforge.data.load_panel` reads; it
                needs each symbol's history for the longest feature lookback.
            asof: Forecast from this bar (default: the panel's last bar); not before the last
                bar the bundle was fitted with.

        Returns:
            One row per (symbol, model): ``asof`` (the symbol's bar the forecast is made from),
            ``target_timestamp`` (the bar ``horizon`` bars later on the panel's calendar),
            ``symbol``, ``model``, ``horizon``, ``y_pred`` and, for models with a volatility
            head, ``vol_pred``; ordered by model, then best-ranked first.

        Raises:
            DataError: missing feature columns, symbols with too short a history.
            ConfigError: ``asof`` before the bundle's training end.
        """
        return _predict(self, panel, asof)


def fit(
    config: ExperimentConfig | str | os.PathLike[str] | dict[str, Any],
    *,
    data: str | None = None,
) -> Bundle:
    """Fit every model and ensemble of ``config`` on all labelled history.

    Args:
        config: Config object, YAML path or mapping (the same as for ``alphaforge run``).
        data: Optional panel source replacing ``config.data.source`` (all its symbols).

    Returns:
        The fitted :class:`Bundle` (call :meth:`Bundle.save` to write it).

    Raises:
        ConfigError: bad names, PCA factors (not supported in bundles), too little data.
        DataError: invalid input data.
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    if data is not None:
        cfg = cfg.model_copy(
            update={"data": cfg.data.model_copy(update={"source": data, "symbols": None})}
        )
    if data is None:
        check_source_file(cfg.data.source)  # a relative path names the working directory
    if cfg.features.pca_components:
        raise ConfigError(
            "features.pca_components: PCA factors are not stored in bundles yet; set it to 0 "
            "to fit a bundle"
        )
    seed_everything(cfg.seed)  # as run_experiment does: same seeds, same models
    t0 = time.perf_counter()
    label = cfg.label.spec()
    members = [m for m in run_members(cfg, label.label_kind) if m.role != "baseline"]
    panel = select_panel(load_panel(cfg.data.source, repair=cfg.data.repair), cfg)
    X = experiment_features(panel, cfg)
    y = make_label(panel, cfg.label.kind, cfg.label.horizon, price=cfg.label.price)
    train, valid = _fit_rows(X, y, cfg)
    normalizer = None
    if cfg.features.normalize == "robust_zscore":
        normalizer = FeatureNormalizer("robust_zscore").fit(X[train])
        X = normalizer.transform(X)
    target = transform_label(y, label.transform)
    models = {}
    for m in members:
        model = m.build(cfg.seed, label)
        models[m.name] = fit_model(model, X, target, train, valid, label)
        logger.info(
            "fitted %s on %d rows (%d early-stopping rows)", m.name, train.sum(), valid.sum()
        )
    manifest = _manifest(cfg, panel, X, members, train)
    logger.info("bundle fitted in %.1fs", time.perf_counter() - t0)
    return Bundle(cfg, models, manifest, normalizer)


def _fit_rows(X: pd.DataFrame, y: pd.Series, cfg: ExperimentConfig) -> tuple[Any, Any]:
    """Boolean masks of the training and early-stopping rows: the walk-forward fold whose test
    block would start on the bar after the data (``valid`` bars, then the purges)."""
    grid = np.asarray(X.index.get_level_values("timestamp").unique().sort_values())
    s = cfg.split
    gap = (cfg.label.horizon if s.purge is None else s.purge) + s.embargo
    n = len(grid)
    v1 = n - gap if s.valid else n
    v0 = v1 - s.valid
    tr1 = v0 - gap if s.valid else n - gap
    tr0 = 0 if s.expanding else tr1 - s.train
    if tr1 - max(tr0, 0) < 1:
        raise ConfigError(
            f"fit: {n} bars leave no training rows after {s.valid} early-stopping bars and "
            f"gaps of {gap}; give more history or a shorter split.valid"
        )
    ts = X.index.get_level_values("timestamp")
    train = np.asarray(ts.isin(grid[max(tr0, 0) : tr1]))
    valid = np.asarray(ts.isin(grid[v0:v1])) if s.valid else np.zeros(len(X), dtype=bool)
    if not y[train].notna().any():
        raise ConfigError("fit: no labelled training rows; give more history")
    return train, valid


def _fingerprint(panel: pd.DataFrame) -> dict[str, Any]:
    """Symbols, first/last timestamp, row count and a SHA-256 of the bars."""
    idx = panel.index
    h = hashlib.sha256(idx.get_level_values("timestamp").to_numpy().astype("datetime64[ns]"))
    h.update("\0".join(map(str, idx.get_level_values("symbol"))).encode())
    cols = [c for c in OHLCV if c in panel.columns]
    h.update(np.ascontiguousarray(panel[cols].to_numpy(np.float64)).tobytes())
    ts = idx.get_level_values("timestamp")
    return {
        "symbols": sorted(map(str, idx.get_level_values("symbol").unique())),
        "first_timestamp": str(ts.min()),
        "last_timestamp": str(ts.max()),
        "n_rows": len(panel),
        "sha256": h.hexdigest(),
    }


def _manifest(
    cfg: ExperimentConfig,
    panel: pd.DataFrame,
    X: pd.DataFrame,
    members: list[RunMember],
    train: Any,
) -> dict[str, Any]:
    columns = [str(c) for c in X.columns]
    specs = {**FEATURES, **ALPHA158}
    fields = sorted({f for c in columns if c in specs for f in specs[c].fields})
    names = [c for c in columns if c in specs]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "alphaforge_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": _fingerprint(panel),
        "train_end": str(X.index.get_level_values("timestamp")[train].max()),
        "label": dataclasses.asdict(cfg.label.spec()),
        "features": {
            "catalogue": cfg.features.catalogue,
            "normalize": cfg.features.normalize,
            "columns": columns,
            "fields": fields,
            "max_lookback": max_lookback(names) if names else 1,
        },
        "models": [m.name for m in members],
    }


# ---------------------------------------------------------------------- save / load
def _save(bundle: Bundle, path: Path, overwrite: bool) -> Path:
    # locked before writing: of two concurrent saves to one path, one fails at once
    with exclusive_output(path, overwrite=overwrite) as tmp:
        _write(bundle, tmp)
    return path


def fit_and_save(
    config: ExperimentConfig | str | os.PathLike[str] | dict[str, Any],
    out: str | os.PathLike[str],
    *,
    data: str | None = None,
    overwrite: bool = False,
) -> Bundle:
    """:func:`fit`, then save to ``out``, with ``out`` claimed before fitting.

    Of concurrent ``fit_and_save`` calls to one ``out`` exactly one fits and writes; the others
    fail at once, before any work, with an :class:`~alphaforge.errors.OutputError`.

    Raises:
        OutputError: another live writer holds ``out``; ``out`` is not empty without
            ``overwrite``; the disk filled up (nothing is left behind).
    """
    with exclusive_output(Path(out), overwrite=overwrite) as tmp:
        bundle = fit(config, data=data)
        _write(bundle, tmp)
    return bundle


def _write(bundle: Bundle, tmp: Path) -> None:
    """Write ``bundle``'s files into the empty folder ``tmp``, the sealed manifest last."""
    atomic_write_text(tmp / CONFIG, dump_config(bundle.config))
    if bundle.normalizer is not None:
        atomic_write_text(tmp / NORMALIZER, json.dumps(_normalizer_state(bundle.normalizer)))
    for name, model in bundle.models.items():
        model.save(tmp / artifacts.MODELS_DIR / name)
    manifest = seal({**bundle.manifest, "files": digest_tree(tmp, skip=(MANIFEST,))})
    atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    bundle.manifest = manifest


def _normalizer_state(n: FeatureNormalizer) -> dict[str, Any]:
    assert n.median_ is not None and n.scale_ is not None  # fitted by fit()
    return {
        "method": n.method,
        "columns": [str(c) for c in n.median_.index],
        "median": n.median_.to_numpy(np.float64).tolist(),
        "scale": n.scale_.to_numpy(np.float64).tolist(),
    }


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load a bundle written by :meth:`Bundle.save`, checking every file against the manifest.

    Raises:
        DataError: not a bundle, another format version, or a missing / altered file.
    """
    root = Path(path)
    if not (root / MANIFEST).is_file():
        raise DataError(f"not a bundle folder: no {MANIFEST}", path=str(root))
    manifest = read_json(root / MANIFEST, what="bundle manifest", sealed=None)
    if not isinstance(manifest, dict):
        raise DataError(f"{MANIFEST} is not a JSON object", path=str(root))
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"bundle format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}; this alphaforge reads {FORMAT!r} version "
            f"{FORMAT_VERSION} (refit it with `alphaforge fit`)",
            path=str(root),
        )
    check_seal(manifest, root / MANIFEST, what="bundle manifest")  # after the version check
    if not manifest.get("files"):
        raise DataError("bundle manifest lists no files", path=str(root))
    verify_tree(root, manifest["files"], what="bundle")
    config = load_config(yaml.safe_load((root / CONFIG).read_text(encoding="utf-8")))
    normalizer = None
    if (root / NORMALIZER).is_file():
        state = json.loads((root / NORMALIZER).read_text(encoding="utf-8"))
        normalizer = FeatureNormalizer(state["method"])
        normalizer.median_ = pd.Series(state["median"], index=state["columns"], dtype=np.float64)
        normalizer.scale_ = pd.Series(state["scale"], index=state["columns"], dtype=np.float64)
    models = {
        name: BaseForecaster.load(root / artifacts.MODELS_DIR / name) for name in manifest["models"]
    }
    return Bundle(config, models, manifest, normalizer)


# ---------------------------------------------------------------------- predict
def _predict(bundle: Bundle, panel: Any, asof: Any) -> pd.DataFrame:
    if not isinstance(panel, pd.DataFrame):
        panel = load_panel(panel, repair=bundle.config.data.repair)
    feats = bundle.manifest["features"]
    missing = [f for f in feats["fields"] if f not in panel.columns]
    if missing:
        raise DataError(
            f"panel lacks column(s) {missing} that the bundle's features read; it has "
            f"{sorted(panel.columns)}"
        )
    ts = panel.index.get_level_values("timestamp")
    stamp = ts.max() if asof is None else _timestamp(asof, ts)
    if stamp < bundle.data_end:
        raise ConfigError(
            f"--asof: {stamp} is before the bundle's training end {bundle.data_end}; a "
            "forecast from an earlier bar would reuse bars the models were fitted on"
        )
    panel = panel[ts <= stamp]
    _check_history(panel, int(feats["max_lookback"]))
    X = experiment_features(panel, bundle.config)
    if bundle.normalizer is not None:
        X = bundle.normalizer.transform(X)
    absent = [c for c in feats["columns"] if c not in X.columns]
    if absent:  # cross-sectional columns are not built for a one-symbol panel
        raise DataError(
            f"the panel gives no {absent[:5]} ({len(absent)} of the bundle's feature columns); "
            "cross-sectional features need at least 2 symbols at each bar"
        )
    X = X[feats["columns"]]
    rows = _latest_rows(X.index)
    _check_symbols(bundle, list(rows.get_level_values("symbol")))
    h = bundle.label.horizon
    frames = []
    for name, model in bundle.models.items():
        pred = predict_rows(model, X, rows)
        frame = pd.DataFrame(
            {
                "asof": rows.get_level_values("timestamp"),
                "target_timestamp": _advance(rows.get_level_values("timestamp"), h, panel),
                "symbol": rows.get_level_values("symbol").astype(str),
                "model": name,
                "horizon": np.int32(h),
                "y_pred": pred.to_numpy(np.float64),
            }
        )
        if getattr(model, "multitask", False):
            frame["vol_pred"] = model.predict_volatility(X).reindex(rows).to_numpy(np.float64)
        frames.append(frame.sort_values(["y_pred", "symbol"], ascending=[False, True]))
    return pd.concat(frames, ignore_index=True)


def _timestamp(asof: Any, ts: pd.Index) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(asof)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--asof: expected a timestamp, got {asof!r} ({exc})") from None
    tz = getattr(ts, "tz", None)
    if tz is not None and stamp.tzinfo is None:
        stamp = stamp.tz_localize(tz)
    if stamp > ts.max():
        raise ConfigError(f"--asof: {stamp} is after the panel's last bar {ts.max()}")
    return stamp


def _check_history(panel: pd.DataFrame, lookback: int) -> None:
    counts = panel.groupby(level="symbol", sort=True).size()
    short = counts[counts < lookback]
    if len(short):
        listed = ", ".join(f"{s} ({n})" for s, n in short.head(10).items())
        raise DataError(
            f"{len(short)} symbol(s) have fewer bars than the longest feature lookback "
            f"({lookback}): {listed}; give them more history or leave them out"
        )


def _check_symbols(bundle: Bundle, symbols: list[str]) -> None:
    """Models conditioned on per-symbol tokens (``symbols_``) know only their training symbols."""
    for name, model in bundle.models.items():
        known = getattr(model, "symbols_", None)
        unknown = sorted(set(symbols) - set(known)) if known else []
        if unknown:
            raise DataError(
                f"model {name!r} conditions on symbol tokens and has none for {unknown[:10]}; "
                f"it knows {len(known)} symbols from its training data: refit the bundle"
            )


def _latest_rows(index: pd.MultiIndex) -> pd.MultiIndex:
    """Each symbol's last row (its latest bar at or before the as-of bar)."""
    frame = index.to_frame(index=False)
    last = frame.groupby("symbol", sort=True)["timestamp"].max().reset_index()
    return pd.MultiIndex.from_frame(last[["timestamp", "symbol"]])


def _advance(stamps: pd.Index, h: int, panel: pd.DataFrame) -> pd.DatetimeIndex:
    """The timestamp ``h`` bars after each stamp on the panel's calendar: business days for a
    daily panel without weekend bars, else the panel's bar frequency."""
    ts = pd.DatetimeIndex(panel.index.get_level_values("timestamp").unique())
    freq = panel.attrs.get("freq")
    if freq is None:
        steps = np.diff(ts.sort_values().asi8)
        freq = pd.Timedelta(int(np.median(steps))) if len(steps) else pd.Timedelta(days=1)
    stamps = pd.DatetimeIndex(stamps)
    if freq == pd.Timedelta(days=1) and not (ts.day_of_week >= 5).any():
        return stamps + pd.offsets.BDay(h)
    return stamps + h * freq


def predict(
    bundle: Bundle | str | os.PathLike[str],
    panel: pd.DataFrame | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    asof: Any = None,
) -> pd.DataFrame:
    """Load a bundle (when given a path), forecast, and write ``out`` atomically if given.

    Returns:
        The forecasts (see :meth:`Bundle.predict`).
    """
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    forecasts = b.predict(panel, asof=asof)
    if out is not None:
        with atomic_write(Path(out), "wb") as fh:
            forecasts.to_parquet(fh, index=False)
    return forecasts
