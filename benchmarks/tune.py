"""LightGBM tuning throughput with 1 and 2 workers, and Optuna's own share of the time.

Run from the repository root:  .venv/bin/python benchmarks/tune.py [--trials 20] [--bars 2500]

Tunes one synthetic symbol (``--bars`` labelled bars, the full ~116-column feature catalogue,
val 30 / test 20) with LightGBM's real search space, once per worker count, each in a fresh
directory (journal storage for 2 workers, SQLite for 1). Printed per worker count:

- trials/hour: completed trials / (last trial end - first trial start);
- Optuna overhead: 1 - (sum of the objective's fit+score seconds, recorded per trial as the
  ``fit_s`` user attribute) / (that span x workers). It includes sampling, storage writes and
  worker idle time at the ends of the span.
"""

from __future__ import annotations

import argparse
import tempfile

import optuna
from optuna.trial import TrialState

from alphaforge.tune import open_storage, tune


def measure(workers: int, trials: int, data: str) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as root:
        summary = tune(data, "lightgbm", symbols=["S000"], trials=trials, workers=workers,
                       root=root, timeout=None)
        study = optuna.load_study(study_name="S000:lightgbm",
                                  storage=open_storage(summary.storage))
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        span = (max(t.datetime_complete for t in done)
                - min(t.datetime_start for t in done)).total_seconds()
        fit = sum(t.user_attrs.get("fit_s", 0.0) for t in done)
        return len(done) / span * 3600, 1 - fit / (span * workers), len(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--bars", type=int, default=2500)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = f"synthetic:n_symbols=4,n_bars={args.bars},seed=0"
    print(f"LightGBM tuning, 1 symbol x {args.bars} bars, {args.trials} trials per run")
    for workers in (1, 2):
        rate, overhead, n = measure(workers, args.trials, data)
        print(f"workers={workers}: {n} trials, {rate:8.0f} trials/hour, "
              f"Optuna overhead {overhead:6.1%}")


if __name__ == "__main__":
    main()
