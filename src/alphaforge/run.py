"""``run_experiment``: panel -> features -> label -> walk-forward -> models + baselines -> metrics.

Everything ``alphaforge run`` does is this one function. The run directory is built in a hidden
temporary folder beside its destination and renamed into place at the end, so a failed or killed
run leaves nothing half-written; its files are listed in :mod:`alphaforge.artifacts`.

The run asks each model what it needs instead of checking its type: ``capabilities.
checkpointable`` models get a checkpoint folder, ``capabilities.feature_importance`` models give
importances, models with a ``history_`` give training curves, ``run_outputs()`` gives extra
per-fold results (ensembles) and ``member_keys()`` names an ensemble's members.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphaforge import artifacts
from alphaforge.backtest import (
    BacktestSpec,
    backtest,
    bar_returns,
    from_spec,
    infer_periods_per_year,
    warnings_once,
)
from alphaforge.config import ExperimentConfig, ModelConfig, dump_config, load_config
from alphaforge.data import load_panel
from alphaforge.engines import engine_members, engine_session, features_for
from alphaforge.errors import ConfigError, DataError
from alphaforge.features import catalogue_features
from alphaforge.features.normalize import FeatureNormalizer, cs_rank, cs_zscore
from alphaforge.features.pca import PCAFactors
from alphaforge.labels import LabelSpec, make_label, transform_label
from alphaforge.metrics import METRICS, evaluate
from alphaforge.models.base import BaseForecaster, predict_rows
from alphaforge.models.ensemble import WeightedForecaster
from alphaforge.models.fold_matrix import fit_rows, shared_fold
from alphaforge.models.per_symbol import PerSymbolForecaster
from alphaforge.registry import baselines_for, get_model
from alphaforge.report import write_report
from alphaforge.report.load import PREDICTION_COLUMNS, read_table
from alphaforge.splits import Fold, WalkForward
from alphaforge.stats import run_significance
from alphaforge.utils.integrity import read_json
from alphaforge.utils.io import atomic_write, atomic_write_text, check_source_file, is_full_disk
from alphaforge.utils.seed import seed_everything

log = logging.getLogger(__name__)

#: progress(stage, done, total, desc); stage "fold", "model" or "epoch"; done: items finished
ProgressCallback = Callable[[str, int, int, str], None]

PREDICTED = ("valid", "test")  # the splits whose rows a run predicts and scores


@dataclass
class RunResult:
    """What a run produced (also written to ``run_dir``)."""

    config: ExperimentConfig
    run_dir: Path
    predictions: pd.DataFrame
    metrics: dict[str, Any]
    folds: list[Fold] = field(default_factory=list)

    def table(self, split: str = "test") -> pd.DataFrame:
        """Overall metrics per model (rows) for ``split`` ("valid" or "test")."""
        rows = {m: v[split]["overall"] for m, v in self.metrics["models"].items()}
        return pd.DataFrame(rows).T


@dataclass(frozen=True)
class RunMember:
    """One model of a run: its config, its class and why it is there."""

    config: ModelConfig
    factory: type[BaseForecaster]
    role: Literal["model", "ensemble", "baseline"]

    @property
    def name(self) -> str:
        """Display name (folder under ``models/``, ``model`` column of the predictions)."""
        return self.config.display

    def build(self, seed: int, label: LabelSpec) -> BaseForecaster:
        """An unfitted forecaster with the member's params.

        With ``params_from`` it is a :class:`~alphaforge.models.per_symbol.PerSymbolForecaster`:
        one model per symbol with that symbol's tuned params (merged under the config's).
        With ``seeds: K`` it is a :class:`~alphaforge.models.ensemble.WeightedForecaster` of
        K copies seeded ``seed .. seed + K - 1``, equally weighted; a rank average per
        timestamp when the label transform is cross-sectional (scores, not returns).
        """
        if self.config.params_from is not None:
            if self.config.seeds != 1:
                raise ConfigError(
                    f"model {self.name!r}: params_from fits one model per symbol; seeds > 1 "
                    f"is not supported with it (got seeds={self.config.seeds})"
                )
            member = {"name": self.config.name, "params": dict(self.config.params)}
            params = {"member": member, "params_from": self.config.params_from}
            return PerSymbolForecaster.from_params(params, random_state=seed)
        if self.config.seeds == 1:
            return self.factory.from_params(self.config.params, random_state=seed)
        member = {"name": self.config.name, "params": dict(self.config.params)}
        copies = [{**member, "label": f"seed{k}"} for k in range(self.config.seeds)]
        params = {"members": copies, "rank_average": label.cross_sectional}
        return WeightedForecaster.from_params(params, random_state=seed)

    def member_keys(self) -> list[str]:
        """Display names of the models an ensemble combines (empty for other models)."""
        return self.factory.member_keys(self.config.params)


def fit_model(
    model: BaseForecaster,
    X: pd.DataFrame,
    y: pd.Series,
    train: np.ndarray,
    valid: np.ndarray | None,
    label: LabelSpec,
) -> BaseForecaster:
    """Fit ``model`` on the ``train`` rows of ``X``/``y``, early-stopping on the ``valid`` rows.

    The one "fit a model on these rows" step of walk-forward runs.

    Args:
        model: An unfitted forecaster.
        X, y: Features and label on the same index.
        train, valid: Boolean row masks; ``valid`` None or empty: no early-stopping window.
        label: What ``y`` is.

    Returns:
        ``model``, fitted.
    """
    window = fit_rows(X, y, valid) if valid is not None and valid.any() else None
    return model.fit(*fit_rows(X, y, train, model), valid=window, label=label)


@dataclass
class _Context:
    """What every fold of one run shares."""

    cfg: ExperimentConfig
    members: list[RunMember]
    label: LabelSpec
    workdir: Path
    ckpt: Path
    resume: bool
    progress: ProgressCallback | None


@dataclass
class _Collected:
    """What the folds produce, gathered until the run directory is written."""

    predictions: list[pd.DataFrame] = field(default_factory=list)
    importances: list[pd.DataFrame] = field(default_factory=list)
    histories: list[pd.DataFrame] = field(default_factory=list)
    # output name (artifacts.MODEL_OUTPUTS) -> model -> fold -> value
    outputs: dict[str, dict[str, dict[int, Any]]] = field(default_factory=dict)


def run_experiment(
    config: ExperimentConfig | str | os.PathLike[str] | dict[str, Any],
    *,
    data: str | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Run a walk-forward experiment end to end and write its run directory.

    Args:
        config: Config object, YAML path or mapping.
        data: Optional panel source overriding ``config.data.source`` (all of its symbols).
        out: Run directory; default ``<output_dir>/<name>-<UTC time>``.
        overwrite: Replace ``out`` if it exists.
        resume: Continue an interrupted run with the same ``out``: neural models pick up their
            checkpoints (``<out>.ckpt/<model>/fold_<k>/last.pt``) exactly where they stopped.
            Checkpoints are written for every run and removed once the run directory is complete.
        progress: Optional callback driven per fold and per model (the CLI draws bars with it).

    Returns:
        The :class:`RunResult`.

    Raises:
        ConfigError: bad names, windows that do not fit the data (before any training).
        DataError: invalid input data; a config's ``data.source`` file that does not exist (the
            message says it is resolved against the working directory and suggests ``--data``).
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    if data is not None:
        cfg = cfg.model_copy(
            update={"data": cfg.data.model_copy(update={"source": data, "symbols": None})}
        )
    else:
        check_source_file(cfg.data.source)
    if resume and out is None:
        raise ConfigError("--resume needs --out: the run directory of the interrupted run")
    # the run directory is claimed (locked) before any work: a second writer fails here
    with artifacts.claim_run_dir(cfg.output_dir, cfg.name, out, overwrite) as (run_dir, tmp):
        ckpt = artifacts.checkpoint_root(run_dir)
        if not resume:
            shutil.rmtree(ckpt, ignore_errors=True)  # stale checkpoints must not leak into a run
        try:
            with _log_to(tmp / artifacts.RUN_LOG), engine_session(cfg):
                result = _run(cfg, tmp, progress, ckpt, resume)
        except BaseException as exc:
            if is_full_disk(exc, run_dir.parent):  # nothing to resume: leave nothing behind
                shutil.rmtree(ckpt, ignore_errors=True)
            raise
    shutil.rmtree(ckpt, ignore_errors=True)
    result.run_dir = run_dir
    return result


def _run(
    cfg: ExperimentConfig,
    workdir: Path,
    progress: ProgressCallback | None,
    ckpt: Path,
    resume: bool,
) -> RunResult:
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    label = cfg.label.spec()
    members = engine_members(run_members(cfg, label.label_kind), cfg)  # before any data work
    panel = select_panel(load_panel(cfg.data.source, repair=cfg.data.repair), cfg)
    splitter = WalkForward(**cfg.split.model_dump(), horizon=cfg.label.horizon)
    folds = splitter.split(panel)  # ConfigError if the windows do not fit the data
    n_symbols = panel.index.get_level_values("symbol").nunique()
    log.info(
        "panel %s: %d rows, %d symbols, %d folds",
        cfg.data.source,
        len(panel),
        n_symbols,
        len(folds),
    )
    if label.cross_sectional and n_symbols < 2:
        raise ConfigError(
            f"label.transform: {label.transform!r} transforms the target across symbols, but "
            f"{cfg.data.source} has {n_symbols} symbol; use 'none'"
        )
    X = experiment_features(panel, cfg)
    y = make_label(panel, cfg.label.kind, cfg.label.horizon, price=cfg.label.price)
    log.info("features: %d columns in %.1fs", X.shape[1], time.perf_counter() - t0)

    ctx = _Context(cfg, members, label, workdir, ckpt, resume, progress)
    got = _Collected()
    target = transform_label(y, label.transform)  # what models fit; y_true stays raw
    for fold in folds:
        if progress:  # done counts finished folds: one call as a fold starts, one as it ends
            progress("fold", fold.index, len(folds), "")
        _run_fold(ctx, fold, _fold_features(X, fold, cfg), (y, target), got)
        if progress:
            progress("fold", fold.index + 1, len(folds), "")

    preds = pd.concat(got.predictions, ignore_index=True)
    metrics = _metrics(preds, cfg, label.label_kind, folds, members)
    _write_model_outputs(workdir, got, metrics)
    bt = None
    if label.label_kind == "return":
        bt = _write_backtest(workdir, panel, preds, cfg, metrics)
    _add_significance(metrics, preds, bt, cfg.seed)
    _write_curves(workdir, got)
    metrics["elapsed_s"] = round(time.perf_counter() - t0, 3)
    _write(workdir, cfg, preds, metrics, folds)
    artifacts.write_manifest(workdir)  # report.html and run.log are not in it
    _report(workdir)
    log.info("run finished in %.1fs", time.perf_counter() - t0)
    return RunResult(cfg, workdir, preds, metrics, folds)


def _run_fold(
    ctx: _Context, fold: Fold, X: pd.DataFrame, labels: tuple[pd.Series, pd.Series], got: _Collected
) -> None:
    """Fit every member on one fold, save it, and collect its predictions and by-products.

    ``labels`` is ``(y, target)``: models fit ``target`` (the transformed label), while
    predictions record the raw ``y`` as ``y_true``.
    """
    y, target = labels
    masks = {p: fold.rows(X, p) for p in ("train", *PREDICTED)}
    rows = {p: X.index[masks[p]] for p in PREDICTED if masks[p].any()}
    with shared_fold(X):  # every model of the fold reuses its row frames and float32 matrices
        for j, m in enumerate(ctx.members):
            if ctx.progress:  # done counts finished models: one call as it starts, one as it ends
                ctx.progress("model", j, len(ctx.members), m.name)
            model = m.build(ctx.cfg.seed, ctx.label)
            if model.capabilities.checkpointable:  # crash-safe, resumable training
                model.checkpoint_dir = ctx.ckpt / m.name / f"fold_{fold.index}"
                model.resume = ctx.resume
            if ctx.progress and model.capabilities.family == "neural":
                model.iteration_callback = partial(_epoch_progress, ctx.progress, model)
            fit_model(model, X, target, masks["train"], masks["valid"], ctx.label)
            _collect(model, m.name, fold.index, X, target, rows, got)
            model.save(artifacts.model_dir(ctx.workdir, m.name, fold.index))
            for p in rows:  # predicted in X's order, the order of rows[p]
                got.predictions.append(_frame(predict_rows(model, X, masks[p]), y, m.name, fold, p))
            if ctx.progress:
                ctx.progress("model", j + 1, len(ctx.members), m.name)


def _epoch_progress(progress: ProgressCallback, model: Any, epoch: int, score: float) -> None:
    """A network's ``iteration_callback``: ``progress("epoch", epoch + 1, max_epochs, desc)``."""
    c = model.config_  # resolved by fit before the first epoch; score is -rank_ic or the loss
    ic = getattr(c, "early_stopping_metric", "loss") == "rank_ic"
    desc = f"valid rank_ic {-score:.4g}" if ic else f"valid loss {score:.4g}"
    progress("epoch", epoch + 1, getattr(c, "max_epochs", 0) or epoch + 1, desc)


def _collect(
    model: BaseForecaster,
    name: str,
    fold: int,
    X: pd.DataFrame,
    y: pd.Series,
    rows: dict[str, pd.Index],
    got: _Collected,
) -> None:
    """Training curves, importances and ``run_outputs()`` of one fitted model."""
    hist = getattr(model, "history_", None)
    if isinstance(hist, pd.DataFrame):  # neural models: training curves for the report
        got.histories.append(hist.assign(model=name, fold=fold))
    if model.capabilities.feature_importance:
        imp = model.feature_importances_
        got.importances.append(
            pd.DataFrame(
                {"model": name, "fold": fold, "feature": imp.index, "importance": imp.values}
            )
        )
    for output, value in model.run_outputs(X, y, rows).items():
        if output not in artifacts.MODEL_OUTPUTS:
            raise ValueError(
                f"{type(model).__name__}.run_outputs: unknown output {output!r}; "
                f"known: {sorted(artifacts.MODEL_OUTPUTS)}"
            )
        got.outputs.setdefault(output, {}).setdefault(name, {})[fold] = value


def run_members(cfg: ExperimentConfig, kind: str) -> list[RunMember]:
    """The models, ensembles and baselines a run fits, in that order.

    Args:
        cfg: The experiment.
        kind: The label kind (``"return"`` / ``"volatility"``): picks the baselines.

    Raises:
        ConfigError: unknown model names.
    """
    members = [RunMember(m, get_model(m.name), "model") for m in cfg.models]
    members += [RunMember(m, get_model(m.name), "ensemble") for m in cfg.ensemble_models()]
    if cfg.baselines:
        have = {m.name for m in members}
        members += [
            RunMember(m, get_model(m.name), "baseline")
            for m in _baselines(cfg, kind)
            if m.display not in have
        ]
    return members


def n_configurations(members: list[RunMember]) -> int:
    """Configurations a run fits: every seed of every model and ensemble (baselines are fixed
    references, not choices)."""
    return sum(m.config.seeds for m in members if m.role != "baseline")


def _baselines(cfg: ExperimentConfig, kind: str) -> list[ModelConfig]:
    names = cfg.features.names
    built = set(catalogue_features(cfg.features.catalogue) if names is None else names)
    h = cfg.label.horizon
    # the last realised h-bar return is the natural "last value" of an h-bar return label
    last = f"ret_{h}" if f"ret_{h}" in built else "ret_1"
    out = []
    for name in baselines_for(kind):
        if kind == "volatility" and name == "last_value":
            continue  # the last return is no volatility forecast (negative, other units)
        params: dict[str, Any] = {}
        if name in ("last_value", "garch"):
            if last not in built:
                log.warning("baseline %s skipped: feature %s is not built", name, last)
                continue
            params = {"column": last} if name == "last_value" else {"column": "ret_1", "horizon": h}
        out.append(ModelConfig(name=name, params=params))
    return out


def default_spec(panel: pd.DataFrame) -> BacktestSpec:
    """Long-short quintiles with 5 bp costs, or a sign strategy when the panel has one symbol."""
    n = panel.index.get_level_values("symbol").nunique()
    return BacktestSpec() if n > 1 else BacktestSpec(strategy="sign")


def run_backtests(
    preds: pd.DataFrame, returns: pd.Series, spec: BacktestSpec
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Backtest every model's test predictions, at the configured delay and one bar later.

    Args:
        preds: A run's predictions (``predictions.parquet``).
        returns: One-bar returns per (timestamp, symbol) (:func:`~alphaforge.backtest.bar_returns`).
        spec: Strategy, costs and execution settings.

    Returns:
        ``(per-bar frame [model, variant, timestamp, gross, net, cost, turnover, n_long,
        n_short], {model: {"base": summary, "lagged": summary, "sharpe_drop": float}})``.
    """
    strategy, kw = from_spec(spec)
    delay = kw.pop("delay")
    frames, summaries = [], {}
    test = preds[preds["split"] == "test"]
    with warnings_once():  # one line per distinct warning, not one per model
        for name, g in test.groupby("model", sort=False):
            sig = g[["timestamp", "symbol", "y_pred"]]
            out = {}
            for variant, d in (("base", delay), ("lagged", delay + 1)):
                res = backtest(sig, returns, strategy, delay=d, **kw)
                out[variant] = res.summary
                frames.append(res.returns.reset_index().assign(model=name, variant=variant))
            out["sharpe_drop"] = out["base"]["gross"]["sharpe"] - out["lagged"]["gross"]["sharpe"]
            summaries[str(name)] = out
    bt = pd.concat(frames, ignore_index=True)
    bt.attrs = {}
    cols = ["model", "variant"] + [c for c in bt.columns if c not in ("model", "variant")]
    return bt[cols], summaries


def rebacktest(
    run_dir: str | os.PathLike[str], spec: BacktestSpec | dict[str, Any], *, save: bool = False
) -> dict[str, dict[str, Any]]:
    """Backtest a finished run's saved test predictions with other settings.

    Args:
        run_dir: Run directory holding ``predictions.parquet`` and ``returns.parquet``.
        spec: Backtest settings (a :class:`~alphaforge.backtest.BacktestSpec` or its mapping).
        save: Replace ``backtest.parquet`` and the backtest entries of ``metrics.json``, then
            rebuild ``report.html`` (each file written atomically).

    Returns:
        ``{model: {"base": summary, "lagged": summary, "sharpe_drop": float}}``.

    Raises:
        DataError: the run directory lacks the files a backtest needs.
        ConfigError: invalid settings.
    """
    run_dir = Path(run_dir)
    for name in (artifacts.PREDICTIONS, artifacts.RETURNS, artifacts.METRICS):
        if not (run_dir / name).is_file():
            raise DataError(f"{run_dir / name}: not found; is this a return-label run directory?")
    if not isinstance(spec, BacktestSpec):
        from_spec(spec)  # raises ConfigError naming bad keys
        spec = BacktestSpec.model_validate(spec)
    artifacts.verify_run(run_dir, [artifacts.PREDICTIONS, artifacts.RETURNS])
    preds = read_table(run_dir / artifacts.PREDICTIONS, PREDICTION_COLUMNS)
    r = read_table(run_dir / artifacts.RETURNS, ("timestamp", "symbol", "return"))
    bt, summaries = run_backtests(preds, r.set_index(["timestamp", "symbol"])["return"], spec)
    if save:
        with artifacts.run_lock(run_dir):  # one rewrite at a time; the manifest follows
            artifacts.verify_run(run_dir, [artifacts.METRICS])
            metrics = read_json(run_dir / artifacts.METRICS, what="metrics")
            metrics["backtest_spec"] = spec.model_dump(mode="json")
            for name, summary in summaries.items():
                metrics["models"][name]["backtest"] = summary
            # the Sharpe and DSR of the new backtest, with the run's bootstrap seed
            _add_significance(metrics, preds, bt, seed=int(metrics.get("seed", 0)))
            with atomic_write(run_dir / artifacts.BACKTEST, "wb") as fh:
                bt.to_parquet(fh, index=False)
            atomic_write_text(run_dir / artifacts.METRICS, artifacts.to_json(metrics))
            artifacts.update_manifest(run_dir, [artifacts.BACKTEST, artifacts.METRICS])
        _report(run_dir)
    return summaries


def _report(workdir: Path) -> None:
    try:
        write_report(workdir)
    except Exception:  # a report bug must not lose a finished run; the log says what happened
        log.exception("report.html could not be written")


def select_panel(panel: pd.DataFrame, cfg: ExperimentConfig) -> pd.DataFrame:
    """The panel rows ``cfg.data`` asks for (symbols, start, end).

    Raises:
        ConfigError: a requested symbol is missing, or no rows are left.
    """
    d = cfg.data
    if d.symbols:
        have = set(panel.index.get_level_values("symbol"))
        missing = [s for s in d.symbols if s not in have]
        if missing:
            raise ConfigError(
                f"data.symbols: {missing} not in {d.source}; available: {sorted(have)}"
            )
        panel = panel[panel.index.get_level_values("symbol").isin(d.symbols)]
    if d.start or d.end:
        ts = panel.index.get_level_values("timestamp")
        tz = getattr(ts, "tz", None)
        keep = np.ones(len(panel), dtype=bool)
        if d.start:
            keep &= ts >= pd.Timestamp(d.start, tz=tz)
        if d.end:
            keep &= ts <= pd.Timestamp(d.end, tz=tz)
        panel = panel[keep]
    if panel.empty:
        raise ConfigError(f"data: no rows left after selecting symbols/start/end from {d.source}")
    return panel


def experiment_features(panel: pd.DataFrame, cfg: ExperimentConfig) -> pd.DataFrame:
    """The experiment's feature matrix, with the per-timestamp normalisation if one is set
    (ranks and z-scores across symbols read one timestamp each, so no fold needs refitting)."""
    f = cfg.features
    X = features_for(cfg)(
        panel,
        f.names,
        catalogue=f.catalogue,
        cross_section=f.cross_section,
        cs_features=f.cs_features,
    )
    if f.normalize == "cs_rank":
        return cs_rank(X)
    if f.normalize == "cs_zscore":
        return cs_zscore(X)
    return X


def _fold_features(X: pd.DataFrame, fold: Fold, cfg: ExperimentConfig) -> pd.DataFrame:
    """Per-fold steps fitted on the fold's training rows only: PCA factors, then the robust
    z-score; both transform row by row, so later rows cannot leak back."""
    k = cfg.features.pca_components
    train = fold.rows(X, "train")
    if k:
        pca = PCAFactors(n_components=k, random_state=cfg.seed).fit(X[train])
        X = pd.concat([X, pca.transform(X)], axis=1)
    if cfg.features.normalize == "robust_zscore":
        X = FeatureNormalizer("robust_zscore").fit(X[train]).transform(X)
    return X


def _frame(pred: pd.Series, y: pd.Series, model: str, fold: Fold, part: str) -> pd.DataFrame:
    idx = pred.index
    return pd.DataFrame(
        {
            "timestamp": idx.get_level_values("timestamp"),
            "symbol": idx.get_level_values("symbol").astype(str),
            "model": model,
            "fold": np.int32(fold.index),
            "split": part,
            "y_true": y.reindex(idx).to_numpy(dtype="float64"),
            "y_pred": pred.to_numpy(dtype="float64"),
        }
    )


def _metrics(
    preds: pd.DataFrame,
    cfg: ExperimentConfig,
    kind: str,
    folds: list[Fold],
    members: list[RunMember],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": cfg.label.model_dump(),
        "label_kind": kind,
        "n_folds": len(folds),
        "seed": cfg.seed,
        # every configuration this result was chosen from: the Deflated Sharpe Ratio's N
        "n_configurations": cfg.configurations_tried + n_configurations(members),
        "models": {},
    }
    by_name = {m.name: m for m in members}
    for name, g in preds.groupby("model", sort=False):
        m = by_name[str(name)]
        entry: dict[str, Any] = {"baseline": m.role == "baseline"}
        keys = m.member_keys() if m.config.seeds == 1 else []
        if m.config.seeds > 1:
            entry["seeds"] = m.config.seeds
        if keys:
            entry["ensemble"] = {"kind": m.config.name, "members": keys}
        for part, gp in g.groupby("split", sort=False):
            s = gp.set_index(["timestamp", "symbol"])
            overall = evaluate(
                s["y_true"], s["y_pred"], cfg.metrics, label_kind=kind, undefined="nan"
            )
            per_fold = {
                int(k): evaluate(
                    f["y_true"], f["y_pred"], cfg.metrics, label_kind=kind, undefined="nan"
                )
                for k, f in s.groupby("fold", sort=True)
            }
            entry[part] = {"overall": overall, "per_fold": per_fold}
        if keys:
            entry["vs_best_member"] = _vs_members(preds, str(name), keys, cfg, kind)
        out["models"][name] = entry
    return out


def _vs_members(
    preds: pd.DataFrame, name: str, member_keys: list[str], cfg: ExperimentConfig, kind: str
) -> dict[str, Any]:
    """Ensemble vs its best member per metric, on the test rows every one of them predicted."""
    test = preds[preds["split"] == "test"]
    present = [k for k in member_keys if k in set(test["model"])]
    if not present:
        return {}  # members that are not models of the run have no predictions to compare
    wide = test.pivot_table(
        index=["timestamp", "symbol"],
        columns="model",
        values="y_pred",
        aggfunc="first",
        dropna=False,
    )[[name, *present]]
    y_true = (
        test.drop_duplicates(["timestamp", "symbol"])
        .set_index(["timestamp", "symbol"])["y_true"]
        .reindex(wide.index)
    )
    wide = wide[np.isfinite(wide.to_numpy()).all(axis=1) & y_true.notna().to_numpy()]
    y_true = y_true.reindex(wide.index)
    scores = {
        c: evaluate(y_true, wide[c], cfg.metrics, label_kind=kind, undefined="nan")
        for c in wide.columns
    }
    out: dict[str, Any] = {"rows": len(wide)}
    for metric, value in scores[name].items():
        vals = {k: scores[k][metric] for k in present if np.isfinite(scores[k][metric])}
        if not vals or not np.isfinite(value):
            continue
        higher = METRICS[metric].direction == "maximize"
        best = (max if higher else min)(vals, key=vals.__getitem__)
        out[metric] = {
            "ensemble": value,
            "best_member": best,
            "best": vals[best],
            "diff": value - vals[best],
            "better": bool(value > vals[best] if higher else value < vals[best]),
        }
    return out


def _add_significance(
    metrics: dict[str, Any], preds: pd.DataFrame, bt: pd.DataFrame | None, seed: int
) -> None:
    """Newey-West t and bootstrap CI of each model's test Rank IC, its net Sharpe with a CI and
    Deflated Sharpe Ratio, into ``metrics["models"][m]["significance"]``.

    Every non-baseline model is deflated by all the configurations tried
    (``metrics["n_configurations"]``); baselines are fixed references and count once.
    """
    if not (preds["split"] == "test").any():
        return
    n = int(metrics.get("n_configurations", 1)) or 1
    tried = {m: n for m, entry in metrics["models"].items() if not entry.get("baseline")}
    spec = metrics.get("backtest_spec") or {}
    ppy = spec.get("periods_per_year")
    if ppy is None and bt is not None and len(bt):
        ppy = infer_periods_per_year(pd.Index(bt["timestamp"].unique()).sort_values())
    sig = run_significance(
        preds,
        bt,
        horizon=int(metrics["label"]["horizon"]),
        n_trials=tried,
        seed=seed,
        periods_per_year=ppy,
    )
    for name, entry in sig.items():
        metrics["models"][name]["significance"] = entry


def _write_model_outputs(workdir: Path, got: _Collected, metrics: dict[str, Any]) -> None:
    """``run_outputs()`` of the models: ensemble components and fusion weights."""
    components = got.outputs.get("ensemble_components", {})
    if components:
        frames = [
            f.assign(model=name, fold=np.int32(k))
            for name, per_fold in components.items()
            for k, f in per_fold.items()
        ]
        comp = pd.concat(frames, ignore_index=True)
        front = ["timestamp", "symbol", "model", "fold", "split"]
        comp[front + [c for c in comp.columns if c not in front]].to_parquet(
            workdir / artifacts.ENSEMBLE_COMPONENTS, index=False
        )
    fusion = got.outputs.get("fusion_weights", {})
    if fusion:
        by_fold = {
            name: {f"fold_{k}": v for k, v in per_fold.items()} for name, per_fold in fusion.items()
        }
        atomic_write_text(workdir / artifacts.FUSION_WEIGHTS, artifacts.to_json(by_fold))
        for name, per_fold in fusion.items():
            w = pd.DataFrame([f["weights"] for f in per_fold.values()])
            metrics["models"][name]["fusion_weights"] = {
                "mean": w.mean().to_dict(),
                "intercept": float(np.mean([f["intercept"] for f in per_fold.values()])),
            }


def _write_backtest(
    workdir: Path,
    panel: pd.DataFrame,
    preds: pd.DataFrame,
    cfg: ExperimentConfig,
    metrics: dict[str, Any],
) -> pd.DataFrame:
    """Backtest every model's test predictions; returns the per-bar frame it wrote."""
    returns = bar_returns(panel, cfg.label.price)
    returns.attrs = {}  # panel attrs hold a Timedelta, which Parquet metadata cannot store
    spec = cfg.backtest or default_spec(panel)
    bt, summaries = run_backtests(preds, returns, spec)
    metrics["backtest_spec"] = spec.model_dump(mode="json")
    for name, summary in summaries.items():
        metrics["models"][name]["backtest"] = summary
    bt.to_parquet(workdir / artifacts.BACKTEST, index=False)
    returns.rename("return").reset_index().to_parquet(workdir / artifacts.RETURNS, index=False)
    return bt


def _write_curves(workdir: Path, got: _Collected) -> None:
    """Feature importances and training curves, where models gave any."""
    if got.importances:
        pd.concat(got.importances, ignore_index=True).to_parquet(
            workdir / artifacts.FEATURE_IMPORTANCE, index=False
        )
    if got.histories:
        hist = pd.concat(got.histories, ignore_index=True)
        front = ["model", "fold", "epoch", "train_loss", "valid_loss"]
        hist[front + [c for c in hist.columns if c not in front]].to_parquet(
            workdir / artifacts.HISTORY, index=False
        )


def _write(
    workdir: Path,
    cfg: ExperimentConfig,
    preds: pd.DataFrame,
    metrics: dict[str, Any],
    folds: list[Fold],
) -> None:
    atomic_write_text(workdir / artifacts.CONFIG, dump_config(cfg))
    preds.to_parquet(workdir / artifacts.PREDICTIONS, index=False)
    atomic_write_text(workdir / artifacts.METRICS, artifacts.to_json(metrics))
    atomic_write_text(
        workdir / artifacts.FOLDS, json.dumps([f.describe() for f in folds], indent=2)
    )


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("alphaforge")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level or logging.INFO, logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
