"""LightGBM and XGBoost trained on a Dask cluster through the libraries' own Dask interfaces
(``lightgbm.dask``, ``xgboost.dask``), with the in-memory models' parameters.

- :class:`DaskLightGBMForecaster` and :class:`DaskXGBoostForecaster` are the in-memory
  forecasters with another ``_fit``: the same config, the same parameters (their ``_params()``,
  called, not copied), the same predictions, importances and saved files. A saved model is a
  plain ``lightgbm`` / ``xgboost`` model directory that loads anywhere without Dask.
- Training: the training rows go to the cluster as float32 partitions, one per worker, and every
  worker trains on its own rows; the libraries all-reduce the split histograms (LightGBM's
  data-parallel learner, XGBoost's collective). :func:`fit_on_dataset` trains on the rows of a
  partitioned feature dataset read by the workers themselves, for panels the client cannot hold.
- Early stopping: XGBoost's own on the valid loss (its metric is all-reduced across workers).
  LightGBM's Dask interface has no early stopping across workers, and neither library
  aggregates a custom metric (the Rank IC) across workers: there every round is trained and the
  best round is then chosen here on the valid window, by the in-memory rule (the first best
  score; stop after ``early_stopping_rounds`` rounds without a better one). The trees of the
  first k rounds do not depend on later rounds, so the model kept is the one early stopping
  would have kept; the rounds after the stop are wasted work, not a different model.
- Tolerance (``tests/engines/test_dask_trees.py``): with one worker holding the training rows
  the predictions equal the in-memory model's (``rtol`` 1e-9; the same best round; the valid
  loss to ``rtol`` 1e-6, LightGBM scoring float32 labels). With W > 1 workers the libraries
  train a different fit of the same model: bin bounds come from each worker's rows, and
  LightGBM's bagging draws rows per worker. The documented tolerance there: predictions
  correlate >= 0.6 with the in-memory model's and the test Rank IC is within 0.05 of its
  (measured on the test panel: correlation 0.75-0.95). XGBoost's multi-worker fits repeat
  exactly; LightGBM's may not, as ``lightgbm.dask`` ranks the workers in the order the
  scheduler lists them, which varies from run to run: use one worker where a fit must repeat
  bit for bit.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb
from lightgbm.dask import DaskLGBMRegressor
from xgboost import dask as dxgb

from alphaforge.engines.cluster import cluster_errors, current_client
from alphaforge.engines.dask_features import LABEL, MANIFEST
from alphaforge.errors import ConfigError, DataError
from alphaforge.labels import LabelSpec
from alphaforge.models.base import BaseForecaster, Valid, _resolve_seed
from alphaforge.models.early_stopping import stopping_score
from alphaforge.models.trees import LightGBMForecaster, XGBoostForecaster

logger = logging.getLogger(__name__)

__all__ = ["DaskLightGBMForecaster", "DaskXGBoostForecaster", "fit_on_dataset"]

_Y = "__label__"
# lgb.train parameter -> LGBMRegressor argument: the Dask estimator takes the scikit-learn
# names, and a native alias given next to one of them would be ambiguous
_LGB_SKLEARN = {
    "objective": "objective",
    "learning_rate": "learning_rate",
    "num_leaves": "num_leaves",
    "max_depth": "max_depth",
    "min_data_in_leaf": "min_child_samples",
    "min_gain_to_split": "min_split_gain",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "feature_fraction": "colsample_bytree",
    "lambda_l1": "reg_alpha",
    "lambda_l2": "reg_lambda",
    "seed": "random_state",
}
_PER_WORKER = ("num_threads", "nthread", "n_jobs")  # set by the Dask interfaces per worker


def _client() -> Any:
    client = current_client()
    if client is None:
        raise ConfigError(
            "Dask-trained trees need a Dask client: run with engine: dask (the run opens one), "
            "inside alphaforge.engines.cluster.connect(...), or with distributed.Client(...) open"
        )
    return client


def _names(n: int) -> list[str]:
    return [f"f{i}" for i in range(n)]  # LightGBM rejects JSON characters in feature names


def to_cluster(client: Any, X: pd.DataFrame, y: pd.Series) -> tuple[dd.DataFrame, dd.Series]:
    """Rows of ``X`` (float32, columns ``f0..``) and ``y`` as Dask collections held by the
    workers: worker i (in address order) holds rows i, i + W, i + 2W ... of every timestamp
    range, so each worker's rows, from which the libraries take bin bounds, span the window."""
    frame = pd.DataFrame(X.to_numpy(dtype=np.float32), columns=_names(X.shape[1]))
    frame[_Y] = y.to_numpy(dtype=np.float64)
    workers = sorted(client.scheduler_info()["workers"])
    n = max(1, min(len(workers), len(frame) // 2))
    blocks = [
        client.scatter(frame.iloc[i::n], workers=[w], hash=False)
        for i, w in zip(range(n), workers, strict=False)
    ]
    data = dd.from_delayed(blocks, meta=frame.iloc[:0], verify_meta=False)
    return data[_names(X.shape[1])], data[_Y]


# --------------------------------------------------------------------------- choosing the round
def valid_loss(objective: str, y: npt.NDArray[np.float64]) -> Callable[[np.ndarray], float]:
    """The library's default valid metric for a regression objective, as a function of the
    predictions: mean squared error (``regression``, ``reg:squarederror``), mean absolute error
    (``*l1``, ``reg:absoluteerror``), LightGBM's Huber loss (delta 0.9)."""
    if objective in ("regression_l1", "reg:absoluteerror"):
        return lambda p: float(np.mean(np.abs(p - y)))
    if objective == "huber":
        return lambda p: float(np.mean(_huber(p - y, 0.9)))
    return lambda p: float(np.mean((p - y) ** 2))


def _huber(d: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(d)
    return np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))


def choose_round(
    scores: Iterable[float],
    patience: int | None,
    higher_is_better: bool,
    report: Callable[[int, float], None] | None = None,
) -> tuple[int, float | None]:
    """Rounds to keep, by the in-memory early stopping's rule, from each round's valid score.

    Args:
        scores: Valid score after each round, in order (read lazily, up to the stop).
        patience: ``early_stopping_rounds``; ``None``: keep every round.
        higher_is_better: ``True`` for the Rank IC, ``False`` for a loss.
        report: ``iteration_callback``, called per round with a lower-is-better score.

    Returns:
        ``(rounds, score)``: the best round (1-based count) and its score; every round and the
        last score when ``patience`` is ``None``.
    """
    best, best_i, last, i = None, -1, None, -1
    for i, s in enumerate(scores):
        if report is not None:
            report(i, stopping_score(s, higher_is_better))
        last = s
        if best is None or (s > best if higher_is_better else s < best):
            best, best_i = s, i
        elif patience and i - best_i >= patience:
            break
    if patience is None:
        return i + 1, last
    return best_i + 1, best


def _cumulative(per_round: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    total = None
    for p in per_round:
        total = p.astype(np.float64) if total is None else total + p
        yield total


def _plain(model: BaseForecaster, cls: type[BaseForecaster]) -> BaseForecaster:
    """The fitted ``model`` as an instance of the in-memory class ``cls`` (same learned state)."""
    plain = cls(model.config, random_state=model.random_state)
    plain.__dict__.update({k: v for k, v in vars(model).items() if k.endswith("_")})
    return plain


# --------------------------------------------------------------------------- LightGBM
class DaskLightGBMForecaster(LightGBMForecaster):
    """:class:`~alphaforge.models.trees.LightGBMForecaster` trained with ``lightgbm.dask`` on
    the open Dask client (see the module docstring)."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as the plain ``lightgbm`` model it is (loads without Dask)."""
        self._check_is_fitted()
        return _plain(self, LightGBMForecaster).save(path)

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        client = _client()
        with cluster_errors("LightGBM on Dask"):
            self._fit_dask(client, *to_cluster(client, X, y), valid)

    def _fit_dask(self, client: Any, X: dd.DataFrame, y: dd.Series, valid: Valid | None) -> None:
        c = self.config_
        params = {**self._dataset_params(), **self._params()}
        for key in _PER_WORKER:
            params.pop(key, None)
        named = {_LGB_SKLEARN[k]: params.pop(k) for k in list(params) if k in _LGB_SKLEARN}
        model = DaskLGBMRegressor(client=client, n_estimators=c.n_estimators, **named, **params)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as said:
            # n_jobs is the Dask estimator's own default (None): threads are set per worker
            warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored")
            booster = model.fit(X, y).to_local().booster_
        logger.debug("lightgbm.dask: %s", said.getvalue().strip())
        rounds, score = booster.current_iteration(), None
        if valid is not None:
            X_valid = valid[0].to_numpy(dtype=np.float32)
            per_tree = (
                booster.predict(X_valid, start_iteration=i, num_iteration=1) for i in range(rounds)
            )
            rounds, score = self._best_round(_cumulative(per_tree), valid)
        self.booster_ = booster
        self.best_iteration_ = int(rounds)
        self.best_score_ = score
        logger.info("LightGBM on Dask: %d of %d rounds", rounds, c.n_estimators)

    def _best_round(
        self, predictions: Iterable[np.ndarray], valid: Valid
    ) -> tuple[int, float | None]:
        """Rounds to keep and their valid score (loss or Rank IC) from cumulative predictions."""
        c = self.config_
        rank_ic = self._rank_ic(valid)
        y_valid = valid[1].to_numpy(np.float64)
        score = rank_ic if rank_ic is not None else valid_loss(c.objective, y_valid)
        scores = (score(p) for p in predictions)
        patience = c.early_stopping_rounds
        return choose_round(scores, patience, rank_ic is not None, self.iteration_callback)


# --------------------------------------------------------------------------- XGBoost
class DaskXGBoostForecaster(XGBoostForecaster):
    """:class:`~alphaforge.models.trees.XGBoostForecaster` trained with ``xgboost.dask`` on the
    open Dask client (see the module docstring)."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as the plain ``xgboost`` model it is (loads without Dask)."""
        self._check_is_fitted()
        return _plain(self, XGBoostForecaster).save(path)

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        client = _client()
        with cluster_errors("XGBoost on Dask"):
            self._fit_dask(client, *to_cluster(client, X, y), valid)

    def _fit_dask(self, client: Any, X: dd.DataFrame, y: dd.Series, valid: Valid | None) -> None:
        c = self.config_
        params = {k: v for k, v in self._params().items() if k not in _PER_WORKER}
        train = dxgb.DaskQuantileDMatrix(client, X, y, max_bin=c.max_bin)
        stop = c.early_stopping_rounds if valid is not None else None
        native = bool(stop) and self._rank_ic(valid) is None
        evals = []
        if native:  # XGBoost's own early stopping: the valid loss is all-reduced
            X_valid, y_valid = to_cluster(client, *valid)  # type: ignore[misc]
            evals = [(dxgb.DaskQuantileDMatrix(client, X_valid, y_valid, ref=train), "valid")]
        out = dxgb.train(
            client,
            params,
            train,
            num_boost_round=c.n_estimators,
            evals=evals,
            early_stopping_rounds=stop if native else None,
            verbose_eval=False,
        )
        booster: xgb.Booster = out["booster"]
        rounds, score = booster.num_boosted_rounds(), None
        if native:
            rounds, score = booster.best_iteration + 1, float(booster.best_score)
            if self.iteration_callback is not None:
                for i, value in enumerate(next(iter(out["history"]["valid"].values()))):
                    self.iteration_callback(i, float(value))
        elif stop:  # the Rank IC: chosen here
            rounds, score = self._rank_ic_round(booster, valid, rounds)  # type: ignore[arg-type]
        self.booster_ = booster[:rounds]  # predict and save use every tree kept
        self.best_iteration_ = int(rounds)
        self.best_score_ = score
        logger.info("XGBoost on Dask: %d of %d rounds", rounds, c.n_estimators)

    def _rank_ic_round(self, booster: xgb.Booster, valid: Valid, rounds: int) -> tuple[int, float]:
        """Best round by the valid Rank IC, which XGBoost cannot aggregate across workers."""
        X_valid = valid[0].to_numpy(dtype=np.float32)
        rank_ic = self._rank_ic(valid)
        assert rank_ic is not None
        # each round's tree alone (plus the base score): a Rank IC ignores that constant shift
        per_tree = (
            booster.inplace_predict(X_valid, iteration_range=(i, i + 1), predict_type="margin")
            for i in range(rounds)
        )
        scores = (rank_ic(p) for p in _cumulative(per_tree))
        n, best = choose_round(
            scores, self.config_.early_stopping_rounds, True, self.iteration_callback
        )
        return n, float(best) if best is not None else float("nan")


# --------------------------------------------------------------------------- from a dataset
def fit_on_dataset(
    model: DaskLightGBMForecaster | DaskXGBoostForecaster,
    dataset: str | Path,
    *,
    train: tuple[Any, Any],
    valid: tuple[Any, Any] | None = None,
    features: Sequence[str] | None = None,
    client: Any = None,
) -> DaskLightGBMForecaster | DaskXGBoostForecaster:
    """Fit a Dask-trained tree on the rows of a partitioned feature dataset, read by the workers.

    The dataset is one :func:`~alphaforge.engines.dask_features.build_feature_dataset` wrote
    with a ``label``. The training rows never pass through this process; the valid window does
    (to choose the best round), so it must fit in its memory.

    Args:
        model: An unfitted Dask-trained forecaster.
        dataset: The dataset's directory.
        train: ``(first, last)`` timestamps of the training rows, inclusive.
        valid: ``(first, last)`` timestamps of the early-stopping window, or ``None``.
        features: Feature columns to use (default: every feature of the dataset).
        client: A ``distributed.Client`` (default: the open one).

    Returns:
        ``model``, fitted (``predict`` takes in-memory frames as usual).

    Raises:
        DataError: no manifest or no label in the dataset, unknown features, no labelled row.
        ConfigError: no Dask client.
    """
    root = Path(dataset)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"not a feature dataset ({MANIFEST}: {exc})", path=str(root)) from None
    if manifest.get("label") is None:
        raise DataError("the dataset has no label column; build it with a label", path=str(root))
    columns = list(features) if features is not None else list(manifest["columns"])
    unknown = [c for c in columns if c not in manifest["columns"]]
    if unknown:
        raise DataError(f"features {unknown[:10]} are not in the dataset", path=str(root))
    client = client or _client()
    model.config_ = model._resolve_config()
    model.label_ = LabelSpec(**manifest["label"])
    model.seed_ = _resolve_seed(model.random_state)
    model.feature_names_in_ = columns
    model.n_features_in_ = len(columns)
    with cluster_errors(f"{type(model).__name__} on {root}"):
        rows = _window(root, columns, train).dropna(subset=[LABEL])
        rows = client.persist(rows.astype(dict.fromkeys(columns, np.float32)))
        X, y = (
            rows[columns].rename(columns=dict(zip(columns, _names(len(columns)), strict=True))),
            rows[LABEL],
        )
        window = None
        if valid is not None:
            frame = _window(root, columns, valid).dropna(subset=[LABEL]).compute()
            frame = frame.set_index(["timestamp", "symbol"]).sort_index()
            window = (frame[columns], frame[LABEL])
        model._fit_dask(client, X, y, window)
    return model


def _window(root: Path, columns: list[str], span: tuple[Any, Any]) -> dd.DataFrame:
    first, last = (pd.Timestamp(t) for t in span)
    return dd.read_parquet(
        str(root),
        columns=["timestamp", "symbol", *columns, LABEL],
        filters=[("timestamp", ">=", first), ("timestamp", "<=", last)],
    )
