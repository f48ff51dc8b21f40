"""Gradient-boosted trees on the feature panel: one row (timestamp, symbol) in, one forecast out.

- LightGBM: leaf-wise histogram GBDT with bagging and feature subsampling, early stopping on the
  validation window (Ke et al., 2017, "LightGBM: A Highly Efficient Gradient Boosting Decision
  Tree", NeurIPS).
- XGBoost: depth-wise ``hist`` GBDT, same knobs under the same names (Chen & Guestrin, 2016,
  "XGBoost: A Scalable Tree Boosting System", KDD).
- The random forest (both engines) lives in :mod:`alphaforge.models.forest` and shares the
  LightGBM dataset helpers here.
- Early stopping on the valid loss, or with ``early_stopping_metric="rank_ic"`` on the valid
  window's mean per-timestamp Rank IC, scored every round from the booster's own valid
  predictions (LightGBM ``feval``, XGBoost ``custom_metric``; see
  :mod:`~alphaforge.models.early_stopping`) and maximised.
- Pointwise models: the forecast for row t reads row t's features only, so it looks back exactly
  as far as the features do. NaN features are routed natively (learned default branch).
- The hand-off: features reach the libraries as one float32 array per frame
  (:mod:`~alphaforge.models.fold_matrix`); inside a run's fold every model reuses that array and
  the constructed LightGBM ``Dataset`` / XGBoost ``QuantileDMatrix`` of the same rows, parameters
  and label, valid sets binned with the training set's bins (``reference=`` / ``ref=``).
- Every core: ``n_jobs`` (-1: every CPU the process may use, counting affinity, the cgroup quota
  and ``OMP_NUM_THREADS``; see :mod:`alphaforge.utils.cpu`) is always passed as an explicit
  thread count, never left to OpenMP's default.
- Deterministic on CPU: fixed seeds, LightGBM ``deterministic=True, force_row_wise=True`` and
  bins drawn with a fixed data seed, XGBoost ``hist`` (deterministic on CPU by construction);
  predictions are bit-identical across runs and across ``n_jobs`` (tested 1 vs 2). Not across
  library versions, compilers or CPU instruction sets: the libraries promise no more.
- Config names follow the scikit-learn wrappers (``n_estimators``, ``subsample``,
  ``colsample_bytree``, ``reg_alpha``, ``reg_lambda``) so YAML reads the same for both GBDTs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

from alphaforge.models.base import BaseForecaster, Capabilities, Valid, require
from alphaforge.models.early_stopping import (
    EARLY_STOPPING_METRICS,
    EarlyStoppingMetric,
    RankIC,
    stopping_score,
)
from alphaforge.models.fold_matrix import digest, float32_features, shared
from alphaforge.utils.cpu import resolve_n_jobs

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

TREE_CAPS = Capabilities(
    family="tree", supports_valid=True, early_stopping=True, feature_importance=True
)


def check_n_jobs(cfg: Any) -> None:
    """``cfg.n_jobs`` is a thread count (``k >= 1``) or ``-1`` (every CPU), ``-2`` (all but one)."""
    require(cfg.n_jobs != 0, cfg, "n_jobs", "an int >= 1, or -1 (every available CPU), -2, ...")


def lgb_dataset_params(max_bin: int, n_threads: int) -> dict[str, Any]:
    """LightGBM ``Dataset`` parameters: the binning, identical for every model of a fold.

    Args:
        max_bin: Histogram bins per feature.
        n_threads: Threads for binning (does not change the bins).
    """
    return {
        "max_bin": max_bin,
        # bin bounds come from a row sample above 200k rows: a fixed data seed, not the model's,
        # so that differently seeded models of one fold can share one Dataset
        "data_random_seed": 0,
        "feature_pre_filter": False,  # keep every feature: one Dataset serves any leaf size
        "num_threads": n_threads,
        "verbose": -1,
    }


def lgb_dataset(
    X: pd.DataFrame, y: pd.Series, params: dict[str, Any], reference: lgb.Dataset | None = None
) -> lgb.Dataset:
    """A constructed LightGBM ``Dataset`` of ``X``'s float32 features and label ``y``.

    Inside a :func:`~alphaforge.models.fold_matrix.shared_fold` block, models asking for the same
    rows, binning parameters, label and reference get the same ``Dataset``: binning runs once
    per fold. A valid set is binned with ``reference``'s (the training set's) bins.

    Args:
        X: Features, columns in fit order.
        y: Labels on ``X.index``.
        params: :func:`lgb_dataset_params`.
        reference: The training ``Dataset`` when this is a valid set.
    """
    label = y.to_numpy(np.float64)
    binning = tuple(sorted((k, v) for k, v in params.items() if k != "num_threads"))
    ref = None if reference is None else id(reference)  # a shared object: alive as long as X's

    def build() -> lgb.Dataset:
        names = [f"f{i}" for i in range(X.shape[1])]  # LightGBM rejects JSON characters
        data = lgb.Dataset(
            float32_features(X),
            label=label,
            feature_name=names,
            params=params,
            reference=reference,
            free_raw_data=True,
        )
        return data.construct()

    return shared(X, ("lightgbm.Dataset", binning, digest(label), ref), build)


def _check_gbdt(cfg: Any) -> None:
    require(cfg.n_estimators >= 1, cfg, "n_estimators", "an int >= 1")
    check_n_jobs(cfg)
    require(cfg.learning_rate > 0, cfg, "learning_rate", "> 0")
    require(0 < cfg.subsample <= 1, cfg, "subsample", "in (0, 1]")
    require(0 < cfg.colsample_bytree <= 1, cfg, "colsample_bytree", "in (0, 1]")
    require(cfg.reg_alpha >= 0, cfg, "reg_alpha", ">= 0")
    require(cfg.reg_lambda >= 0, cfg, "reg_lambda", ">= 0")
    rounds = cfg.early_stopping_rounds
    require(rounds is None or rounds >= 1, cfg, "early_stopping_rounds", "None or an int >= 1")
    metrics = ", ".join(map(repr, EARLY_STOPPING_METRICS))
    require(
        cfg.early_stopping_metric in EARLY_STOPPING_METRICS,
        cfg,
        "early_stopping_metric",
        f"one of {metrics}",
    )


def _suggest_gbdt(trial: optuna.Trial) -> dict[str, Any]:
    # shared by LightGBM and XGBoost: rounds are a cap, early stopping picks the count
    return {
        "n_estimators": trial.suggest_int("n_estimators", 200, 3000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.1, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-8, 10.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-8, 10.0, log=True),
    }


_TINY_GBDT = {"n_estimators": 20, "learning_rate": 0.1, "n_jobs": 1}  # test_params of both


class _GBDTForecaster(BaseForecaster):
    """Shared by LightGBM and XGBoost: the booster in its native file, best round in meta.json.

    Subclasses set ``model_file`` and write/read the booster (``_save_booster``,
    ``_load_booster``); ``fit`` sets ``booster_``, ``best_iteration_`` and ``best_score_``.

    ``iteration_callback`` receives each round's early-stopping value as a score where lower is
    better: the valid loss, or ``-rank_ic`` with ``early_stopping_metric="rank_ic"``.
    """

    capabilities: ClassVar[Capabilities] = TREE_CAPS
    model_file: ClassVar[str]

    def _rank_ic(self, valid: Valid | None) -> RankIC | None:
        """The valid window's Rank IC scorer, or None (``loss``, or no valid window).

        Raises:
            ConfigError: ``rank_ic`` and no valid timestamp has two or more symbols.
        """
        if valid is None or self.config_.early_stopping_metric == "loss":
            return None
        X_valid, y_valid = valid
        stamps = X_valid.index.get_level_values("timestamp")
        return RankIC(stamps, y_valid.to_numpy(np.float64), model=type(self).__name__)

    def _save_state(self, path: Path) -> dict[str, Any]:
        self._save_booster(str(path / self.model_file))
        return {"best_iteration": self.best_iteration_, "best_score": self.best_score_}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.booster_ = self._load_booster(str(path / self.model_file))
        self.best_iteration_ = int(state["best_iteration"])
        self.best_score_ = state["best_score"]

    def _save_booster(self, file: str) -> None:
        raise NotImplementedError

    def _load_booster(self, file: str) -> Any:
        raise NotImplementedError


# ---------------------------------------------------------------------------- LightGBM
@dataclass(frozen=True)
class LightGBMConfig:
    n_estimators: int = 500  # boosting rounds; the cap when early stopping
    learning_rate: float = 0.03
    num_leaves: int = 31
    max_depth: int = -1  # -1: unlimited, num_leaves bounds the tree
    min_child_samples: int = 100  # rows per leaf: daily labels are mostly noise
    subsample: float = 0.8  # bagging_fraction, redrawn every round
    colsample_bytree: float = 0.8  # feature_fraction
    reg_alpha: float = 0.0  # L1 on leaf values
    reg_lambda: float = 1.0  # L2 on leaf values
    min_split_gain: float = 0.0
    max_bin: int = 255
    objective: Literal["regression", "huber", "regression_l1"] = "regression"
    early_stopping_rounds: int | None = 50  # on the valid window; None: always n_estimators
    early_stopping_metric: EarlyStoppingMetric = "loss"  # or "rank_ic": valid Rank IC, maximised
    n_jobs: int = -1  # threads; -1 every available CPU, -2 all but one. Results do not depend on it

    def __post_init__(self) -> None:
        _check_gbdt(self)
        require(self.num_leaves >= 2, self, "num_leaves", "an int >= 2")
        require(self.min_child_samples >= 1, self, "min_child_samples", "an int >= 1")


class LightGBMForecaster(_GBDTForecaster):
    """LightGBM regressor on the feature panel (see the module header).

    Learned state: ``booster_`` (``lightgbm.Booster``), ``best_iteration_`` (rounds used by
    ``predict``), ``best_score_`` (valid loss at that round, or its valid Rank IC with
    ``early_stopping_metric="rank_ic"``; ``None`` without ``valid``).
    Saved as ``model.txt`` (LightGBM's text format, best rounds only).
    """

    Config = LightGBMConfig
    model_file = "model.txt"

    def _params(self) -> dict[str, Any]:
        """``lgb.train`` parameters of the resolved config and seed (after ``fit`` resolved
        them): the booster only, the binning is :meth:`_dataset_params`."""
        c = self.config_
        return {
            "objective": c.objective,
            "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves,
            "max_depth": c.max_depth,
            "min_data_in_leaf": c.min_child_samples,
            "min_gain_to_split": c.min_split_gain,
            "bagging_fraction": c.subsample,
            "bagging_freq": 1 if c.subsample < 1 else 0,
            "feature_fraction": c.colsample_bytree,
            "lambda_l1": c.reg_alpha,
            "lambda_l2": c.reg_lambda,
            "max_bin": c.max_bin,
            # bit-identical reruns: fixed seeds, deterministic histograms, row-wise layout
            "seed": self.seed_,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": resolve_n_jobs(c.n_jobs),
            "verbose": -1,
        }

    def _dataset_params(self) -> dict[str, Any]:
        """``lgb.Dataset`` parameters (:func:`lgb_dataset_params` of this config)."""
        return lgb_dataset_params(self.config_.max_bin, resolve_n_jobs(self.config_.n_jobs))

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        train = lgb_dataset(X, y, self._dataset_params())  # binned once per fold, then shared
        params, valid_sets, callbacks, rank_ic_metric = self._params(), [], [], None
        if valid is not None:
            X_valid, y_valid = valid
            valid_sets = [lgb_dataset(X_valid, y_valid, self._dataset_params(), reference=train)]
            score = self._rank_ic(valid)
            if score is not None:
                params["metric"] = "None"  # the Rank IC is the only, hence the first, metric

                def rank_ic_metric(preds: np.ndarray, _: lgb.Dataset) -> tuple[str, float, bool]:
                    return score.name, score(preds), True  # (name, value, higher is better)

            if c.early_stopping_rounds:
                callbacks = [
                    lgb.early_stopping(
                        c.early_stopping_rounds, first_metric_only=True, verbose=False
                    )
                ]
            if self.iteration_callback is not None:
                report = self.iteration_callback

                def on_round(env: Any) -> None:
                    # evaluation_result_list: [(set, metric, value, higher_better), ...]
                    _, _, value, higher = env.evaluation_result_list[0]
                    report(env.iteration, stopping_score(float(value), higher))

                callbacks.append(on_round)
        booster = lgb.train(
            params,
            train,
            num_boost_round=c.n_estimators,
            valid_sets=valid_sets,
            valid_names=["valid"][: len(valid_sets)],
            feval=rank_ic_metric,
            callbacks=callbacks,
        )
        self.booster_ = booster
        # best_iteration is 0 when early stopping did not run
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        scores = booster.best_score.get("valid", {})
        self.best_score_ = float(next(iter(scores.values()))) if scores else None
        logger.info("LightGBM: %d of %d rounds", self.best_iteration_, c.n_estimators)

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return self.booster_.predict(
            float32_features(X),
            num_iteration=self.best_iteration_,
            num_threads=resolve_n_jobs(self.config_.n_jobs),
        )

    def _feature_importances(self) -> npt.NDArray[np.float64]:
        return self.booster_.feature_importance("gain", iteration=self.best_iteration_)

    def _save_booster(self, file: str) -> None:
        self.booster_.save_model(file, num_iteration=self.best_iteration_)  # best rounds only

    def _load_booster(self, file: str) -> lgb.Booster:
        return lgb.Booster(model_file=file)

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            **_suggest_gbdt(trial),
            "num_leaves": trial.suggest_int("num_leaves", 8, 256, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 20, 2000, log=True),
        }

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {**_TINY_GBDT, "num_leaves": 7, "min_child_samples": 10}


# ---------------------------------------------------------------------------- XGBoost
@dataclass(frozen=True)
class XGBoostConfig:
    n_estimators: int = 500  # boosting rounds; the cap when early stopping
    learning_rate: float = 0.03
    max_depth: int = 6
    min_child_weight: float = 100.0  # hessian sum per leaf (= rows for squared error)
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_alpha: float = 0.0
    reg_lambda: float = 1.0
    gamma: float = 0.0  # min split loss reduction
    max_bin: int = 256
    objective: Literal["reg:squarederror", "reg:pseudohubererror", "reg:absoluteerror"] = (
        "reg:squarederror"
    )
    early_stopping_rounds: int | None = 50  # on the valid window; None: always n_estimators
    early_stopping_metric: EarlyStoppingMetric = "loss"  # or "rank_ic": valid Rank IC, maximised
    n_jobs: int = -1  # threads; -1 every available CPU, -2 all but one. Results do not depend on it

    def __post_init__(self) -> None:
        _check_gbdt(self)
        require(self.max_depth >= 1, self, "max_depth", "an int >= 1")
        require(self.min_child_weight >= 0, self, "min_child_weight", ">= 0")


class _XGBRankIC:
    """XGBoost ``custom_metric``: the valid Rank IC of each round, exact values kept in
    ``values`` (XGBoost's ``evals_log`` holds metrics parsed back from 6-decimal text)."""

    def __init__(self, score: RankIC) -> None:
        self.score, self.name = score, score.name
        self.values: list[float] = []

    def __call__(self, predt: np.ndarray, _: Any) -> tuple[str, float]:
        self.values.append(self.score(predt))
        return self.name, self.values[-1]


class _XGBStopOnRankIC(xgb.callback.EarlyStopping):
    """XGBoost's own early stopping, maximising the exact Rank IC values of ``metric``."""

    def __init__(self, rounds: int, metric: _XGBRankIC) -> None:
        super().__init__(rounds=rounds, metric_name=metric.name, data_name="valid", maximize=True)
        self.metric = metric

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        exact = {"valid": {self.metric.name: self.metric.values}}
        return super().after_iteration(model, epoch, exact)


class _XGBReport(xgb.callback.TrainingCallback):
    """Passes each round's valid loss, or ``-rank_ic`` when ``metric`` is given, to a
    forecaster's ``iteration_callback``: lower is better either way."""

    def __init__(self, report: Callable[[int, float], None], metric: _XGBRankIC | None) -> None:
        super().__init__()
        self.report, self.metric = report, metric

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        if self.metric is not None:
            self.report(epoch, stopping_score(self.metric.values[-1], higher_is_better=True))
            return False
        metrics = evals_log.get("valid", {})
        if metrics:
            self.report(epoch, float(next(iter(metrics.values()))[-1]))
        return False  # never stop here; early stopping is xgboost's own callback


class XGBoostForecaster(_GBDTForecaster):
    """XGBoost ``hist`` regressor on the feature panel (see the module header).

    Learned state: ``booster_`` (``xgboost.Booster`` cut to the best round), ``best_iteration_``
    (rounds kept), ``best_score_`` (valid loss, or Rank IC with
    ``early_stopping_metric="rank_ic"``). Saved as ``model.json`` (XGBoost's JSON format).
    """

    Config = XGBoostConfig
    model_file = "model.json"

    def _params(self) -> dict[str, Any]:
        """``xgb.train`` parameters of the resolved config and seed (after ``fit`` resolved
        them)."""
        c = self.config_
        return {
            "objective": c.objective,
            "eta": c.learning_rate,
            "max_depth": c.max_depth,
            "min_child_weight": c.min_child_weight,
            "subsample": c.subsample,
            "colsample_bytree": c.colsample_bytree,
            "alpha": c.reg_alpha,
            "lambda": c.reg_lambda,
            "gamma": c.gamma,
            "max_bin": c.max_bin,
            "tree_method": "hist",
            "seed": self.seed_,
            "nthread": resolve_n_jobs(c.n_jobs),
            "verbosity": 0,
        }

    def _matrix(
        self, X: pd.DataFrame, y: pd.Series, ref: xgb.QuantileDMatrix | None = None
    ) -> xgb.QuantileDMatrix:
        """``X``'s float32 features quantised to ``max_bin`` bins (``ref``'s bins for a valid
        set); shared by the models of a fold asking for the same rows, bins and label."""
        label, c = y.to_numpy(np.float64), self.config_
        key = (
            "xgboost.QuantileDMatrix",
            c.max_bin,
            digest(label),
            None if ref is None else id(ref),
        )

        def build() -> xgb.QuantileDMatrix:
            return xgb.QuantileDMatrix(
                float32_features(X),
                label=label,
                max_bin=c.max_bin,
                ref=ref,
                nthread=resolve_n_jobs(c.n_jobs),
            )

        return shared(X, key, build)

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        train = self._matrix(X, y)  # quantised once per fold, then shared
        params, evals, stop, score = self._params(), [], None, self._rank_ic(valid)
        metric = None if score is None else _XGBRankIC(score)
        if metric is not None:  # the Rank IC replaces the default metric
            params["disable_default_eval_metric"] = 1
        if valid is not None:
            evals = [(self._matrix(*valid, ref=train), "valid")]
            stop = c.early_stopping_rounds
        callbacks: list[xgb.callback.TrainingCallback] = []
        if evals and self.iteration_callback is not None:
            callbacks.append(_XGBReport(self.iteration_callback, metric))
        if metric is not None and stop:
            callbacks.append(_XGBStopOnRankIC(stop, metric))
        booster = xgb.train(
            params,
            train,
            num_boost_round=c.n_estimators,
            evals=evals,
            early_stopping_rounds=stop if metric is None else None,
            verbose_eval=False,
            callbacks=callbacks,
            custom_metric=metric,
        )
        if stop:
            n_rounds = booster.best_iteration + 1
            self.best_score_: float | None = float(booster.best_score)
            booster = booster[:n_rounds]  # keep the best rounds only: predict/save use all trees
        else:
            n_rounds = booster.num_boosted_rounds()
            self.best_score_ = None
        self.booster_ = booster
        self.best_iteration_ = int(n_rounds)
        logger.info("XGBoost: %d of %d rounds", self.best_iteration_, c.n_estimators)

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return self.booster_.inplace_predict(float32_features(X)).astype(np.float64)

    def _feature_importances(self) -> npt.NDArray[np.float64]:
        gain = self.booster_.get_score(importance_type="total_gain")  # {"f3": ...}, unused absent
        return np.array([gain.get(f"f{i}", 0.0) for i in range(self.n_features_in_)])

    def _save_booster(self, file: str) -> None:
        self.booster_.save_model(file)  # already cut to the best rounds in fit

    def _load_booster(self, file: str) -> xgb.Booster:
        booster = xgb.Booster()
        booster.load_model(file)
        booster.set_param({"nthread": resolve_n_jobs(self.config_.n_jobs)})
        return booster

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            **_suggest_gbdt(trial),
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 2000.0, log=True),
        }

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {**_TINY_GBDT, "max_depth": 3, "min_child_weight": 10.0}
