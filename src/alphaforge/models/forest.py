"""Random forest on the feature panel: bagged regression trees, averaged (Breiman, 2001, "Random
Forests", Machine Learning 45), on one of two engines (``engine`` in the config).

- ``engine: lightgbm`` (default): LightGBM's ``rf`` boosting. Every tree is grown on its own row
  sample over the same 255-bin feature histograms as the GBDT, threads over rows and features on
  every available core; more than an order of magnitude faster than scikit-learn on a daily
  panel (``benchmarks/trees.py``). Saved as ``model.txt``, LightGBM's text format.
- ``engine: sklearn``: scikit-learn's exact CART (thresholds between sorted feature values,
  bootstrap rows), for exactly its semantics. sklearn has no pickle-free format, so the fitted
  trees are packed into flat node arrays (``forest.npz``) and every prediction, before and after
  loading, walks those arrays in numpy; forests saved before the LightGBM engine existed load as
  this engine.
- The config maps onto LightGBM by what each sklearn parameter means (fixed, never tuned):
  ``n_estimators`` -> rounds (``rf`` averages the trees); ``max_depth`` -> ``max_depth`` with
  ``num_leaves = 2**max_depth`` (best-first growth with that cap is the same depth-bounded tree),
  capped at the leaves ``min_samples_leaf`` allows (``n_rows // min_samples_leaf``) and
  LightGBM's 131072; ``min_samples_leaf`` -> ``min_data_in_leaf`` (sklearn counts a leaf's
  distinct bootstrap rows, LightGBM its bagged rows: the same count); ``max_features`` ->
  ``feature_fraction_bynode`` (a new feature draw at every node, as sklearn draws);
  ``max_samples`` -> ``bagging_fraction = 1 - exp(-max_samples)``, ``bagging_freq = 1``: a
  bootstrap of ``max_samples * n`` rows holds ``(1 - exp(-max_samples)) * n`` distinct rows in
  expectation, and LightGBM samples without replacement, so each tree sees as many distinct rows
  as sklearn's (``None``, a bootstrap of ``n`` rows: 0.632). Leaves hold their rows' mean label
  (squared error, no leaf penalty), as CART's do.
- Pointwise: row t's forecast reads row t's features only. NaN features are routed natively.
- Deterministic on CPU: fixed seeds; LightGBM ``deterministic=True, force_row_wise=True``;
  sklearn's trees are grown from per-tree seeds and summed in tree order. Predictions are
  bit-identical across runs and across ``n_jobs``.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from alphaforge.errors import DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, require
from alphaforge.models.fold_matrix import float32_features
from alphaforge.models.trees import check_n_jobs, lgb_dataset, lgb_dataset_params
from alphaforge.utils.cpu import resolve_n_jobs
from alphaforge.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    import optuna

ENGINES: tuple[str, ...] = ("lightgbm", "sklearn")
MAX_LEAVES = 131072  # LightGBM's largest num_leaves
HISTOGRAM_POOL_MB = 1024.0  # LightGBM's per-leaf histogram cache: bounded for very deep trees
RF_MAX_BIN = 255  # LightGBM's default, the GBDT's too: one Dataset serves both in a fold
MODEL_FILE = "model.txt"
FOREST_FILE = "forest.npz"


@dataclass(frozen=True)
class RandomForestConfig:
    n_estimators: int = 300
    max_depth: int | None = 12  # None: grow until min_samples_leaf stops it
    min_samples_leaf: int = 100
    max_features: float = 0.5  # fraction of features tried per split
    max_samples: float | None = 0.5  # bootstrap rows per tree as a fraction; None: all rows
    engine: Literal["lightgbm", "sklearn"] = "lightgbm"  # sklearn: exact CART, far slower
    n_jobs: int = -1  # threads; -1 every available CPU, -2 all but one. Results do not depend on it

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
        require(self.engine in ENGINES, self, "engine", f"one of {', '.join(map(repr, ENGINES))}")
        check_n_jobs(self)


def lightgbm_rf_params(config: RandomForestConfig, n_rows: int, seed: int) -> dict[str, Any]:
    """``lgb.train`` parameters of a LightGBM ``rf`` booster for ``config`` (see the module
    header for the mapping).

    Args:
        config: The forest's config.
        n_rows: Training rows (bounds ``num_leaves``; never changes the grown trees).
        seed: The resolved seed.

    Returns:
        Parameters for ``lgb.train(params, dataset, num_boost_round=config.n_estimators)``.
    """
    c = config
    by_depth = MAX_LEAVES if c.max_depth is None else 2 ** min(c.max_depth, 17)
    by_leaf_size = max(2, n_rows // c.min_samples_leaf)  # no tree can have more leaves
    return {
        "boosting": "rf",
        "objective": "regression",  # leaf value: the mean label of its rows
        "num_leaves": min(by_depth, by_leaf_size, MAX_LEAVES),
        "max_depth": -1 if c.max_depth is None else c.max_depth,
        "min_data_in_leaf": c.min_samples_leaf,
        "min_sum_hessian_in_leaf": 0.0,
        "lambda_l2": 0.0,
        "bagging_fraction": 1.0 - math.exp(-(c.max_samples or 1.0)),  # distinct bootstrap rows
        "bagging_freq": 1,  # a new row sample for every tree
        "feature_fraction_bynode": c.max_features,
        "max_bin": RF_MAX_BIN,
        "histogram_pool_size": HISTOGRAM_POOL_MB,
        # bit-identical reruns: fixed seeds, deterministic histograms, row-wise layout
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": resolve_n_jobs(c.n_jobs),
        "verbose": -1,
    }


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

    def predict(self, X: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Mean leaf value over trees, ``(n_rows, F) -> (n_rows,)``; equals sklearn bit for bit."""
        X32 = np.asarray(X, dtype=np.float32)  # sklearn compares float32 x to float64 thresholds
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
    """Random forest on the feature panel, on LightGBM or scikit-learn (see the module header).

    Learned state: ``booster_`` (``lightgbm.Booster`` in ``rf`` mode; ``engine: lightgbm``) or
    ``forest_`` (:class:`PackedForest`; ``engine: sklearn``), and ``importances_`` (split gain,
    or sklearn's impurity decrease, normalised to sum to 1). Saved as ``model.txt`` or
    ``forest.npz`` (plain arrays, loaded with ``allow_pickle=False``) beside ``meta.json``.
    """

    Config = RandomForestConfig
    capabilities: ClassVar[Capabilities] = Capabilities(family="tree", feature_importance=True)

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        if c.engine == "sklearn":
            forest = RandomForestRegressor(
                n_estimators=c.n_estimators,
                max_depth=c.max_depth,
                min_samples_leaf=c.min_samples_leaf,
                max_features=c.max_features,
                max_samples=c.max_samples,
                bootstrap=True,
                n_jobs=resolve_n_jobs(c.n_jobs),
                random_state=self.seed_,
            )
            A = float32_features(X)  # sklearn's own dtype: it makes no copy of its own
            if not A.flags.writeable:  # a fold's shared matrix; sklearn's checks want writable
                A = A.copy()
            forest.fit(A, y.to_numpy(np.float64))
            self.forest_ = PackedForest.from_sklearn(forest)  # the sklearn object is dropped
            self.importances_ = forest.feature_importances_.astype(np.float64)
            return
        threads = resolve_n_jobs(c.n_jobs)
        train = lgb_dataset(X, y, lgb_dataset_params(RF_MAX_BIN, threads))  # shared in a fold
        params = lightgbm_rf_params(c, len(X), self.seed_)
        self.booster_ = lgb.train(params, train, num_boost_round=c.n_estimators)
        self.importances_ = _normalised(self.booster_.feature_importance("gain"))

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        if self.config_.engine == "sklearn":
            return self.forest_.predict(float32_features(X))
        threads = resolve_n_jobs(self.config_.n_jobs)
        return self.booster_.predict(float32_features(X), num_threads=threads)

    def _feature_importances(self) -> npt.NDArray[np.float64]:
        return self.importances_

    def _save_state(self, path: Path) -> dict[str, Any]:
        if self.config_.engine == "sklearn":
            atomic_write_bytes(path / FOREST_FILE, self.forest_.to_bytes())
        else:
            self.booster_.save_model(str(path / MODEL_FILE))
        return {"engine": self.config_.engine, "importances": self.importances_.tolist()}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        # models saved before the LightGBM engine existed have no "engine": they are sklearn's
        engine = state.get("engine", "sklearn")
        if engine != self.config_.engine:
            self.config = self.config_ = dataclasses.replace(self.config_, engine=engine)
        if engine == "sklearn":
            self.forest_ = PackedForest.from_file(path / FOREST_FILE)
        else:
            self.booster_ = lgb.Booster(model_file=str(path / MODEL_FILE))
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


def _normalised(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    total = float(values.sum())
    return values / total if total > 0 else np.zeros_like(values, dtype=np.float64)
