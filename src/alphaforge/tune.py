"""Hyperparameter search per (symbol, model) with Optuna, a promotion gate and crash-safe storage.

One Optuna study per ``(symbol, model)`` named ``"{symbol}:{model}"``; each model brings its own
``search_space(trial)``. For each symbol the labelled bars are cut, oldest to newest, into::

    [ train ........ ][purge h][ val (30) ][purge h][ test (20) ]

A trial fits on ``train`` (early stopping on ``val``) and is scored on ``val`` with the chosen
metric; ``test`` is never seen by the search and is scored once, for the study's best params.
``purge h`` drops the ``horizon`` bars whose labels would look into the next window.

Storage (DESIGN.md §3 "Tuning storage"): one worker -> SQLite file ``root/optuna.db``; several
workers on one machine -> Optuna's journal file ``root/optuna.journal`` (SQLite is not safe under
parallel writers), workers are separate ``spawn`` processes; ``postgresql://...`` -> RDB storage
with heartbeats and retry of trials whose worker died. Before and after the workers run, a sweeper
repairs a torn journal tail and marks trials left RUNNING by dead workers as FAIL. The gate and the
storages live in :mod:`alphaforge.tuning`.

Files under ``root`` (all written atomically)::

    hyperparams/optimized/{model}/{SYMBOL}.json   the study's best, always
    hyperparams/best/{SYMBOL}.json                only when the promotion gate says so
    results/tune_{timestamp}.json                 run summary
    logs/tune_{timestamp}.log                     log of the run
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from alphaforge.errors import AlphaforgeError, ConfigError, DataError
from alphaforge.tuning.gate import Direction, improvement, promote
from alphaforge.tuning.storage import OWNER_ATTR, open_storage, resolve_storage, sweep
from alphaforge.utils.io import (
    atomic_write_text,
    check_symbol,
    remove_stale_temp,
    safe_filename,
)

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

__all__ = ["StudyStatus", "SymbolData", "SymbolResult", "TuneSummary", "Window", "cut_windows",
           "fit_score", "load_tune_config", "open_storage", "prepare", "promote",
           "resolve_models", "resolve_storage", "run_worker", "study_name", "study_status",
           "sweep", "tune", "tune_history"]

Progress = Callable[[str, int, int, str], None]
PRUNE_EVERY = 25  # report an iterative model's valid loss to the pruner every this many rounds
PRUNE_STRIDE = 100_000  # fold k's round i is pruner step k * PRUNE_STRIDE + i
OHLCV = ("open", "high", "low", "close", "volume")


# ----------------------------------------------------------------------------- results
@dataclass
class SymbolResult:
    """Outcome of one ``(symbol, model)`` study in one run.

    Attributes:
        symbol, model: The study's key.
        n_trials: Trials completed in the study after this run (all runs together).
        n_failed: Trials in FAIL state in the study.
        n_pruned: Trials the pruner stopped early (PRUNED state) in the study.
        old_score: Validation score of the stored ``hyperparams/best`` record (None: none).
        new_score: Best validation score of the study (None: no completed trial).
        improvement: Relative improvement of ``new`` over ``old``, sign-adjusted so that
            positive is better (None when undefined).
        promoted: Whether ``hyperparams/best/{SYMBOL}.json`` was written.
        reason: Why it was or was not promoted, one line.
        test_score: The metric on the held-out test window for the best params.
        params: The best params (config overrides for ``from_params``).
        wall_s: Seconds spent on this study in this run.
    """

    symbol: str
    model: str
    n_trials: int = 0
    n_failed: int = 0
    n_pruned: int = 0
    old_score: float | None = None
    new_score: float | None = None
    improvement: float | None = None
    promoted: bool = False
    reason: str = ""
    test_score: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass
class TuneSummary:
    """What :func:`tune` did; also written as ``results/tune_{timestamp}.json``.

    Attributes:
        results: One :class:`SymbolResult` per ``(symbol, model)``.
        metric, direction: The validation metric and whether lower or higher is better.
        storage: The Optuna storage used (URL or journal path).
        workers, trials: Worker processes and new trials requested per study.
        wall_s: Seconds for the whole run.
        summary_path, log_path: Files written.
    """

    results: list[SymbolResult]
    metric: str
    direction: Direction
    storage: str
    workers: int
    trials: int
    wall_s: float
    timestamp: str
    summary_path: Path | None = None
    log_path: Path | None = None

    @property
    def n_promoted(self) -> int:
        """Number of ``(symbol, model)`` studies whose best params were promoted."""
        return sum(r.promoted for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, totals added)."""
        out = asdict(self)
        out["summary_path"] = str(self.summary_path) if self.summary_path else None
        out["log_path"] = str(self.log_path) if self.log_path else None
        out["totals"] = {"studies": len(self.results), "promoted": self.n_promoted,
                         "trials": sum(r.n_trials for r in self.results)}
        return out


@dataclass
class StudyStatus:
    """Live state of one study, read from the storage while the search runs.

    Attributes:
        study: ``"{symbol}:{model}"``.
        complete, pruned, failed, running: Trial counts by state (all runs together).
        best: Best completed value (None: none yet).
        last: Value of the most recently finished complete trial.
    """

    study: str
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best: float | None = None
    last: float | None = None


def study_status(storage: Any, names: Sequence[str]) -> list[StudyStatus]:
    """One :class:`StudyStatus` per study name (zeros for a study not created yet)."""
    import optuna
    from optuna.trial import TrialState

    out = []
    for name in names:
        st = StudyStatus(name)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            out.append(st)
            continue
        done = []
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE:
                done.append(t)
            st.pruned += t.state == TrialState.PRUNED
            st.failed += t.state == TrialState.FAIL
            st.running += t.state == TrialState.RUNNING
        st.complete = len(done)
        if done:
            pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
            st.best = float(pick(t.value for t in done))
            st.last = float(max(done, key=lambda t: t.datetime_complete).value)
        out.append(st)
    return out


# ----------------------------------------------------------------------------- models
def resolve_models(model: str | Sequence[str]) -> list[str]:
    """Registry names for ``model``: a name, ``"both"`` (lightgbm, xgboost) or ``"all"`` (every
    model that is neither a baseline, an ensemble nor a foundation model).

    Raises:
        ConfigError: An unknown name (lists the valid ones).
    """
    from alphaforge.registry import BASELINES, MODELS

    names = [model] if isinstance(model, str) else list(model)
    out: list[str] = []
    for name in names:
        if name == "both":
            out += ["lightgbm", "xgboost"]
        elif name == "all":
            # ensembles tune through their members' studies, baselines have nothing to tune
            # foundation models need local weights: tune them by name with fixed_params
            out += [n for n in MODELS if n not in BASELINES
                    and MODELS[n].family not in ("ensemble", "foundation")]
        elif name in MODELS:
            out.append(name)
        else:
            raise ConfigError(f"unknown model {name!r}; valid: 'both', 'all', "
                              f"{', '.join(sorted(MODELS))}")
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Window:
    """One fit-and-score cut: row ranges into :class:`SymbolData`'s ``X`` / ``y``.

    ``fit = [0, fit_end)`` trains, ``stop = [stop_start, stop_end)`` early-stops (and feeds the
    pruner), ``score = [score_start, score_end)`` is scored. Consecutive ranges are separated by
    ``horizon`` purged bars, so no label of one range looks into the next.
    """

    fit_end: int
    stop_start: int
    stop_end: int
    score_start: int
    score_end: int


@dataclass(frozen=True)
class SymbolData:
    """One symbol's features and label (time-ordered) with its validation folds and test window.

    Attributes:
        X, y: The symbol's labelled rows, oldest first.
        folds: Validation folds, oldest first; a trial's score is the mean over them.
        test: The held-out window, scored once for the study's best params.
        data_hash: :func:`data_hash` of the symbol's bars.
    """

    X: pd.DataFrame
    y: pd.Series
    folds: tuple[Window, ...]
    test: Window
    data_hash: str

    def rows(self, start: int, end: int) -> tuple[pd.DataFrame, pd.Series]:
        """``X`` and ``y`` rows ``[start, end)``."""
        return self.X.iloc[start:end], self.y.iloc[start:end]


def data_hash(panel: pd.DataFrame, symbol: str) -> str:
    """sha256 of one symbol's timestamps and float64 OHLCV bytes (changes when any bar does)."""
    rows = panel.xs(symbol, level="symbol")
    h = hashlib.sha256(rows.index.to_numpy().astype("datetime64[ns]").tobytes())
    h.update(np.ascontiguousarray(rows[list(OHLCV)].to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def _window(score_start: int, score_end: int, stop: int, horizon: int) -> Window:
    stop_end = score_start - horizon
    stop_start = stop_end - stop
    return Window(stop_start - horizon, stop_start, stop_end, score_start, score_end)


def cut_windows(n: int, *, val: int, test: int, folds: int, stop: int, horizon: int,
                min_train: int = 50) -> tuple[tuple[Window, ...], Window]:
    """Cut ``n`` time-ordered labelled rows into validation folds and a test window::

        ... [fit][h][stop][h][val 1] ... [val k][h][test]

    The ``folds`` validation windows of ``val`` rows are contiguous and end ``horizon`` rows
    before the last ``test`` rows. Each window (validation or test) is scored by a model fitted
    on every row before it except the ``stop`` rows just before it (early stopping) and the
    purges.

    Raises:
        ConfigError: Non-positive lengths.
        DataError: Fewer than ``min_train`` rows left to fit the first fold.
    """
    if val < 1 or test < 1 or folds < 1 or stop < 1:
        raise ConfigError(f"val, test, folds and stop must be >= 1, got val={val}, "
                          f"test={test}, folds={folds}, stop={stop}")
    test_start = n - test
    val_end = test_start - horizon
    starts = [val_end - (folds - i) * val for i in range(folds)]
    fold_windows = tuple(_window(a, a + val, stop, horizon) for a in starts)
    if fold_windows[0].fit_end < min_train:
        need = n - fold_windows[0].fit_end + min_train
        raise DataError(f"{n} labelled bars, need at least {need} (test {test}, {folds} x val "
                        f"{val}, early-stopping {stop}, purges of {horizon}, {min_train} train)")
    return fold_windows, _window(test_start, n, stop, horizon)


def prepare(data: Any, symbols: Sequence[str] | None, *, label: str, horizon: int,
            features: Sequence[str] | None, val: int, test: int, folds: int = 1,
            stop: int | None = None) -> dict[str, SymbolData]:
    """Load the panel, build features on the whole panel, then cut each symbol's bars.

    Features are built on the full panel so cross-sectional columns exist, then filtered to the
    symbol. Only bars with a known label are used.

    Args:
        data: Anything :func:`~alphaforge.data.load_panel` accepts.
        symbols: Symbols to tune; None = all in the panel.
        label, horizon: Label kind (:data:`~alphaforge.labels.LABELS`) and bars ahead.
        features: Feature names; None = the whole catalogue.
        val, test, folds, stop: Window lengths in bars (see :func:`cut_windows`); ``stop``
            None = ``val``.

    Returns:
        ``{symbol: SymbolData}`` in the order of ``symbols``.

    Raises:
        DataError: Unsafe symbol name, symbol not in the panel, or too few bars.
        ConfigError: Bad window lengths, label or feature names.
    """
    from alphaforge.data import load_panel
    from alphaforge.features import build_features
    from alphaforge.labels import make_label

    stop = val if stop is None else stop
    cut_windows(10**9, val=val, test=test, folds=folds, stop=stop, horizon=horizon)  # lengths
    panel = load_panel(data)
    present = list(dict.fromkeys(panel.index.get_level_values("symbol")))
    chosen = present if not symbols else list(dict.fromkeys(symbols))
    for s in chosen:
        check_symbol(s)
        if s not in present:
            raise DataError(f"symbol {s!r} is not in the data; present: {', '.join(present)}")
    X = build_features(panel, features)
    y = make_label(panel, label, horizon)
    out = {}
    for s in chosen:
        mask = (X.index.get_level_values("symbol") == s) & y.notna().to_numpy()
        try:
            fold_windows, test_window = cut_windows(int(mask.sum()), val=val, test=test,
                                                    folds=folds, stop=stop, horizon=horizon)
        except DataError as exc:
            raise DataError(f"symbol {s!r}: {exc}") from None
        out[s] = SymbolData(X[mask], y[mask], fold_windows, test_window, data_hash(panel, s))
    return out


def fit_score(model: str, params: Mapping[str, Any], d: SymbolData, metric: str,
              *, seed: int, on: Literal["val", "test"] = "val",
              report: Callable[[int, float], None] | None = None) -> float:
    """Fit ``model`` per window of ``d`` and score it: mean over the folds, or the test window.

    Each window's model is fitted on the rows before its early-stopping rows, early-stops on
    those, and is scored on the window: the scored rows never choose the number of rounds.

    Args:
        report: ``report(step, valid_loss)`` per boosting round / epoch of iterative models;
            fold ``k``'s iteration ``i`` is step ``k * PRUNE_STRIDE + i``. May raise to stop.

    Returns:
        The metric; NaN when predictions or the metric are not finite.
    """
    from alphaforge.metrics import get_metric
    from alphaforge.registry import get_model

    fn = get_metric(metric).fn
    scores = []
    for k, w in enumerate(d.folds if on == "val" else (d.test,)):
        est = get_model(model).from_params(dict(params), random_state=seed)
        if report is not None:
            est.iteration_callback = (lambda i, v, k=k: report(k * PRUNE_STRIDE + i, v))
        X_fit, y_fit = d.rows(0, w.fit_end)
        est.fit(X_fit, y_fit, valid=d.rows(w.stop_start, w.stop_end))
        X, y = d.rows(w.score_start, w.score_end)
        pred = est.predict(X)
        if not np.isfinite(pred.to_numpy(dtype=np.float64)).all():
            return float("nan")
        score = float(fn(y, pred))
        if not math.isfinite(score):
            return float("nan")
        scores.append(score)
    return float(np.mean(scores))


def fit_score_bank(model: str, params: Mapping[str, Any], d: SymbolData, metric: str, *,
                   seed: int, on: Literal["val", "test"] = "val",
                   cache: dict[Any, Any] | None = None) -> float:
    """:func:`fit_score` for sampling models (foundation adapters), from one bank of samples.

    Each window's samples are drawn once at the model's ``bank_size`` and rescored for the
    trial's ``(num_samples, aggregation)``: trials that differ only in ``cls.bank_params`` share
    the bank through ``cache`` (keyed by the other params), so one sampling pass serves many
    trials. The first ``n`` samples of a bank equal a run with ``num_samples = n``.
    """
    from alphaforge.models.foundation import score_sample_bank
    from alphaforge.registry import get_model

    cls = get_model(model)
    defaults = cls.Config()
    n = int(params.get("num_samples", getattr(defaults, "num_samples", 1)))
    size = cls.bank_size or n
    key = (on, size, tuple(sorted((k, repr(v)) for k, v in params.items()
                                  if k not in cls.bank_params)))
    banks = None if cache is None else cache.get(key)
    if banks is None:
        banks = []
        for w in d.folds if on == "val" else (d.test,):
            extra = {"num_samples": size} if hasattr(defaults, "num_samples") else {}
            est = cls.from_params({**params, **extra}, random_state=seed)
            est.fit(*d.rows(0, w.fit_end), valid=d.rows(w.stop_start, w.stop_end))
            X, y = d.rows(w.score_start, w.score_end)
            banks.append((est.sample_targets(X, num_samples=size), y))
        if cache is not None:
            cache[key] = banks
    choice = [(n, params.get("aggregation", defaults.aggregation))]
    scores = [float(score_sample_bank(b, y, metric, choice)["score"].iloc[0]) for b, y in banks]
    return float(np.mean(scores)) if np.isfinite(scores).all() else float("nan")


# ----------------------------------------------------------------------------- search
def study_name(symbol: str, model: str) -> str:
    """``"{symbol}:{model}"``, the name of one study."""
    return f"{symbol}:{model}"


def _objective(model: str, d: SymbolData, metric: str, fixed: Mapping[str, Any], seed: int,
               prune: bool = True) -> Callable[[optuna.Trial], float]:
    import optuna

    from alphaforge.registry import get_model

    cls = get_model(model)
    bank_cache: dict[Any, Any] = {}  # per study and process: sample banks of foundation models

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        params = {**cls.search_space(trial), **fixed}
        trial.set_user_attr("params", params)
        t0 = time.perf_counter()
        prune_s = [0.0]

        def report(step: int, loss: float) -> None:
            # every PRUNE_EVERY rounds: a storage write per round would cost more than the round
            if step % PRUNE_EVERY or not math.isfinite(loss):
                return
            p0 = time.perf_counter()
            trial.report(loss, step)
            pruned = trial.should_prune()
            prune_s[0] += time.perf_counter() - p0
            if pruned:
                raise optuna.TrialPruned(f"valid loss {loss:.6g} at step {step}")

        try:
            if getattr(cls, "bank_params", None):  # foundation adapters: score a sample bank
                score = fit_score_bank(model, params, d, metric, seed=seed, cache=bank_cache)
            else:
                score = fit_score(model, params, d, metric, seed=seed,
                                  report=report if prune and cls.capabilities.early_stopping
                                  else None)
        finally:  # benchmarks: the objective's own time, less the pruner's storage calls
            trial.set_user_attr("fit_s", time.perf_counter() - t0 - prune_s[0])
        return score  # NaN makes Optuna mark the trial FAIL (it never becomes the best)

    return objective


@dataclass(frozen=True)
class _Job:
    """Everything one worker process needs (picklable for ``spawn``)."""

    data: Any
    symbols: list[str]
    models: list[str]
    storage: str
    metric: str
    direction: Direction
    label: str
    horizon: int
    features: list[str] | None
    val: int
    test: int
    folds: int
    stop: int | None
    prune: bool
    fixed_params: dict[str, dict[str, Any]]
    seed: int
    deadline: float | None


def _n_jobs_default(model: str, workers: int) -> dict[str, Any]:
    from alphaforge.registry import get_model

    cfg = getattr(get_model(model), "Config", None)
    fields = getattr(cfg, "__dataclass_fields__", {})
    # share the cores between workers instead of each taking them all
    return {"n_jobs": max(1, (os.cpu_count() or 1) // workers)} if "n_jobs" in fields else {}


def run_worker(job: _Job, worker: int, n_trials: int,
               on_trial: Callable[[str, int], None] | None = None,
               prepared: Mapping[str, SymbolData] | None = None) -> None:
    """Run ``n_trials`` trials of every study in ``job``; the body of one worker process.

    Args:
        job: What to tune and where.
        worker: Worker index; the TPE seed is ``job.seed + worker``.
        n_trials: New trials per study for this worker.
        on_trial: Called with ``(study_name, trials_done)`` after each trial (main process only).
        prepared: Data already cut by :func:`prepare` (in-process); None: prepare it here.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared = prepared or prepare(job.data, job.symbols, label=job.label, horizon=job.horizon,
                       features=job.features, val=job.val, test=job.test, folds=job.folds,
                       stop=job.stop)
    storage = open_storage(job.storage)
    for symbol in job.symbols:
        for model in job.models:
            name = study_name(symbol, model)
            remaining = None if job.deadline is None else job.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return
            study = optuna.create_study(
                storage=storage, study_name=name, direction=job.direction, load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=job.seed + worker),
                pruner=(optuna.pruners.MedianPruner(n_startup_trials=5,
                                                    n_warmup_steps=5 * PRUNE_EVERY)
                        if job.prune else optuna.pruners.NopPruner()))
            objective = _objective(model, prepared[symbol], job.metric,
                                   job.fixed_params.get(model, {}), job.seed, job.prune)
            callbacks = [] if on_trial is None else [lambda s, t, n=name: on_trial(n, t.number)]
            study.optimize(objective, n_trials=n_trials, timeout=remaining,
                           catch=(AlphaforgeError, ValueError, FloatingPointError),
                           callbacks=callbacks)


def _spawn_worker(job: _Job, worker: int, n_trials: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    run_worker(job, worker, n_trials)


def _split_trials(trials: int, workers: int) -> list[int]:
    return [trials // workers + (i < trials % workers) for i in range(workers)]


# ----------------------------------------------------------------------------- gate + files
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("%s: unreadable (%s); treated as missing", path, exc)
        return None


def _finish_study(symbol: str, model: str, d: SymbolData, job: _Job, root: Path,
                  min_improvement: float, force: bool, stamp: str) -> SymbolResult:
    import optuna
    from optuna.trial import TrialState

    from alphaforge import __version__

    res = SymbolResult(symbol, model)
    try:
        study = optuna.load_study(study_name=study_name(symbol, model),
                                  storage=open_storage(job.storage))
    except KeyError:  # the timeout ran out before this study started
        res.reason = "no completed trials (timeout before the study started)"
        return res
    trials = study.get_trials(deepcopy=False)
    res.n_trials = sum(t.state == TrialState.COMPLETE for t in trials)
    res.n_failed = sum(t.state == TrialState.FAIL for t in trials)
    res.n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    best_path = root / "hyperparams" / "best" / f"{safe_filename(symbol)}.json"
    old = _read_json(best_path)
    if old is not None and old.get("metric") == job.metric:
        res.old_score = old.get("val_score")
    if res.n_trials == 0:
        res.reason = "no completed trials"
        return res
    best = study.best_trial
    res.params = dict(best.user_attrs.get("params", best.params))
    res.new_score = float(best.value)
    res.test_score = fit_score(model, res.params, d, job.metric, seed=job.seed, on="test")
    record = {
        "symbol": symbol, "model": model, "params": res.params,
        "val_score": res.new_score, "test_score": res.test_score, "metric": job.metric,
        "direction": job.direction, "label": job.label, "horizon": job.horizon,
        "val_bars": job.val, "test_bars": job.test, "folds": job.folds,
        "stop_bars": job.val if job.stop is None else job.stop, "study": study.study_name,
        "trial": best.number, "n_trials": res.n_trials, "data_hash": d.data_hash,
        "timestamp": stamp, "alphaforge_version": __version__,
    }
    text = json.dumps(record, indent=2, allow_nan=True) + "\n"
    atomic_write_text(root / "hyperparams" / "optimized" / model / f"{safe_filename(symbol)}.json",
                      text)
    if old is not None and old.get("metric") not in (None, job.metric) and not force:
        res.reason = f"stored best uses metric {old.get('metric')!r}; not comparable"
        return res
    if res.old_score is not None:
        res.improvement = improvement(res.old_score, res.new_score, job.direction)
    res.promoted, res.reason = promote(res.old_score, res.new_score, job.direction,
                                       min_improvement, force)
    if res.promoted:
        atomic_write_text(best_path, text)
    logger.info("%s %s: val %.6g (old %s) test %.6g: %s", symbol, model, res.new_score,
                res.old_score, res.test_score, res.reason)
    return res


# ----------------------------------------------------------------------------- public entry
def tune(
    data: Any,
    model: str | Sequence[str],
    symbols: Sequence[str] | None = None,
    trials: int = 100,
    workers: int = 1,
    storage: str | None = None,
    min_improvement: float = 0.01,
    force: bool = False,
    timeout: float | None = None,
    seed: int = 0,
    root: str | os.PathLike[str] = ".",
    val: int = 30,
    test: int = 20,
    metric: str = "pct_return_mae",
    folds: int = 1,
    stop: int | None = None,
    prune: bool = True,
    label: str = "forward_return",
    horizon: int = 1,
    features: Sequence[str] | None = None,
    progress: Progress | None = None,
    fixed_params: Mapping[str, Mapping[str, Any]] | None = None,
    monitor: Callable[[list[StudyStatus]], None] | None = None,
) -> TuneSummary:
    """Tune every ``(symbol, model)`` pair, then promote improved configs.

    Args:
        data: Panel source for :func:`~alphaforge.data.load_panel` (path, ``builtin:NAME``,
            ``synthetic:...`` or a DataFrame).
        model: Registry name, ``"both"`` (lightgbm + xgboost), ``"all"`` (every non-baseline
            model) or a list of names.
        symbols: Symbols to tune; None = all in the panel.
        trials: New trials per study in this run, shared between the workers.
        workers: Worker processes (``spawn``); > 1 needs a journal file or PostgreSQL storage.
        storage: Optuna storage URL (``sqlite:///...``, ``postgresql://...``), a ``.journal``
            path, or None for ``root/optuna.db`` (1 worker) / ``root/optuna.journal``.
        min_improvement: Relative validation improvement needed to promote (0.01 = 1%).
        force: Promote the new best regardless of the stored one.
        timeout: Seconds for the whole search (None: no limit); the gate runs afterwards.
        seed: Base seed; worker ``i`` samples with TPE seed ``seed + i``; models fit with ``seed``.
        root: Directory for ``hyperparams/``, ``results/``, ``logs/`` and the default storage.
        val, test: Validation and held-out test window lengths, in each symbol's bars.
        metric: A key of :data:`~alphaforge.metrics.METRICS`; its direction is used.
        folds: Contiguous validation windows of ``val`` bars before the test window (walk-
            forward); a trial scores the mean over them.
        stop: Early-stopping bars just before each scored window (None: ``val``); the scored
            bars never pick the number of rounds.
        prune: Prune hopeless trials of iterative models (LightGBM, XGBoost, neural nets):
            Optuna's median pruner on the early-stopping loss every ``PRUNE_EVERY`` rounds.
        label, horizon: Label kind and bars ahead; the horizon is the purge width.
        features: Feature names (None: the whole catalogue).
        progress: ``progress(stage, done, total, description)`` after each trial / study.
        fixed_params: ``{model: {param: value}}`` applied over every sampled config (e.g. a
            thread count or a small ``n_estimators`` for tests).
        monitor: Called with every study's :class:`StudyStatus` while the search runs (after
            a trial with one worker, about once a second with several; read from the storage).

    Returns:
        A :class:`TuneSummary`; also written to ``root/results/tune_{timestamp}.json``.

    Raises:
        ConfigError: Unknown model or metric, bad counts, SQLite with several workers.
        DataError: Unsafe or missing symbol, too few bars.
    """
    from alphaforge.metrics import get_metric

    started = time.time()
    if trials < 1 or workers < 1:
        raise ConfigError(f"trials and workers must be >= 1, got {trials} and {workers}")
    models = resolve_models(model)
    spec = get_metric(metric)
    rootp = Path(root).resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    log_path = rootp / "logs" / f"tune_{stamp}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    pkg = logging.getLogger("alphaforge")
    old_level = pkg.level
    pkg.addHandler(handler)
    if pkg.getEffectiveLevel() > logging.INFO:
        pkg.setLevel(logging.INFO)
    try:
        prepared = prepare(data, symbols, label=label, horizon=horizon, features=features,
                           val=val, test=test, folds=folds, stop=stop)
        store = resolve_storage(storage, rootp, workers)
        for sub in ("hyperparams", "results"):  # left by a run killed mid-write
            for path in remove_stale_temp(rootp / sub):
                logger.info("removed %s, left by a killed writer", path)
        fixed = {m: {**_n_jobs_default(m, workers), **dict((fixed_params or {}).get(m, {}))}
                 for m in models}
        job = _Job(data, list(prepared),
                   models, store, metric, spec.direction, label, horizon,
                   None if features is None else list(features), val, test, folds, stop, prune,
                   fixed, seed,
                   None if timeout is None else started + timeout)
        names = [study_name(s, m) for s in job.symbols for m in models]
        logger.info("tune: %d studies, %d trials each, %d workers, storage %s",
                    len(names), trials, workers, store)
        sweep(store, names)
        _search(job, workers, trials, progress, prepared,
                None if monitor is None else _Monitor(monitor, store, names))
        sweep(store, names)  # trials of workers that died during this run
        results = []
        for i, (s, m) in enumerate((s, m) for s in job.symbols for m in models):
            t0 = time.time()
            results.append(_finish_study(s, m, prepared[s], job, rootp, min_improvement,
                                         force, stamp))
            results[-1].wall_s = time.time() - t0
            if progress:
                progress("promotion gate", i + 1, len(names), f"{s} {m}")
        summary = TuneSummary(results, metric, spec.direction, store, workers, trials,
                              time.time() - started, stamp, rootp / "results" /
                              f"tune_{stamp}.json", log_path)
        atomic_write_text(summary.summary_path,
                          json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
        logger.info("tune: %d of %d promoted in %.1f s", summary.n_promoted, len(results),
                    summary.wall_s)
        return summary
    finally:
        pkg.removeHandler(handler)
        pkg.setLevel(old_level)
        handler.close()


class _Monitor:
    """Reads study states from the storage for a ``monitor`` callback, at most every ``every`` s."""

    def __init__(self, fn: Callable[[list[StudyStatus]], None], store: str,
                 names: Sequence[str], every: float = 0.5) -> None:
        self.fn, self.store, self.names, self.every = fn, store, list(names), every
        self.storage: Any = None
        self.last = -math.inf

    def __call__(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < self.every:
            return
        if self.storage is None:
            self.storage = open_storage(self.store)
        self.fn(study_status(self.storage, self.names))
        self.last = time.monotonic()


def _search(job: _Job, workers: int, trials: int, progress: Progress | None,
            prepared: Mapping[str, SymbolData], monitor: _Monitor | None = None) -> None:
    total = len(job.symbols) * len(job.models) * trials
    if workers == 1:
        done = [0]

        def on_trial(name: str, _number: int) -> None:
            done[0] += 1
            if progress:
                progress("trials", done[0], total, name)
            if monitor is not None:
                monitor(force=done[0] == total)

        run_worker(job, 0, trials, on_trial, prepared)
        return
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_spawn_worker, args=(job, i, n), daemon=False)
             for i, n in enumerate(_split_trials(trials, workers)) if n > 0]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=1.0 / len(procs))
            if monitor is not None:
                monitor()
        if monitor is not None:
            monitor(force=True)
    except BaseException:
        for p in procs:
            p.terminate()
            p.join()
        raise
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        logger.warning("%d of %d workers exited abnormally (exit codes %s); their RUNNING "
                       "trials are marked FAIL", len(bad), len(procs), bad)
    if progress:
        progress("trials", total, total, f"{len(procs)} workers")


def tune_history(root: str | os.PathLike[str] = ".") -> list[dict[str, Any]]:
    """Every ``results/tune_*.json`` summary under ``root``, oldest first (unreadable skipped)."""
    out = []
    for path in sorted(Path(root).glob("results/tune_*.json")):
        rec = _read_json(path)
        if rec is not None:
            rec["path"] = str(path)
            out.append(rec)
    return out


def load_tune_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Keyword arguments for :func:`tune` from a YAML file (e.g. ``configs/tune.yaml``).

    Raises:
        ConfigError: Unreadable file, not a mapping, or unknown keys (the valid ones are listed).
    """
    import inspect

    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read tune config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of tune options, got {type(raw).__name__}")
    valid = [p for p in inspect.signature(tune).parameters if p not in ("progress", "monitor")]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(f"{path}: unknown tune option(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(valid)}")
    return raw
