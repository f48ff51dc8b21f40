"""Forecast skill on a real daily panel: today's default against the cross-sectional recipe.

Run from the repository root (the shared 100-stock S&P 500 panel by default; any panel with the
same columns works through --data)::

    .venv/bin/python benchmarks/skill.py [--data PANEL] [--out DIR] [--stage select|test|both]

Protocol: nothing is chosen on the test years.

1. ``select``: every variant runs walk-forward with its test windows in the two years before
   the test years (data cut at --select-end); the variant with the highest mean Rank IC there
   is the recipe.
2. ``test``: every variant runs again with test windows covering the test years (from
   --test-start to the end of the data); one table prints them side by side on their common
   test bars: Rank IC, ICIR, Newey-West t, 95% CI, net Sharpe (5 bp), Deflated Sharpe Ratio,
   and the paired Rank IC difference against today's default (LightGBM on raw returns).

Every variant of both stages counts as a configuration tried; the count (plus --tried-before,
for configurations tried in earlier explorations) is written into every run
(``configurations_tried``) so each Deflated Sharpe Ratio is deflated by all of them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from alphaforge.compare import compare_runs
from alphaforge.run import run_experiment

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PANEL = SHARED / "sp500_100_daily_2012_2017.parquet"

# today's default: LightGBM on raw next-bar returns with squared error (configs/sp500.yaml)
RAW_LGB = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 500}
# the recipe's trees: slower learning, more rounds, column subsampling
RECIPE_LGB = {
    "n_estimators": 1000,
    "learning_rate": 0.02,
    "num_leaves": 31,
    "min_child_samples": 200,
    "colsample_bytree": 0.6,
    "early_stopping_rounds": 100,
}


def variants() -> dict[str, dict[str, Any]]:
    """name -> config overrides (label, features, models) of every configuration compared."""
    rank_ic = {**RECIPE_LGB, "early_stopping_metric": "rank_ic"}
    lgb = [{"name": "lightgbm", "params": RECIPE_LGB}]
    return {
        "raw": {"models": [{"name": "lightgbm", "params": RAW_LGB}]},
        "rank": {"label": {"transform": "rank"}, "models": lgb},
        "rank_csrank": {
            "label": {"transform": "rank"},
            "features": {"normalize": "cs_rank"},
            "models": lgb,
        },
        "rank_alpha158_csrank": {
            "label": {"transform": "rank"},
            "features": {"catalogue": "alpha158", "normalize": "cs_rank"},
            "models": lgb,
        },
        "rank_both_csrank": {
            "label": {"transform": "rank"},
            "features": {"catalogue": "both", "normalize": "cs_rank"},
            "models": lgb,
        },
        "rank_both_csrank_icstop": {
            "label": {"transform": "rank"},
            "features": {"catalogue": "both", "normalize": "cs_rank"},
            "models": [{"name": "lightgbm", "params": rank_ic}],
        },
        "gauss_both_robust_icstop": {
            "label": {"transform": "rank_gauss"},
            "features": {"catalogue": "both", "normalize": "robust_zscore"},
            "models": [{"name": "lightgbm", "params": rank_ic}],
        },
        "gauss_both_robust_icstop_s3": {
            "label": {"transform": "rank_gauss"},
            "features": {"catalogue": "both", "normalize": "robust_zscore"},
            "models": [{"name": "lightgbm", "params": rank_ic, "seeds": 3}],
        },
        "gauss_both_robust_icstop_reg": {
            "label": {"transform": "rank_gauss"},
            "features": {"catalogue": "both", "normalize": "robust_zscore"},
            "models": [
                {
                    "name": "lightgbm",
                    "params": {**rank_ic, "num_leaves": 15, "min_child_samples": 1000},
                }
            ],
        },
        "zscore_both_csrank": {
            "label": {"transform": "zscore"},
            "features": {"catalogue": "both", "normalize": "cs_rank"},
            "models": lgb,
        },
    }


def stage_config(
    name: str, over: dict[str, Any], args: argparse.Namespace, stage: str, tried: int
) -> dict[str, Any]:
    """A full experiment config for one variant and stage."""
    if stage == "select":  # test windows: the two years before the test years
        data = {"end": args.select_end}
        split = {"train": 180, "valid": 63, "test": 126, "n_folds": 4, "embargo": 2}
    else:  # test windows from --test-start to the end of the data
        data = {"end": args.test_end}
        split = {
            "train": 504,
            "valid": 63,
            "test": args.test_fold,
            "n_folds": args.test_folds,
            "embargo": 2,
        }
    return {
        "name": f"skill-{stage}-{name}",
        "seed": 0,
        "data": {"source": str(args.data), "repair": True, **data},
        "label": {"kind": "forward_return", "horizon": 1, **over.get("label", {})},
        "features": over.get("features", {}),
        "split": split,
        "models": over["models"],
        "configurations_tried": tried,
        "backtest": {"strategy": "long_short", "quantile": 0.2, "costs_bps": 5.0},
    }


def run_stage(args: argparse.Namespace, stage: str, tried: int) -> dict[str, Path]:
    """Run every variant for one stage; returns variant -> run directory."""
    dirs = {}
    for name, over in variants().items():
        out = args.out / stage / name
        t0 = time.perf_counter()
        if not (out / "metrics.json").is_file() or args.rerun:
            run_experiment(stage_config(name, over, args, stage, tried), out=out, overwrite=True)
        print(f"{stage:6s} {name:28s} {time.perf_counter() - t0:7.1f} s", flush=True)
        dirs[name] = out
    return dirs


def table(dirs: dict[str, Path], split: str) -> pd.DataFrame:
    """Side by side on common bars: the raw run's LightGBM first, then its trailing mean, then
    every variant's LightGBM; significance columns from each run's metrics.json."""
    keys = [f"{dirs['raw'].name}/lightgbm", f"{dirs['raw'].name}/trailing_mean"]
    keys += [f"{d.name}/lightgbm" for name, d in dirs.items() if name != "raw"]
    cmp = compare_runs(list(dirs.values()), split, models=keys)
    rows = []
    for key, row in cmp.iterrows():
        run, model = str(key).split("/")
        metrics = json.loads((dirs[run] / "metrics.json").read_text())
        entry = metrics["models"][model]
        sig = entry.get("significance", {})
        overall = entry[split]["overall"]
        rows.append(
            {
                "model": key,
                "rank_ic": row["rank_ic"],
                "icir": overall.get("rank_icir"),
                "t": row["t"],
                "ci": f"[{row['ci_lo']:+.4f}, {row['ci_hi']:+.4f}]",
                "sharpe_net": sig.get("sharpe") if split == "test" else None,
                "dsr": sig.get("dsr") if split == "test" else None,
                "diff_vs_raw": row.get("diff"),
                "diff_t": row.get("diff_t"),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=PANEL)
    p.add_argument("--out", type=Path, default=Path("runs/skill"))
    p.add_argument("--stage", choices=("select", "test", "both"), default="both")
    p.add_argument("--select-end", default="2015-12-31", help="last bar of the selection stage")
    p.add_argument("--test-end", default="2017-12-05", help="last bar of the test stage")
    p.add_argument("--test-fold", type=int, default=162, help="test bars per fold")
    p.add_argument("--test-folds", type=int, default=3, help="test folds (ending at --test-end)")
    p.add_argument(
        "--tried-before", type=int, default=0, help="configurations tried in earlier explorations"
    )
    p.add_argument("--rerun", action="store_true", help="rerun variants already in --out")
    args = p.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: not found (pass --data PANEL)")
    n = len(variants())
    tried = args.tried_before + 2 * n  # every variant, both stages
    pd.set_option("display.width", 160)
    if args.stage in ("select", "both"):
        sel = table(run_stage(args, "select", tried), "test")
        print(f"\nselection stage (test windows up to {args.select_end}):")
        print(sel.round(4).to_string())
        best = sel.drop(index=[k for k in sel.index if "trailing_mean" in k])["rank_ic"].idxmax()
        print(f"\nrecipe chosen on the selection stage: {best}")
    if args.stage in ("test", "both"):
        out = table(run_stage(args, "test", tried), "test")
        print(
            f"\ntest stage (test windows {args.test_fold} x {args.test_folds} bars to "
            f"{args.test_end}); configurations tried: {tried}"
        )
        print(out.round(4).to_string())


if __name__ == "__main__":
    main()
