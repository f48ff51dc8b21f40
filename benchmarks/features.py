"""Speed and memory of ``build_features`` against the naive per-symbol pandas reference.

Run from the repository root:  .venv/bin/python benchmarks/features.py   (about 3-5 minutes)
    --catalogue alpha158 (or both) times that catalogue instead of the default one;
    --no-synthetic times the real panel only (seconds).

Panels:
- real: ../shared/data/sp500_100_daily_2012_2017.parquet (100 stocks, ~124k rows), loaded with
  ``alphaforge.data.load_panel(repair=True)`` (it drops the file's few impossible bars); skipped
  with a message when the file is absent;
- synthetic: ``alphaforge.data.synthetic_panel`` with 2,000 symbols x 2,500 bars (5M rows), with
  and without gaps (unbalanced and balanced layouts).

What is printed, per panel:
- fast: the whole ``--catalogue`` + its default cross-sectional stage; the first (cold) call,
  then the median and best of ``--repeat`` warm calls as panel rows per second. The cold call
  pays for first touching the output's memory; on a VM that hands freed memory back to its host
  (this project's sandbox) a later call may pay for it again, hence median and best;
- naive: ``alphaforge.features._reference.reference_features`` (same columns). On the 5M-row
  panel it runs on a ``--naive-symbols`` subset and is scaled linearly to the full panel (the
  naive cost is per symbol, so linear scaling is fair); the ratio is naive / fast;
- memory: peak bytes traced by ``tracemalloc`` during one fast call (numpy reports its buffers
  to tracemalloc; the output frame is included), and that peak as a multiple of the output's
  size; also the process's ru_maxrss before and after that call;
- on the balanced synthetic panel: warm seconds per family (default catalogue) or per operator
  (alpha158: all windows of one operator together).
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from alphaforge.data import load_panel, synthetic_panel
from alphaforge.features import (
    ALPHA158,
    CATALOGUES,
    FEATURES,
    build_features,
    catalogue_features,
)
from alphaforge.features._reference import reference_features

REAL = Path(__file__).resolve().parents[1].parent / "shared/data/sp500_100_daily_2012_2017.parquet"
GIB = 1024**3


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def maxrss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB


def bench_fast(
    panel: pd.DataFrame, repeat: int, catalogue: str, dtype: type = np.float64
) -> dict[str, float]:
    """Cold call, warm median, and tracemalloc peak of build_features on the whole panel."""

    def build() -> pd.DataFrame:
        return build_features(panel, catalogue=catalogue, dtype=dtype)

    cold, X = timed(build)
    out_bytes = X.to_numpy().nbytes
    n_cols = X.shape[1]
    del X
    gc.collect()
    warm = []
    for _ in range(repeat):
        seconds, X = timed(build)
        warm.append(seconds)
        del X
        gc.collect()
    rss_before = maxrss_gib()
    tracemalloc.start()
    X = build()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del X
    gc.collect()
    return {
        "cold": cold,
        "warm": statistics.median(warm),
        "best": min(warm),
        "out_bytes": out_bytes,
        "n_cols": n_cols,
        "peak": peak,
        "rss_before": rss_before,
        "rss_after": maxrss_gib(),
    }


def bench_naive(
    panel: pd.DataFrame, n_symbols: int | None, catalogue: str
) -> tuple[float, float, int]:
    """Seconds of the naive reference on (a subset of) the panel, scaled to the whole panel."""
    symbols = panel.index.get_level_values("symbol")
    sub = panel
    if n_symbols is not None and n_symbols < symbols.nunique():
        keep = symbols.unique()[:n_symbols]
        sub = panel[symbols.isin(keep)]
    seconds, _ = timed(lambda: reference_features(sub, catalogue=catalogue))
    return seconds, seconds * len(panel) / len(sub), len(sub)


def report(
    label: str, panel: pd.DataFrame, repeat: int, naive_symbols: int | None, catalogue: str
) -> None:
    n = len(panel)
    n_sym = panel.index.get_level_values("symbol").nunique()
    print(f"\n== {label}: {n:,} rows, {n_sym:,} symbols, catalogue {catalogue} ==")
    fast = bench_fast(panel, repeat, catalogue)
    print(
        f"fast    cold {fast['cold']:6.2f} s | warm median of {repeat} {fast['warm']:5.2f} s"
        f" -> {n / fast['warm'] / 1e6:4.2f} M rows/s (best {n / fast['best'] / 1e6:4.2f})"
        f" | {fast['n_cols']} columns, float64"
    )
    out_gib, peak_gib = fast["out_bytes"] / GIB, fast["peak"] / GIB
    print(
        f"memory  output {out_gib:6.2f} GiB | tracemalloc peak during the call {peak_gib:6.2f} GiB"
        f" = {fast['peak'] / fast['out_bytes']:4.2f} x output | ru_maxrss"
        f" {fast['rss_before']:5.2f} -> {fast['rss_after']:5.2f} GiB"
    )
    f32 = bench_fast(panel, repeat, catalogue, np.float32)
    print(
        f"float32 warm median {f32['warm']:5.2f} s -> {n / f32['warm'] / 1e6:4.2f} M rows/s"
        f" (best {n / f32['best'] / 1e6:4.2f}) | output {f32['out_bytes'] / GIB:5.2f} GiB,"
        f" peak {f32['peak'] / f32['out_bytes']:4.2f} x output"
    )
    if naive_symbols == 0:
        return
    seconds, scaled, n_sub = bench_naive(panel, naive_symbols, catalogue)
    how = "" if n_sub == n else f" on {n_sub:,} rows, scaled x{n / n_sub:.1f} linearly"
    print(
        f"naive   {seconds:7.1f} s{how} -> {scaled:8.1f} s for the panel"
        f" ({n / scaled / 1e3:6.1f} k rows/s) | fast is {scaled / fast['warm']:5.0f} x faster"
    )


def families(panel: pd.DataFrame, catalogue: str) -> None:
    """Warm seconds per feature family, or per Alpha158 operator (base features; best of 2)."""
    groups: dict[str, list[str]] = {}
    for name in catalogue_features(catalogue):
        group = FEATURES[name].family if name in FEATURES else name.rstrip("0123456789")
        groups.setdefault(group, []).append(name)
    build_features(panel, [next(iter(groups.values()))[0]], cross_section=False)  # warm up
    parts = []
    for group, names in groups.items():
        seconds = min(
            timed(lambda names=names: build_features(panel, names, cross_section=False))[0]
            for _ in range(2)
        )
        parts.append(f"{group} {seconds:.2f}s ({len(names)})")
    print("families: " + " | ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000, help="synthetic symbols")
    parser.add_argument("--bars", type=int, default=2500, help="synthetic bars per symbol")
    parser.add_argument(
        "--naive-symbols",
        type=int,
        default=200,
        help="symbols the naive reference runs on for the synthetic panel "
        "(0: skip the naive timing)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="warm timed calls per panel")
    parser.add_argument(
        "--catalogue", choices=CATALOGUES, default="default", help="feature catalogue to time"
    )
    parser.add_argument("--no-synthetic", action="store_true", help="time the real-data panel only")
    args = parser.parse_args(argv)
    cat = args.catalogue
    print(
        f"alphaforge features benchmark: catalogue {cat}, {len(catalogue_features(cat))} features"
        f" ({len(FEATURES)} default, {len(ALPHA158)} alpha158); numpy {np.__version__}, "
        f"pandas {pd.__version__}; python {sys.version.split()[0]}"
    )

    if REAL.exists():
        panel = load_panel(REAL, repair=True)  # the file has a few impossible bars: dropped
        print(f"\n(loaded {REAL.name}; {len(panel.attrs.get('repairs', []))} bad bar(s) dropped)")
        report(f"real: {REAL.name}", panel, args.repeat, None if args.naive_symbols else 0, cat)
    else:
        print(f"\n(real-data panel skipped: {REAL} not found)")

    for gaps in () if args.no_synthetic else (False, True):
        seconds, panel = timed(
            lambda gaps=gaps: synthetic_panel(
                n_symbols=args.symbols, n_bars=args.bars, seed=0, gaps=gaps
            )
        )
        label = f"synthetic {args.symbols} x {args.bars}" + (" with gaps" if gaps else "")
        print(f"\n(generated {label} in {seconds:.1f} s)")
        report(label, panel, args.repeat, args.naive_symbols, cat)
        if not gaps:
            families(panel, cat)
        del panel
        gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
