"""Tree ensembles on the feature panel: one row (timestamp, symbol) in, one forecast out.

- LightGBM: leaf-wise histogram GBDT with bagging and feature subsampling, early stopping on the
  validation window (Ke et al., 2017, "LightGBM: A Highly Efficient Gradient Boosting Decision
  Tree", NeurIPS).
- XGBoost: depth-wise ``hist`` GBDT, same knobs under the same names (Chen & Guestrin, 2016,
  "XGBoost: A Scalable Tree Boosting System", KDD).
- Random forest: scikit-learn's bagged CART (Breiman, 2001, "Random Forests", Machine Learning 45).
  sklearn has no pickle-free format, so the fitted trees are packed into flat node arrays
  (``forest.npz``) and every prediction, before and after loading, walks those arrays in numpy.
- Early stopping on the valid loss, or with ``early_stopping_metric="rank_ic"`` on the valid
  window's mean per-timestamp Rank IC, scored every round from the booster's own valid
  predictions (LightGBM ``feval``, XGBoost ``custom_metric``; see
  :mod:`~alphaforge.models.early_stopping`) and maximised.
- Pointwise models: the forecast for row t reads row t's features only, so it looks back exactly
  as far as the features do. NaN features are routed natively (learned default branch).
- Deterministic on CPU: fixed seeds, LightGBM ``deterministic=True, force_row_wise=True``, XGBoost
  ``hist``; predictions are bit-identical across runs and across ``n_jobs`` (tested 1 vs 2).
- Config names follow the scikit-learn wrappers (``n_estimators``, ``subsample``,
  ``colsample_bytree``, ``reg_alpha``, ``reg_lambda``) so YAML reads the same for both GBDTs.
"""

from __future__ import annotations

import io
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
from sklearn.ensemble import RandomForestRegressor

from alphaforge.errors import DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, features_array, require
from alphaforge.models.early_stopping import (
    EARLY_STOPPING_METRICS,
    EarlyStoppingMetric,
    RankIC,
    stopping_score,
)
from alphaforge.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

TREE_CAPS = Capabilities(
    family="tree", supports_valid=True, early_stopping=True, feature_importance=True
)


def _check_gbdt(cfg: Any) -> None:
    require(cfg.n_estimators >= 1, cfg, "n_estimators", "an int >= 1")
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
    n_jobs: int = -1  # threads; -1 all cores. Results do not depend on it

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
            "num_threads": max(c.n_jobs, 0),
            "verbose": -1,
        }

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        names = [f"f{i}" for i in range(self.n_features_in_)]  # LightGBM rejects JSON chars
        train = lgb.Dataset(
            features_array(X),
            label=y.to_numpy(np.float64),
            feature_name=names,
            params={"max_bin": c.max_bin, "verbose": -1},
        )
        params, valid_sets, callbacks, rank_ic_metric = self._params(), [], [], None
        if valid is not None:
            X_valid, y_valid = valid
            valid_sets = [
                lgb.Dataset(
                    features_array(X_valid), label=y_valid.to_numpy(np.float64), reference=train
                )
            ]
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
            features_array(X),
            num_iteration=self.best_iteration_,
            num_threads=max(self.config_.n_jobs, 0),
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
    n_jobs: int = -1  # threads; -1 all cores. Results do not depend on it

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
            "nthread": max(c.n_jobs, 0),
            "verbosity": 0,
        }

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        train = xgb.QuantileDMatrix(
            features_array(X),
            label=y.to_numpy(np.float64),
            max_bin=c.max_bin,
            nthread=max(c.n_jobs, 0),
        )
        params, evals, stop, score = self._params(), [], None, self._rank_ic(valid)
        metric = None if score is None else _XGBRankIC(score)
        if metric is not None:  # the Rank IC replaces the default metric
            params["disable_default_eval_metric"] = 1
        if valid is not None:
            X_valid, y_valid = valid
            evals = [
                (
                    xgb.QuantileDMatrix(
                        features_array(X_valid),
                        label=y_valid.to_numpy(np.float64),
                        ref=train,
                        nthread=max(c.n_jobs, 0),
                    ),
                    "valid",
                )
            ]
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
        return self.booster_.inplace_predict(features_array(X)).astype(np.float64)

    def _feature_importances(self) -> npt.NDArray[np.float64]:
        gain = self.booster_.get_score(importance_type="total_gain")  # {"f3": ...}, unused absent
        return np.array([gain.get(f"f{i}", 0.0) for i in range(self.n_features_in_)])

    def _save_booster(self, file: str) -> None:
        self.booster_.save_model(file)  # already cut to the best rounds in fit

    def _load_booster(self, file: str) -> xgb.Booster:
        booster = xgb.Booster()
        booster.load_model(file)
        booster.set_param({"nthread": max(self.config_.n_jobs, 0)})
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


# ---------------------------------------------------------------------------- random forest
@dataclass(frozen=True)
class RandomForestConfig:
    n_estimators: int = 300
    max_depth: int | None = 12  # None: grow until min_samples_leaf stops it
    min_samples_leaf: int = 100
    max_features: float = 0.5  # fraction of features tried per split
    max_samples: float | None = 0.5  # bootstrap rows per tree as a fraction; None: all rows
    n_jobs: int = -1  # threads for fitting; results do not depend on it

    def __post_init__(self) -> None:
        require(self.n_estimators >= 1, self, "n_estimators", "an int >= 1")
        require(
            self.max_depth is None or self.max_depth >= 1, self, "max_depth", "None or an int >= 1"
        )
        require(self.min_samples_leaf >= 1, self, "min_samples_leaf", "an int >= 1")
        require(0 < self.max_features <= 1, self, "max_features", "in (0, 1]")
        require(
            self.max_samples is None or 0 < self.max_samples <= 1,
            self,
            "max_samples",
            "None or in (0, 1]",
        )


@dataclass(frozen=True, eq=False)
class PackedForest:
    """A fitted forest as flat node arrays: every tree's nodes concatenated, children global.

    ``roots[k]`` is tree k's root; leaves have ``feature == -2`` and ``left == right == -1``.
    A row goes left when ``x <= threshold`` (x cast to float32, as sklearn does), or when x is
    NaN and ``missing_left``. The forecast is the mean over trees of the leaf ``value``.
    """

    roots: npt.NDArray[np.int64]  # (n_trees,)
    left: npt.NDArray[np.int64]  # (n_nodes,)
    right: npt.NDArray[np.int64]
    feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float64]
    missing_left: npt.NDArray[np.bool_]
    value: npt.NDArray[np.float64]
    depth: int  # deepest leaf: the number of traversal steps

    @classmethod
    def from_sklearn(cls, forest: RandomForestRegressor) -> PackedForest:
        trees = [e.tree_ for e in forest.estimators_]
        sizes = np.array([t.node_count for t in trees], dtype=np.int64)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        offset = np.repeat(roots, sizes)  # (n_nodes,) first node of each node's tree

        def cat(attr: str) -> np.ndarray:
            return np.concatenate([getattr(t, attr) for t in trees])

        left, right = cat("children_left").astype(np.int64), cat("children_right").astype(np.int64)
        return cls(
            roots=roots,
            left=np.where(left >= 0, left + offset, -1),
            right=np.where(right >= 0, right + offset, -1),
            feature=cat("feature").astype(np.int64),
            threshold=cat("threshold").astype(np.float64),
            missing_left=cat("missing_go_to_left").astype(bool),
            value=np.concatenate([t.value[:, 0, 0] for t in trees]).astype(np.float64),
            depth=int(max(t.max_depth for t in trees)),
        )

    def predict(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Mean leaf value over trees, ``(n_rows, F) -> (n_rows,)``; equals sklearn bit for bit."""
        X32 = X.astype(np.float32)  # sklearn compares float32 inputs with float64 thresholds
        n_trees, out = len(self.roots), np.empty(len(X32))
        chunk = max(256, 2**20 // n_trees)  # keep the (n_trees, chunk) work arrays ~8 MB
        for start in range(0, len(X32), chunk):
            xb = X32[start : start + chunk]
            rows = np.arange(len(xb))[None, :]
            node = np.repeat(self.roots[:, None], len(xb), axis=1)  # (n_trees, chunk)
            for _ in range(self.depth):  # one level per step, all trees and rows at once
                feat = self.feature[node]
                leaf = feat < 0
                if leaf.all():
                    break
                x = xb[rows, np.where(leaf, 0, feat)]
                go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
                node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
            values = self.value[node]
            total = np.zeros(len(xb))
            for k in range(n_trees):  # tree by tree, like sklearn's accumulation
                total += values[k]
            out[start : start + len(xb)] = total / n_trees
        return out

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = {
            k: getattr(self, k)
            for k in ("roots", "left", "right", "feature", "threshold", "missing_left", "value")
        }
        np.savez_compressed(buf, depth=np.int64(self.depth), **arrays)
        return buf.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> PackedForest:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        depth = int(arrays.pop("depth"))
        forest = cls(depth=depth, **arrays)
        n_nodes = len(forest.value)
        if not all(len(getattr(forest, k)) == n_nodes for k in ("left", "right", "feature")):
            raise DataError("forest arrays have inconsistent lengths", path=str(path))
        return forest


class RandomForestForecaster(BaseForecaster):
    """scikit-learn random forest on the feature panel (see the module header).

    sklearn (>= 1.4) fits with NaN features natively. Learned state: ``forest_``
    (:class:`PackedForest`) and ``importances_`` (impurity decrease, normalised to sum to 1).
    Saved as ``forest.npz`` (plain arrays, loaded with ``allow_pickle=False``).
    """

    Config = RandomForestConfig
    capabilities: ClassVar[Capabilities] = Capabilities(family="tree", feature_importance=True)

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        forest = RandomForestRegressor(
            n_estimators=c.n_estimators,
            max_depth=c.max_depth,
            min_samples_leaf=c.min_samples_leaf,
            max_features=c.max_features,
            max_samples=c.max_samples,
            bootstrap=True,
            n_jobs=c.n_jobs,
            random_state=self.seed_,
        ).fit(features_array(X), y.to_numpy(np.float64))
        self.forest_ = PackedForest.from_sklearn(forest)  # the sklearn object is dropped
        self.importances_ = forest.feature_importances_.astype(np.float64)

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return self.forest_.predict(features_array(X))

    def _feature_importances(self) -> npt.NDArray[np.float64]:
        return self.importances_

    def _save_state(self, path: Path) -> dict[str, Any]:
        atomic_write_bytes(path / "forest.npz", self.forest_.to_bytes())
        return {"importances": self.importances_.tolist()}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.forest_ = PackedForest.from_file(path / "forest.npz")
        self.importances_ = np.asarray(state["importances"], dtype=np.float64)

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "n_estimators": trial.suggest_int("n_estimators", 100, 1000, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 16),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 10, 2000, log=True),
            "max_features": trial.suggest_float("max_features", 0.1, 1.0),
        }

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_estimators": 10, "max_depth": 6, "min_samples_leaf": 5, "n_jobs": 1}
