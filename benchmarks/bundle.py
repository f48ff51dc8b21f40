"""Bundle size and wall time of `fit` and `predict` on a real daily panel.

Run from the repository root (the shared 100-stock S&P 500 panel by default)::

    .venv/bin/python benchmarks/bundle.py [--data PANEL] [--out DIR]

Fits LightGBM, an LSTM and the ranking Transformer on all the panel's history (the last 63 bars
early-stop), writes the bundle, then forecasts the bar after the last one, twice (the second
time from a fresh load, as a daily job would). Prints seconds, bundle size on disk per model and
the forecasts' first rows. Network sizes are CPU-friendly; scale them up on a GPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from alphaforge.bundle import fit, load_bundle

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PANEL = SHARED / "sp500_100_daily_2012_2017.parquet"


def config(data: Path) -> dict:
    """LightGBM, LSTM and ranker on all history; 63 bars of early stopping."""
    return {
        "name": "bundle-benchmark",
        "seed": 0,
        "data": {"source": str(data), "repair": True},
        "label": {"kind": "forward_return", "horizon": 1},
        "split": {"train": 252, "valid": 63, "test": 1},
        "models": [
            {"name": "lightgbm", "params": {"n_estimators": 300, "min_child_samples": 500}},
            {
                "name": "lstm",
                "params": {
                    "lookback": 32,
                    "hidden": 32,
                    "max_epochs": 3,
                    "batch_size": 512,
                    "device": "cpu",
                },
            },
            {
                "name": "ranker",
                "params": {
                    "lookback": 16,
                    "d_model": 32,
                    "n_layers": 2,
                    "n_heads": 4,
                    "max_epochs": 2,
                    "device": "cpu",
                },
            },
        ],
    }


def size_mb(path: Path) -> float:
    """Size of every file below ``path``, MB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=PANEL)
    p.add_argument("--out", type=Path, default=Path("runs/bundle-benchmark"))
    args = p.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: not found (pass --data PANEL)")
    t0 = time.perf_counter()
    bundle = fit(config(args.data))
    t_fit = time.perf_counter() - t0
    bundle.save(args.out, overwrite=True)
    t1 = time.perf_counter()
    first = bundle.predict(args.data)
    t_pred = time.perf_counter() - t1
    t2 = time.perf_counter()
    again = load_bundle(args.out).predict(args.data)
    t_cold = time.perf_counter() - t2
    assert again.equals(first), "a loaded bundle must forecast what the fitted one did"
    print(f"fit {t_fit:.1f} s; predict {t_pred:.2f} s; load + predict {t_cold:.2f} s")
    print(f"bundle {size_mb(args.out):.2f} MB:")
    for name in bundle.models:
        print(f"  {name:10s} {size_mb(args.out / 'models' / name):8.2f} MB")
    print(first.groupby("model").head(3).to_string(index=False))


if __name__ == "__main__":
    main()
