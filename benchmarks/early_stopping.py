"""Cost of ``early_stopping_metric: rank_ic`` per boosting round, against ``loss``.

Run from the repository root:  .venv/bin/python benchmarks/early_stopping.py   (about a minute)

Panel: ``alphaforge.testing.tiny_problem`` with 100 symbols x 1,250 bars and 20 features; the
first 1,000 bars train, the last 250 are the valid window (25,000 rows). Each GBDT runs a fixed
number of rounds (``early_stopping_rounds: None``), so both metrics do the same boosting work;
what differs is the per-round valid evaluation.

What is printed:
- ``RankIC`` alone: milliseconds per call on the valid window's predictions (best of 20);
- LightGBM and XGBoost: rounds per second with ``loss`` and with ``rank_ic`` (best of
  ``--repeat`` fits), and the milliseconds per round the Rank IC adds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alphaforge.models.early_stopping import RankIC
from alphaforge.registry import get_model
from alphaforge.testing import tiny_problem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200, help="boosting rounds per fit")
    ap.add_argument("--repeat", type=int, default=3, help="fits per setting (best is shown)")
    ap.add_argument("--threads", type=int, default=1, help="n_jobs of the boosters")
    args = ap.parse_args()
    X, y = tiny_problem(n_symbols=100, n_bars=1250, n_features=20, seed=0)
    stamps = X.index.get_level_values("timestamp")
    cut = stamps.unique()[1000]
    train, valid = stamps < cut, stamps >= cut
    X_valid, y_valid = X[valid], y[valid]
    keep = y_valid.notna().to_numpy()
    X_valid, y_valid = X_valid[keep], y_valid[keep]
    print(
        f"train {int(train.sum()):,} rows, valid {len(y_valid):,} rows "
        f"({y_valid.index.get_level_values('timestamp').nunique()} dates)"
    )

    score = RankIC(y_valid.index.get_level_values("timestamp"), y_valid.to_numpy())
    pred = np.random.default_rng(0).standard_normal(len(y_valid))
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        score(pred)
        times.append(time.perf_counter() - t0)
    print(f"RankIC call: {1e3 * min(times):.2f} ms")

    for name in ("lightgbm", "xgboost"):
        per_round = {}
        for metric in ("loss", "rank_ic"):
            params = {
                "n_estimators": args.rounds,
                "early_stopping_rounds": None,
                "n_jobs": args.threads,
                "early_stopping_metric": metric,
            }
            best = np.inf
            for _ in range(args.repeat):
                est = get_model(name).from_params(params)
                t0 = time.perf_counter()
                est.fit(X[train], y[train], valid=(X_valid, y_valid))
                best = min(best, time.perf_counter() - t0)
            per_round[metric] = best / args.rounds
            print(
                f"{name:9s} {metric:8s}: {1 / per_round[metric]:7.1f} rounds/s "
                f"({1e3 * per_round[metric]:.2f} ms/round, fit {best:.2f} s)"
            )
        extra = 1e3 * (per_round["rank_ic"] - per_round["loss"])
        print(f"{name:9s} rank_ic adds {extra:.2f} ms/round")


if __name__ == "__main__":
    main()
