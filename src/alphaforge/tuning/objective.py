"""Fit on the past, score on the window: the Optuna objective of one ``(symbol, model)`` study.

A trial's params (the model's ``search_space`` plus the fixed params) build one unfitted
estimator; each validation window fits a ``clone()`` of it on the bars before the window's
early-stopping bars, early-stops on those and is scored on the window, so the scored bars never
choose the number of rounds. Iterative models report their early-stopping loss to Optuna's
pruner every :data:`PRUNE_EVERY` rounds. Sampling models (foundation adapters) draw one bank of
samples per window and rescore it for every trial that differs only in how many samples it
aggregates and how.

What the pruner sees is the models' ``iteration_callback`` value, lower is better: the valid loss,
or ``-rank_ic`` for a model early-stopping on the Rank IC (which a one-symbol study cannot use:
:class:`~alphaforge.tuning.TuneConfig` rejects it).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import optuna

from alphaforge.metrics import get_metric
from alphaforge.models.base import BaseForecaster
from alphaforge.models.foundation.aggregate import score_sample_bank
from alphaforge.registry import get_model
from alphaforge.tuning.storage import OWNER_ATTR
from alphaforge.tuning.windows import SymbolData, Window

__all__ = ["PRUNE_EVERY", "PRUNE_STRIDE", "fit_score", "fit_score_bank", "make_objective"]

PRUNE_EVERY = 25  # report an iterative model's valid score to the pruner every this many rounds
PRUNE_STRIDE = 100_000  # fold k's round i is pruner step k * PRUNE_STRIDE + i


def _windows(d: SymbolData, on: Literal["val", "test"]) -> tuple[Window, ...]:
    return d.folds if on == "val" else (d.test,)


def fit_score(
    estimator: BaseForecaster,
    d: SymbolData,
    metric: str,
    *,
    on: Literal["val", "test"] = "val",
    report: Callable[[int, float], None] | None = None,
) -> float:
    """Fit a clone of ``estimator`` per window of ``d`` and score it: mean over the folds, or
    the test window.

    Each window's model is fitted on the rows before its early-stopping rows, early-stops on
    those, and is scored on the window: the scored rows never choose the number of rounds.

    Args:
        estimator: An unfitted forecaster with the trial's params and seed; it is cloned per
            window and never fitted itself.
        d: The symbol's rows and windows (:func:`~alphaforge.tuning.prepare`).
        metric: A key of :data:`~alphaforge.metrics.METRICS`.
        on: ``"val"``: the mean over the validation folds; ``"test"``: the test window.
        report: ``report(step, score)`` per boosting round / epoch of iterative models, with
            the early-stopping score (valid loss, or ``-rank_ic``; lower is better); fold
            ``k``'s iteration ``i`` is step ``k * PRUNE_STRIDE + i``. May raise to stop.

    Returns:
        The metric; NaN when predictions or the metric are not finite.

    Raises:
        ConfigError: Unknown metric.
    """
    fn = get_metric(metric).fn
    scores = []
    for k, w in enumerate(_windows(d, on)):
        est = estimator.clone()
        if report is not None:
            est.iteration_callback = lambda i, v, k=k: report(k * PRUNE_STRIDE + i, v)
        X, y = d.rows(w.score_start, w.score_end)
        pred = _fit_window(est, d, w).predict(X)
        if not np.isfinite(pred.to_numpy(dtype=np.float64)).all():
            return float("nan")
        score = float(fn(y, pred))
        if not math.isfinite(score):
            return float("nan")
        scores.append(score)
    return float(np.mean(scores))


def fit_score_bank(
    estimator: BaseForecaster,
    d: SymbolData,
    metric: str,
    *,
    on: Literal["val", "test"] = "val",
    cache: dict[Any, Any] | None = None,
) -> float:
    """:func:`fit_score` for sampling models (foundation adapters), from one bank of samples.

    Each window's samples are drawn once at the model's ``bank_size`` and rescored for the
    estimator's ``(num_samples, aggregation)``: estimators that differ only in
    ``cls.bank_params`` share the bank through ``cache`` (keyed by the other params), so one
    sampling pass serves many trials. The first ``n`` samples of a bank equal a run with
    ``num_samples = n``.

    Args:
        estimator: An unfitted sampling forecaster (trial params and seed).
        d: The symbol's rows and windows.
        metric: A key of :data:`~alphaforge.metrics.METRICS`.
        on: ``"val"`` (mean over the folds) or ``"test"``.
        cache: Banks already drawn, shared between the trials of one study in one process.

    Returns:
        The metric; NaN when any window's score is not finite.
    """
    cls, params = type(estimator), estimator.get_params()
    n = int(params.get("num_samples", 1))
    size = cls.bank_size or n
    shared = tuple(sorted((k, repr(v)) for k, v in params.items() if k not in cls.bank_params))
    key = (on, size, shared)
    banks = None if cache is None else cache.get(key)
    if banks is None:
        proto = estimator.clone(num_samples=size) if "num_samples" in params else estimator
        banks = []
        for w in _windows(d, on):
            X, y = d.rows(w.score_start, w.score_end)
            est = _fit_window(proto.clone(), d, w)
            banks.append((est.sample_targets(X, num_samples=size), y))
        if cache is not None:
            cache[key] = banks
    choice = [(n, params["aggregation"])]
    scores = [float(score_sample_bank(b, y, metric, choice)["score"].iloc[0]) for b, y in banks]
    return float(np.mean(scores)) if np.isfinite(scores).all() else float("nan")


def _fit_window(est: BaseForecaster, d: SymbolData, w: Window) -> BaseForecaster:
    """``est`` fitted on the rows before window ``w``'s early-stopping rows, stopped on those."""
    return est.fit(*d.rows(0, w.fit_end), valid=d.rows(w.stop_start, w.stop_end), label=d.label)


def make_objective(
    model: str, d: SymbolData, metric: str, fixed: Mapping[str, Any], seed: int, prune: bool = True
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective of one ``(symbol, model)`` study.

    Each trial records its owner (``host:pid``, for the sweeper), its full params and the
    objective's own seconds (``fit_s``, less the pruner's storage calls) as user attributes.

    Args:
        model: Registry name.
        d: The symbol's rows and windows.
        metric: The validation metric.
        fixed: Params applied over every sampled config.
        seed: ``random_state`` of every fit.
        prune: Report iterative models' early-stopping score (lower is better; negated for a
            study that maximises) to the study's pruner.

    Returns:
        ``objective(trial) -> score``; NaN makes Optuna mark the trial FAIL.
    """
    cls = get_model(model)
    bank_cache: dict[Any, Any] = {}  # per study and process: sample banks of foundation models
    # the pruner reads intermediate values in the study's direction; the scores fall
    sign = -1.0 if get_metric(metric).direction == "maximize" else 1.0

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        params = {**cls.search_space(trial), **fixed}
        trial.set_user_attr("params", params)
        t0 = time.perf_counter()
        prune_s = [0.0]

        def report(step: int, score: float) -> None:
            # every PRUNE_EVERY rounds: a storage write per round would cost more than the round
            if step % PRUNE_EVERY or not math.isfinite(score):
                return
            p0 = time.perf_counter()
            trial.report(sign * score, step)
            pruned = trial.should_prune()
            prune_s[0] += time.perf_counter() - p0
            if pruned:
                raise optuna.TrialPruned(f"valid score {score:.6g} at step {step}")

        try:
            est = cls.from_params(params, random_state=seed)
            if getattr(cls, "bank_params", None):  # foundation adapters: score a sample bank
                score = fit_score_bank(est, d, metric, cache=bank_cache)
            else:
                early = prune and cls.capabilities.early_stopping
                score = fit_score(est, d, metric, report=report if early else None)
        finally:  # benchmarks: the objective's own time, less the pruner's storage calls
            trial.set_user_attr("fit_s", time.perf_counter() - t0 - prune_s[0])
        return score  # NaN makes Optuna mark the trial FAIL (it never becomes the best)

    return objective
