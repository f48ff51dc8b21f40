"""Tree fits at the speed of their libraries: alphaforge against the plain library call.

Run from the repository root (the shared 100-stock S&P 500 panel by default)::

    .venv/bin/python benchmarks/trees.py [--data PANEL] [--config configs/sp500.yaml]
        [--repeats 5] [--folds 4]

Setting: the walk-forward, label, features and tree params of ``configs/sp500.yaml`` (504
training bars, 63 valid, 126 test, embargo 2; next-bar returns; the default 116 features), the
panel loaded with ``repair=True`` (it has 10 defective bars). Nothing here is chosen on the test
years: the params are the config's, and the forest's LightGBM mapping follows from what each
sklearn parameter means (:mod:`alphaforge.models.forest`, printed below).

Table 1, per model on the first fold's training rows (``random_forest`` on both engines):

- ``plain s``: the library's own call on float32 arrays: ``lgb.train`` / ``xgb.train`` with the
  same params, the same valid rows and the same early stopping, ``RandomForestRegressor.fit``;
  each builds its own ``Dataset`` / ``QuantileDMatrix``. ``same`` says whether its predictions
  equal alphaforge's bit for bit (the same computation).
- ``alphaforge s``: ``model.fit(X_train, y_train, valid=...)`` on the fold's frames: input
  checks, the float32 hand-off and the library's dataset are all inside; ``ratio`` is
  alphaforge / plain. Wall times, every CPU, best of ``--repeats``, the calls taking turns (one
  run for the sklearn forest).
- ``1-thread CPU ratio``: the same two fits with ``n_jobs=1``, process CPU seconds (best of
  ``--repeats``): the hand-off's cost without the noise other processes put into wall times.
- ``shared s``: the same fit as a later model of a run's fold (inside ``shared_fold``: the
  float32 matrix and the library dataset were built by the fold's first model).
- ``rows/s``: training rows per second of the alphaforge fit.
- ``peak MB`` / ``plain MB``: peak memory Python allocates during the alphaforge fit / the
  plain call (``tracemalloc``: numpy and pandas buffers, i.e. the hand-off's copies; the plain
  call gets its float32 arrays ready-made). The libraries' native memory is the same for both.
- ``1 core s`` and ``speed-up``: the alphaforge fit with ``n_jobs=1`` against ``n_jobs=-1``
  (every CPU the process may use: affinity, cgroup quota, ``OMP_NUM_THREADS``).

Table 2, the forest: the sklearn engine against the LightGBM engine on every fold (``--folds``),
fit time and Rank IC / MAE of the pooled test predictions.

The load average is printed before and after: on a machine shared with other processes, OpenMP
libraries slow down sharply when a sibling thread loses its core (XGBoost's many short parallel
regions most), and the ``1 core s`` column then beats all cores; such a machine wants ``n_jobs``
or ``OMP_NUM_THREADS`` set to the cores it really has free.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.ensemble import RandomForestRegressor

from alphaforge.config import load_config
from alphaforge.data import load_panel
from alphaforge.labels import make_label
from alphaforge.metrics import mae, rank_ic
from alphaforge.models.base import BaseForecaster, predict_rows
from alphaforge.models.fold_matrix import fit_rows, float32_features, shared_fold
from alphaforge.models.forest import RF_MAX_BIN, RandomForestForecaster, lightgbm_rf_params
from alphaforge.models.trees import LightGBMForecaster, XGBoostForecaster, lgb_dataset_params
from alphaforge.run import experiment_features
from alphaforge.splits import WalkForward
from alphaforge.utils.cpu import available_cpus, resolve_n_jobs

ROOT = Path(__file__).resolve().parents[1]
PANEL = ROOT.parent / "shared" / "data" / "sp500_100_daily_2012_2017.parquet"
CONFIG = ROOT / "configs" / "sp500.yaml"
MAPPING = (
    "forest mapping (fixed by meaning, not tuned): n_estimators -> rounds of LightGBM rf; "
    "max_depth -> max_depth, num_leaves = 2**max_depth; min_samples_leaf -> min_data_in_leaf; "
    "max_features -> feature_fraction_bynode; max_samples -> bagging_fraction = "
    "1 - exp(-max_samples) (distinct rows of a bootstrap), bagging_freq = 1"
)
TABLE1_FORMATS = {
    "same": "{}",
    "rows/s": "{:,.0f}",
    "peak MB": "{:.1f}",
    "plain MB": "{:.1f}",
    "speed-up": "{:.2f}x",
}


class PeakTraced:
    """Peak of the memory Python allocates (numpy and pandas buffers, via ``tracemalloc``)
    inside the block, in MB: the copies a hand-off makes. The libraries' native memory (binned
    datasets, trees) is not traced; it is the same for both sides of table 1."""

    def __enter__(self) -> PeakTraced:
        tracemalloc.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()


def timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds and process CPU seconds (all threads) of one call, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def best_of(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Per call: ``[fastest wall s, fastest CPU s, last result]`` over ``repeats`` runs. The
    calls take turns, so that every one meets the same load of a shared machine."""
    best = {k: [math.inf, math.inf, None] for k in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            wall, cpu, out = timed(call)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu), out]
    return best


# ------------------------------------------------------------------ the plain library calls
def plain_lightgbm(model: LightGBMForecaster, data: dict[str, Any]) -> Callable[[], Any]:
    params, rounds = model._params(), model.config_.early_stopping_rounds

    def fit() -> lgb.Booster:
        train = lgb.Dataset(data["A_tr"], data["y_tr"], params=model._dataset_params())
        valid = lgb.Dataset(
            data["A_va"], data["y_va"], params=model._dataset_params(), reference=train
        )
        stop = [lgb.early_stopping(rounds, first_metric_only=True, verbose=False)]
        return lgb.train(
            params,
            train,
            model.config_.n_estimators,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=stop if rounds else [],
        )

    return fit


def plain_xgboost(model: XGBoostForecaster, data: dict[str, Any]) -> Callable[[], Any]:
    params, c = model._params(), model.config_

    def fit() -> xgb.Booster:
        threads = params["nthread"]
        train = xgb.QuantileDMatrix(data["A_tr"], data["y_tr"], max_bin=c.max_bin, nthread=threads)
        valid = xgb.QuantileDMatrix(data["A_va"], data["y_va"], ref=train, nthread=threads)
        booster = xgb.train(
            params,
            train,
            c.n_estimators,
            evals=[(valid, "valid")],
            early_stopping_rounds=c.early_stopping_rounds,
            verbose_eval=False,
        )
        return booster[: booster.best_iteration + 1] if c.early_stopping_rounds else booster

    return fit


def plain_forest(model: RandomForestForecaster, data: dict[str, Any]) -> Callable[[], Any]:
    c, threads = model.config_, resolve_n_jobs(model.config_.n_jobs)
    if c.engine == "sklearn":
        forest = RandomForestRegressor(
            n_estimators=c.n_estimators,
            max_depth=c.max_depth,
            min_samples_leaf=c.min_samples_leaf,
            max_features=c.max_features,
            max_samples=c.max_samples,
            n_jobs=threads,
            random_state=model.seed_,
        )
        return lambda: forest.fit(data["A_tr"], data["y_tr"])
    params = lightgbm_rf_params(c, len(data["A_tr"]), model.seed_)

    def fit() -> lgb.Booster:
        train = lgb.Dataset(
            data["A_tr"], data["y_tr"], params=lgb_dataset_params(RF_MAX_BIN, threads)
        )
        return lgb.train(params, train, c.n_estimators)

    return fit


PLAIN = {
    LightGBMForecaster: plain_lightgbm,
    XGBoostForecaster: plain_xgboost,
    RandomForestForecaster: plain_forest,
}


def plain_predict(booster: Any, A: np.ndarray) -> np.ndarray:
    if isinstance(booster, xgb.Booster):
        return booster.inplace_predict(A).astype(np.float64)
    if isinstance(booster, RandomForestRegressor):
        return sum(tree.predict(A) for tree in booster.estimators_) / len(booster.estimators_)
    return booster.predict(A, num_iteration=booster.best_iteration or None)


# ------------------------------------------------------------------ table 1
def compare_fit(
    cls: type[BaseForecaster], params: dict[str, Any], data: dict[str, Any], repeats: int
) -> dict[str, Any]:
    """One row of table 1. ``repeats == 1`` (the slow sklearn forest): one run each, its memory
    traced on the timed alphaforge fit, no ``shared`` and no one-thread plain call."""
    X, y, X_tr, y_tr, valid = data["X"], data["y"], data["X_tr"], data["y_tr_s"], data["valid"]

    def ours(n_jobs: int = -1, seed: int = 0) -> Callable[[], BaseForecaster]:
        model = cls.from_params({**params, "n_jobs": n_jobs}, random_state=seed)
        return lambda: model.clone().fit(X_tr, y_tr, valid=valid)

    model, one = ours()(), ours(n_jobs=1)()  # fitted: their resolved params feed the plain calls
    calls = {"af": ours(), "plain": PLAIN[cls](model, data), "af1": ours(n_jobs=1)}
    with PeakTraced() as plain_mem:
        calls["plain"]()
    if repeats > 1:
        calls["plain1"] = PLAIN[cls](one, data)
        with PeakTraced() as mem:
            calls["af"]()
        with shared_fold(X):
            X_sh, y_sh = fit_rows(X, y, data["train"])
            X_vsh = fit_rows(X, y, data["valid_rows"])
            first = cls.from_params({**params, "n_jobs": -1}, random_state=1)
            first.fit(X_sh, y_sh, valid=X_vsh)  # the fold's first model builds the shared data
            later = cls.from_params({**params, "n_jobs": -1}, random_state=0)  # as "af" is
            calls["shared"] = lambda: later.clone().fit(X_sh, y_sh, valid=X_vsh)
            best = best_of(calls, repeats)
    else:
        with PeakTraced() as mem:
            best = best_of({"af": calls.pop("af")}, 1)
        best |= best_of(calls, 1)
        best["shared"] = best["plain1"] = [math.nan, math.nan, None]
    booster = best["plain"][2]
    same = np.array_equal(model.predict(valid[0]).to_numpy(), plain_predict(booster, data["A_va"]))
    af_s, one_s = best["af"][0], best["af1"][0]
    return {
        "plain s": best["plain"][0],
        "alphaforge s": af_s,
        "ratio": af_s / best["plain"][0],
        "same": "yes" if same else "no",
        "1-thread CPU ratio": best["af1"][1] / best["plain1"][1],
        "shared s": best["shared"][0],
        "rows/s": len(X_tr) / af_s,
        "peak MB": mem.mb,
        "plain MB": plain_mem.mb,
        "1 core s": one_s,
        "speed-up": one_s / af_s,
    }


# ------------------------------------------------------------------ table 2
def forest_comparison(
    params: dict[str, Any], X: pd.DataFrame, y: pd.Series, folds: list[Any]
) -> pd.DataFrame:
    """Per engine: fit seconds over the folds, pooled test Rank IC and MAE, per-fold Rank IC."""
    rows = {}
    for engine in ("sklearn", "lightgbm"):
        fit_s, preds = 0.0, []
        for fold in folds:
            with shared_fold(X):
                model = RandomForestForecaster.from_params({**params, "engine": engine})
                X_tr, y_tr = fit_rows(X, y, fold.rows(X, "train"))
                start = time.perf_counter()
                model.fit(X_tr, y_tr)
                fit_s += time.perf_counter() - start
                preds.append(predict_rows(model, X, fold.rows(X, "test")))
        pred = pd.concat(preds)
        truth = y.reindex(pred.index)
        per_fold = [rank_ic(truth.reindex(p.index), p) for p in preds]
        rows[engine] = {
            "fit s": fit_s,
            "test Rank IC": rank_ic(truth, pred),
            "test MAE": mae(truth, pred),
            "Rank IC per fold": " ".join(f"{v:+.4f}" for v in per_fold),
        }
        print(f"  {engine}: {fit_s:.1f} s over {len(folds)} folds", flush=True)
    table = pd.DataFrame(rows).T
    table.insert(1, "speed-up", table.loc["sklearn", "fit s"] / table["fit s"])
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=PANEL, help="panel file (parquet/csv)")
    ap.add_argument("--config", type=Path, default=CONFIG, help="split, label, model params")
    ap.add_argument("--repeats", type=int, default=5, help="timings: best of this many")
    ap.add_argument("--folds", type=int, default=None, help="folds of table 2 (0: no table 2)")
    ap.add_argument("--models", default=None, help="table 1 rows, comma-separated (default: all)")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (the shared real panel; see README, Data)")
        return 0
    cfg = load_config(args.config)
    panel = load_panel(args.data, repair=True)
    X = experiment_features(panel, cfg)
    y = make_label(panel, cfg.label.kind, cfg.label.horizon, price=cfg.label.price)
    folds = WalkForward(**cfg.split.model_dump(), horizon=cfg.label.horizon).split(panel)
    params = {m.name: dict(m.params) for m in cfg.models}
    train, valid_rows = folds[0].rows(X, "train"), folds[0].rows(X, "valid")
    X_tr, y_tr = fit_rows(X, y, train)
    X_va, y_va = fit_rows(X, y, valid_rows)
    data = {
        "X": X,
        "y": y,
        "train": train,
        "valid_rows": valid_rows,
        "X_tr": X_tr,
        "y_tr_s": y_tr,
        "valid": (X_va, y_va),
        "A_tr": float32_features(X_tr),
        "y_tr": y_tr.to_numpy(np.float64),
        "A_va": float32_features(X_va),
        "y_va": y_va.to_numpy(np.float64),
    }
    print(
        f"{args.data.name}: {len(panel)} bars, {X.shape[1]} features; fold 0: {len(X_tr)} "
        f"training rows, {len(X_va)} valid rows; {available_cpus()} CPUs available "
        f"(lightgbm {lgb.__version__}, xgboost {xgb.__version__}); load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    forest = params["random_forest"]
    cases = {
        "lightgbm": (LightGBMForecaster, params["lightgbm"], args.repeats),
        "xgboost": (XGBoostForecaster, params["xgboost"], args.repeats),
        "random_forest[lightgbm]": (RandomForestForecaster, forest, args.repeats),
        "random_forest[sklearn]": (RandomForestForecaster, {**forest, "engine": "sklearn"}, 1),
    }
    chosen = cases if args.models is None else {k: cases[k] for k in args.models.split(",")}
    table = {}
    for name, (cls, p, repeats) in chosen.items():
        print(f"  {name} ...", flush=True)
        table[name] = compare_fit(cls, p, data, repeats)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\nTable 1: fit on fold 0, alphaforge vs the plain library call")
        frame = pd.DataFrame(table).T
        formats = {k: TABLE1_FORMATS.get(k, "{:.3f}").format for k in frame.columns}
        print(frame.to_string(formatters=formats))
        if args.folds == 0:
            return 0
        print(f"\nTable 2: random_forest {forest}, sklearn vs LightGBM engine")
        print(MAPPING)
        comparison = forest_comparison(forest, X, y, folds[: args.folds])
        print(
            comparison.to_string(
                formatters={
                    "fit s": "{:.1f}".format,
                    "speed-up": "{:.1f}x".format,
                    "test Rank IC": "{:+.5f}".format,
                    "test MAE": "{:.7f}".format,
                }
            )
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
