"""Speed, memory and out-of-sample ranking quality of the ranking transformer (``ranker``).

Run from the repository root:
  .venv/bin/python benchmarks/ranker.py                      (speed; CPU defaults < 2 minutes)
  .venv/bin/python benchmarks/ranker.py --data ../shared/data/sp500_100_daily_2012_2017.parquet \
      --symbols 30 --bars 700                                (evaluation on a slice)

Speed mode (default): a balanced random panel of ``--symbols`` x ``--bars`` rows with
``--features`` float features (first 20 bars NaN, like feature warm-up) and a random label;
one ``fit`` per sequence length. Printed per run: parameters, steady-state epoch time (median of
the epochs after the first), training samples/s (one sample = one (date, asset) window; a step
holds ``--batch-size`` dates of all assets), compile and warm-up time (first epoch minus the
steady one), time outside the epochs (layout, targets), peak memory (CUDA
``torch.cuda.max_memory_allocated`` during ``fit``, else the process's ru_maxrss) and, on a GPU
of known peak, the model FLOPs utilisation::

    MFU = 3 * RankerNet.flops_per_window(T) * samples/s / peak FLOP/s

(forward FLOPs of one T-bar window: input and Time2Vec projections, ``n_layers`` x (QKV and
output projections 8 T D^2, MLP 4 f T D^2, attention 4 T^2 D), the L lag heads; backward ~ 2 x
forward; padding windows not counted; peak: dense bf16, :func:`alphaforge.utils.device.
peak_flops`). CUDA defaults: d_model 192, 4 layers, 6 heads, seq_len 128/192/256, 32 dates per
step, bf16, eager and ``compile="default"`` (``--no-compile`` skips it, ``--compile MODE`` picks
another mode), 3 epochs; CPU defaults are small (d_model 64, 2 layers, seq_len 16/32/64, fp32,
8 dates per step).

Evaluation mode (``--data PATH``): ``load_panel(PATH, repair=True)``, optionally sliced to the
first ``--symbols`` symbols and last ``--bars`` bars; ``build_features`` (``--feature-names``,
with the cross-sectional stage); label ``forward_return`` h=1; ``WalkForward`` folds
(``--train/--valid/--test/--folds``). Per fold, LightGBM and the ranker are fitted on the same
features (valid window for early stopping) and predict the test window. Printed over all test
rows: Rank IC, IC and ICIR for every lag/horizon head of the ranker against the realised
cumulative return it targets (:func:`alphaforge.models.ranker.horizon_targets` on the full
label), LightGBM's one score against the same targets, and on the one-bar label top-5/top-10
hit rate and quintile spread, both models.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import pandas as pd
import torch

from alphaforge.data import load_panel
from alphaforge.features import build_features
from alphaforge.labels import make_label
from alphaforge.metrics import ic, icir, quantile_spread, rank_ic, top_k_hit_rate
from alphaforge.models.ranker import RankingTransformerForecaster, horizon_targets
from alphaforge.registry import get_model
from alphaforge.splits import WalkForward
from alphaforge.utils import device as dev
from alphaforge.utils.device import resolve_device

MIB = 1024**2
FEATURE_NAMES = "ret_1,ret_5,ret_20,rv_20,rsi_14,volume_z_20,mom_12_1,sma_dist_20,dist_high_60"


# ---------------------------------------------------------------------------- speed
def random_panel(
    n_symbols: int, n_bars: int, n_features: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2015-01-02", periods=n_bars), [f"S{i:04d}" for i in range(n_symbols)]],
        names=["timestamp", "symbol"],
    )
    values = rng.standard_normal((n_bars, n_symbols, n_features))
    values[:20] = np.nan  # warm-up
    X = pd.DataFrame(
        values.reshape(-1, n_features),
        index=index,
        columns=[f"f{k:02d}" for k in range(n_features)],
    )
    return X, pd.Series(rng.standard_normal(len(X)) * 0.01, index=index, name="y")


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return dev.peak_memory_mib(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench_speed(args: argparse.Namespace, device: torch.device) -> None:
    cuda = device.type == "cuda"
    seq_lens = [
        int(s) for s in (args.seq_lens or ("128,192,256" if cuda else "16,32,64")).split(",")
    ]
    d_model = args.d_model or (192 if cuda else 64)
    n_layers = args.layers or (4 if cuda else 2)
    n_heads = max(1, d_model // 32)
    runs: list[tuple[str, str | bool]] = [("bf16" if cuda else "fp32", False)]
    if cuda and not args.no_compile:
        runs.append(("bf16", args.compile))
    X, y = random_panel(args.symbols, args.bars, args.features)
    print(
        f"device {device} ({torch.get_num_threads()} CPU threads); panel {args.symbols} "
        f"symbols x {args.bars} bars x {args.features} features; d_model {d_model}, "
        f"{n_layers} layers, {n_heads} heads; {args.lags} lags x {args.horizons} horizons; "
        f"{args.batch_size} dates per step"
    )
    header = (
        f"{'seq_len':>7} {'precision':>9} {'compile':>15} {'params':>9} {'epoch_s':>8} "
        f"{'samples/s':>10} {'MFU_%':>6} {'compile_s':>9} {'prep_s':>7} {'peak_MiB':>9}"
    )
    print(header)
    for seq_len in seq_lens:
        for precision, compile_ in runs:
            config = {
                "lookback": seq_len,
                "max_len": max(512, seq_len),
                "d_model": d_model,
                "n_heads": n_heads,
                "n_layers": n_layers,
                "n_lags": args.lags,
                "horizons": args.horizons,
                "max_epochs": args.epochs,
                "batch_size": args.batch_size,
                "device": str(device),
                "precision": precision,
                "compile": compile_,
            }
            if cuda:
                torch.cuda.empty_cache()
            dev.reset_peak_memory(device)  # initialises CUDA first: no "Invalid device argument"
            start = time.perf_counter()
            model = RankingTransformerForecaster.from_params(config, random_state=0).fit(X, y)
            dev.synchronize(device)
            total = time.perf_counter() - start
            epochs = [float(t) for t in model.history_["epoch_time_s"]]
            epoch_s = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
            n_samples = int(y.notna().sum())  # windows with a target, roughly
            params = sum(p.numel() for p in model.net_.parameters())
            peak = dev.peak_flops(device, torch.bfloat16 if precision == "bf16" else None)
            flops = 3 * model.net_.flops_per_window(seq_len) * n_samples / epoch_s
            mfu = f"{100 * flops / peak:>6.1f}" if peak else f"{'n/a':>6}"
            print(
                f"{seq_len:>7} {precision:>9} {compile_ or 'none'!s:>15} {params:>9,} "
                f"{epoch_s:>8.2f} {n_samples / epoch_s:>10,.0f} {mfu} "
                f"{max(0.0, epochs[0] - epoch_s):>9.2f} {total - sum(epochs):>7.2f} "
                f"{peak_mib(device):>9,.0f}"
            )


# ---------------------------------------------------------------------------- evaluation
def load_slice(args: argparse.Namespace) -> pd.DataFrame:
    panel = load_panel(args.data, repair=True)
    stamps = panel.index.get_level_values("timestamp")
    symbols = panel.index.get_level_values("symbol")
    keep = np.ones(len(panel), dtype=bool)
    if args.symbols:
        keep &= symbols.isin(sorted(symbols.unique())[: args.symbols])
    if args.bars:
        keep &= stamps >= np.sort(stamps.unique())[-args.bars]
    return panel[keep]


def evaluate(args: argparse.Namespace, device: torch.device) -> None:
    panel = load_slice(args)
    X = build_features(panel, names=args.feature_names.split(","), dtype=np.float32)
    y = make_label(panel, "forward_return", 1)
    L, H = args.lags, args.horizons
    realised = horizon_targets(y, L, H)  # (R, L, H): evaluation may read the future
    folds = WalkForward(
        train=args.train, valid=args.valid, test=args.test, horizon=1, n_folds=args.folds
    ).split(X)
    print(
        f"panel {panel.index.get_level_values('symbol').nunique()} symbols x "
        f"{panel.index.get_level_values('timestamp').nunique()} bars, {X.shape[1]} features, "
        f"{len(folds)} folds; device {device}"
    )
    ranker_params = {
        "lookback": args.lookback,
        "d_model": args.d_model or 64,
        "n_heads": max(1, (args.d_model or 64) // 32),
        "n_layers": args.layers or 2,
        "n_lags": L,
        "horizons": H,
        "max_epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "patience": 3,
        "device": str(device),
    }
    lgb_params = {
        "n_estimators": 300,
        "num_leaves": 15,
        "min_child_samples": 200,
        "learning_rate": 0.03,
    }
    ranker_parts, lgb_parts = [], []
    for fold in folds:
        tr, va, te = (fold.rows(X, part) for part in ("train", "valid", "test"))
        start = time.perf_counter()
        lgb = get_model("lightgbm").from_params(lgb_params, random_state=0)
        lgb.fit(X[tr], y[tr], valid=(X[va], y[va]))
        lgb_parts.append(lgb.predict(X[te]))
        mid = time.perf_counter()
        model = RankingTransformerForecaster.from_params(ranker_params, random_state=0)
        model.fit(X[tr], y[tr], valid=(X[va], y[va]))
        history = X[X.index.get_level_values("timestamp") <= fold.test[-1]]  # windows' past
        heads = model.predict_all(history)
        ranker_parts.append(heads[fold.rows(heads, "test")])
        print(
            f"fold {fold.index}: lightgbm {mid - start:.1f}s, ranker "
            f"{time.perf_counter() - mid:.1f}s ({len(model.history_)} epochs), gate sparsity "
            f"{model.gate_sparsity():.2f}"
        )
    ranker_pred, lgb_pred = pd.concat(ranker_parts), pd.concat(lgb_parts)
    rows = X.index.get_indexer(ranker_pred.index)
    print(
        f"\n{'head':>10} {'ranker_rank_ic':>15} {'ranker_ic':>10} {'ranker_icir':>12} "
        f"{'lgb_rank_ic':>12} {'lgb_ic':>8} {'lgb_icir':>9}"
    )
    for lag in range(1, L + 1):
        for h in range(1, H + 1):
            name = f"lag{lag}_h{h}"
            target = pd.Series(realised[rows, lag - 1, h - 1], index=ranker_pred.index)
            r, g = ranker_pred[name], lgb_pred.reindex(ranker_pred.index)
            print(
                f"{name:>10} {rank_ic(target, r):>15.4f} {ic(target, r):>10.4f} "
                f"{icir(target, r):>12.4f} {rank_ic(target, g):>12.4f} {ic(target, g):>8.4f} "
                f"{icir(target, g):>9.4f}"
            )
    y_test = y.reindex(ranker_pred.index)
    print(f"\n{'one-bar label':>14} {'top5_hit':>9} {'top10_hit':>10} {'q5_spread':>10}")
    for name, pred in (
        ("ranker", ranker_pred["lag1_h1"]),
        ("lightgbm", lgb_pred.reindex(ranker_pred.index)),
    ):
        hits = [top_k_hit_rate(y_test, pred, k) for k in (5, 10)]
        print(
            f"{name:>14} {hits[0]:>9.4f} {hits[1]:>10.4f} {quantile_spread(y_test, pred, 5):>10.5f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="panel file: evaluation mode")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--symbols",
        type=int,
        default=None,
        help="speed: panel symbols (default 100 CUDA / 50 CPU); data: first N",
    )
    parser.add_argument(
        "--bars",
        type=int,
        default=None,
        help="speed: bars per symbol (default 300 / 150); data: last N bars",
    )
    parser.add_argument("--features", type=int, default=95, help="speed: feature count")
    parser.add_argument("--seq-lens", default=None, help="speed: comma-separated lookbacks")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--lags", type=int, default=4)
    parser.add_argument(
        "--horizons",
        type=int,
        default=None,
        help="horizons per lag (default 20 speed / 5 evaluation)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default 2 speed / 10 eval")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="dates per step (default 32 CUDA / 8 CPU)"
    )
    parser.add_argument("--no-compile", action="store_true", help="CUDA: skip torch.compile")
    parser.add_argument(
        "--compile",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune"],
        help="CUDA: compile mode of the compiled run",
    )
    parser.add_argument("--feature-names", default=FEATURE_NAMES, help="evaluation features")
    parser.add_argument("--lookback", type=int, default=32, help="evaluation lookback")
    parser.add_argument("--lr", type=float, default=1e-3, help="evaluation learning rate")
    parser.add_argument("--train", type=int, default=500, help="evaluation train bars")
    parser.add_argument("--valid", type=int, default=60)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--folds", type=int, default=2)
    args = parser.parse_args()

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if args.data is None:
        args.symbols = args.symbols or (100 if cuda else 50)
        args.bars = args.bars or (300 if cuda else 150)
        args.horizons = args.horizons or 20
        args.epochs = args.epochs or 3  # epoch 0 pays for compilation: steady state from 1
        args.batch_size = args.batch_size or (32 if cuda else 8)
        bench_speed(args, device)
    else:
        args.horizons = args.horizons or 5
        args.epochs = args.epochs or 10
        args.batch_size = args.batch_size or 8
        evaluate(args, device)


if __name__ == "__main__":
    main()
