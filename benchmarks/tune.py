"""LightGBM tuning throughput with 1 and 2 workers, and Optuna's own share of the time.

Run from the repository root:  .venv/bin/python benchmarks/tune.py [--trials 40] [--rows 100000]

Data: one synthetic symbol with ``--rows`` labelled bars and the first 95 non-cross-sectional
features of the catalogue; validation is 3 walk-forward folds of ``--val`` bars, each fitted on
all earlier bars with early stopping on the ``--val`` bars before it (so one trial is 3 LightGBM
fits with early stopping), plus a held-out test window. LightGBM's real search space; the median
pruner on. Each worker count runs in a fresh directory (SQLite for 1 worker, the journal file
for 2), and each worker uses ``cores // workers`` threads. Printed per worker count:

- trials/hour: finished trials (complete + pruned) / (last trial end - first trial start);
- Optuna overhead: 1 - (sum of the objective's own seconds, recorded per trial as the ``fit_s``
  user attribute: data slicing, fits, predictions and metric, less the pruner's storage calls)
  / (that span x workers). It includes sampling, storage writes, pruning checks and worker idle
  time at the ends of the span.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import optuna
from optuna.trial import TrialState

from alphaforge.features import feature_names
from alphaforge.tuning import open_storage, tune


def measure(
    workers: int, trials: int, data: str, features: list[str], val: int
) -> tuple[float, float, int, int, float]:
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        summary = tune(
            data=data,
            model="lightgbm",
            symbols=["S000"],
            trials=trials,
            workers=workers,
            root=root,
            features=features,
            val=val,
            test=val,
            folds=3,
            stop=val,
        )
        wall = time.perf_counter() - t0
        study = optuna.load_study(study_name="S000:lightgbm", storage=open_storage(summary.storage))
        done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        span = (
            max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
        ).total_seconds()
        fit = sum(t.user_attrs.get("fit_s", 0.0) for t in done)
        pruned = sum(t.state == TrialState.PRUNED for t in done)
        return len(done) / span * 3600, 1 - fit / (span * workers), len(done), pruned, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--val", type=int, default=2_000)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = feature_names(cross_section=False)
    k = next(k for k in range(len(base), 0, -1) if len(feature_names(base[:k])) <= 95)
    features = base[:k]  # the first base features whose columns (with cross-sectional ones) <= 95
    # tune S000 of 2 symbols (the generator needs 2) over about --rows labelled bars
    data = f"synthetic:n_symbols=2,n_bars={args.rows},seed=0,start=1700-01-04"  # business days
    print(
        f"LightGBM tuning: ~{args.rows} rows x {len(feature_names(features))} features, "
        f"3 folds of "
        f"{args.val} bars, {args.trials} trials per run, {os.cpu_count()} cores"
    )
    for workers in (1, 2):
        rate, overhead, n, pruned, wall = measure(workers, args.trials, data, features, args.val)
        print(
            f"workers={workers}: {n} trials ({pruned} pruned) in {wall:.0f} s, "
            f"{rate:6.0f} trials/hour, Optuna overhead {overhead:6.1%}"
        )


if __name__ == "__main__":
    main()
