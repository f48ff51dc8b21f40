"""Features of a panel stored as shards: the in-memory build against the Dask engine, with every
Dask worker capped far below the in-memory build's peak; and what that projects to at scale.

Run from the repository root:  .venv/bin/python benchmarks/scale.py   (about 5-8 minutes on 2 cores)
    --symbols 2000 --bars 2500    the synthetic panel (5M rows), written as Parquet shards of
                                  --shard-symbols symbols each (plain files, whole symbols)
    --workers 1 2                 local Dask worker processes to time, one run per count
    --memory-limit 1.5GB          each worker's cap (Dask restarts a worker that passes 95% of it)
    --partition-rows 125000       bars per per-symbol partition, the unit of work and memory
    --dtype float32               output dtype of both builds
    --workdir DIR                 where shards and outputs go (default: a temporary folder)

Each measurement runs in a fresh process, so its peak resident memory (``ru_maxrss``) is its own:
- memory engine: ``load_panel`` on the shards, then ``build_features``; wall time and rows/s of
  the build alone and of load + build (the Dask figures include reading, validating and writing),
  the process's resident memory before the build and its peak;
- dask engine: ``build_feature_dataset`` of the shards on a ``LocalCluster`` of W single-thread
  worker processes capped at ``--memory-limit``: wall time, rows/s, rows/s per worker, each
  worker's peak resident memory (its whole life: imports, tasks, Parquet writing), the client's;
  the output's rows are checked against the panel's.

Then the cost model: per-worker throughput and memory measured here, projected to a minute-bar
universe of 3,000 symbols x 390 bars x 252 days (``--target-rows``): wall time on K workers and
the workers needed for a wall-time goal. Figures depend on the machine and its load: a shared
machine makes the wall times (not the memory figures) pessimistic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MIB = 1024**2
TARGET_ROWS = 3000 * 390 * 252  # minute bars: 3,000 symbols, one year


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- children
def write_shards(args: argparse.Namespace) -> dict[str, object]:
    """The synthetic panel as Parquet shards of whole symbols."""
    from alphaforge.data import synthetic_panel

    t0 = time.perf_counter()
    panel = synthetic_panel(n_symbols=args.symbols, n_bars=args.bars, seed=0)
    long = panel.reset_index()
    long.attrs = {}
    root = Path(args.workdir) / "bars"
    root.mkdir(parents=True, exist_ok=True)
    codes = long["symbol"].str[1:].astype(int).to_numpy() // args.shard_symbols
    for k in np.unique(codes):
        long[codes == k].to_parquet(root / f"part-{k:04d}.parquet", index=False)
    return {"rows": len(long), "shards": int(len(np.unique(codes))), "s": time.perf_counter() - t0}


def memory_build(args: argparse.Namespace) -> dict[str, object]:
    """``load_panel`` on the shards, then ``build_features``, in this process."""
    from alphaforge.data import load_panel
    from alphaforge.features import build_features

    t0 = time.perf_counter()
    panel = load_panel(str(Path(args.workdir) / "bars"))
    load = time.perf_counter() - t0
    before = _current_rss()
    t0 = time.perf_counter()
    X = build_features(panel, dtype=np.dtype(args.dtype))
    elapsed = time.perf_counter() - t0
    return {
        "rows": len(X),
        "columns": X.shape[1],
        "s": elapsed,
        "load_s": load,
        "rss_before": before,
        "peak": _peak_rss(),
        "output_bytes": int(X.to_numpy().nbytes),
    }


def dask_build(args: argparse.Namespace, workers: int) -> dict[str, object]:
    """``build_feature_dataset`` of the shards on a capped local cluster of ``workers``."""
    from alphaforge.engines.cluster import ClusterSpec, connect
    from alphaforge.engines.dask_features import build_feature_dataset

    out = Path(args.workdir) / f"features-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    spec = ClusterSpec(workers=workers, memory_limit=args.memory_limit)
    with connect(spec) as client:
        pids = client.run(os.getpid)
        t0 = time.perf_counter()
        manifest = build_feature_dataset(
            str(Path(args.workdir) / "bars"),
            out,
            dtype=np.dtype(args.dtype),
            partition_rows=args.partition_rows,
            client=client,
        )
        elapsed = time.perf_counter() - t0
        peaks = client.run(_peak_rss)
        restarted = sorted(set(pids.values()) - set(client.run(os.getpid).values()))
    size = sum(f.stat().st_size for f in out.iterdir())
    shutil.rmtree(out, ignore_errors=True)
    return {
        "rows": manifest["n_rows"],
        "parts": len(manifest["parts"]),
        "s": elapsed,
        "worker_peaks": sorted(peaks.values()),
        "client_peak": _peak_rss(),
        "restarted": len(restarted),
        "dataset_bytes": size,
    }


def _child(args: argparse.Namespace, what: str, *extra: str) -> dict[str, object]:
    """Run one measurement in a fresh process; its JSON result."""
    cmd = [sys.executable, __file__, "--child", what, *extra, *_forward(args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _forward(args: argparse.Namespace) -> list[str]:
    return [
        f"--symbols={args.symbols}",
        f"--bars={args.bars}",
        f"--shard-symbols={args.shard_symbols}",
        f"--memory-limit={args.memory_limit}",
        f"--partition-rows={args.partition_rows}",
        f"--dtype={args.dtype}",
        f"--workdir={args.workdir}",
    ]


# --------------------------------------------------------------------------- report
def _mib(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


def report(args: argparse.Namespace, shards: dict, memory: dict, runs: dict[int, dict]) -> None:
    rows = memory["rows"]
    print(
        f"\npanel: {args.symbols:,} symbols x {args.bars:,} bars = {rows:,} rows, "
        f"{shards['shards']} shards; {memory['columns']} {args.dtype} feature columns; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'build':<28}{'wall s':>8}{'rows/s':>12}{'rows/s/worker':>15}{'peak memory':>26}")
    total = memory["s"] + memory["load_s"]
    for label, s in (("memory: features only", memory["s"]), ("memory: load + features", total)):
        print(f"{label:<28}{s:>8.1f}{rows / s:>12,.0f}{rows / s:>15,.0f}{_mib(memory['peak']):>26}")
    for w, r in runs.items():
        label = f"dask, {w} worker{'s' if w > 1 else ''} <= {args.memory_limit}"
        peaks = " / ".join(f"{p / MIB:,.0f}" for p in r["worker_peaks"])
        print(
            f"{label:<28}{r['s']:>8.1f}{r['rows'] / r['s']:>12,.0f}"
            f"{r['rows'] / r['s'] / w:>15,.0f}{peaks + ' MiB per worker':>26}"
        )
    print(
        f"memory engine: {_mib(memory['rss_before'])} resident before the build (panel "
        f"loaded), peak {_mib(memory['peak'])}; output {_mib(memory['output_bytes'])}"
    )
    for w, r in runs.items():
        print(
            f"dask, {w} workers: client peak {_mib(r['client_peak'])}; {r['parts']} parts, "
            f"{_mib(r['dataset_bytes'])} on disk; rows {r['rows']:,} (panel {rows:,}); "
            f"worker restarts: {r['restarted']}"
        )
    _projection(args, memory, runs)


def _projection(args: argparse.Namespace, memory: dict, runs: dict[int, dict]) -> None:
    """The cost model: measured per-worker figures, projected to ``args.target_rows``.

    Throughput per worker is the lowest measured (the run with most workers, which pays for
    its shuffles between workers); memory per worker the highest; the cluster is assumed to
    scale linearly from there, which its shuffles make optimistic for very many workers.
    """
    rates = {w: r["rows"] / r["s"] / w for w, r in runs.items()}
    per_worker = min(rates.values())
    worker_mem = max(max(r["worker_peaks"]) for r in runs.values())
    n, cols = args.target_rows, memory["columns"]
    disk = max(r["dataset_bytes"] / r["rows"] for r in runs.values()) * n
    print(f"\ncost model for {n:,} rows (3,000 symbols x 390 bars x 252 days):")
    measured = ", ".join(f"{rates[w]:,.0f} with {w}" for w in sorted(rates))
    print(f"  measured rows/s per worker: {measured}; used: {per_worker:,.0f}")
    print(
        f"  measured peak per worker: {_mib(worker_mem)} at {args.partition_rows:,}-bar "
        "partitions (set by the partition size, not by the panel's)"
    )
    print(
        f"  one process would need ~{n / memory['rows'] * memory['peak'] / 1024**3:,.0f} GiB "
        f"(this in-memory build's peak per row); the dataset takes {disk / 1e9:,.0f} GB "
        f"({args.dtype}, {cols} columns)"
    )
    print(f"  {n / per_worker / 3600:.2f} worker-hours in all:")
    for k in (4, 16, 64):
        minutes = n / (per_worker * k) / 60
        print(
            f"  {k:>4} workers: {minutes:6.1f} min wall, {k * worker_mem / 1024**3:6.1f} GiB "
            "of worker memory in all"
        )
    for goal in (60, 15, 5):
        k = max(1, math.ceil(n / (per_worker * goal * 60)))
        print(f"  within {goal} min: {k} worker{'s' if k > 1 else ''} (1 core, {_mib(worker_mem)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=2500)
    parser.add_argument("--shard-symbols", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-limit", default="1.5GB")
    parser.add_argument("--partition-rows", type=int, default=125_000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--target-rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--workdir")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "shards":
        print(json.dumps(write_shards(args)))
        return
    if args.child == "memory":
        print(json.dumps(memory_build(args)))
        return
    if args.child == "dask":
        print(json.dumps(dask_build(args, args.child_workers)))
        return
    made = args.workdir is None
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="alphaforge-scale-")
    try:
        shards = _child(args, "shards")
        print(f"shards: {shards['rows']:,} rows in {shards['shards']} files ({shards['s']:.0f} s)")
        memory = _child(args, "memory")
        print(f"memory engine: {memory['s']:.1f} s, peak {_mib(memory['peak'])}", flush=True)
        runs = {}
        for w in sorted(args.workers):
            runs[w] = _child(args, "dask", f"--child-workers={w}")
            print(f"dask engine, {w} workers: {runs[w]['s']:.1f} s", flush=True)
        report(args, shards, memory, runs)
    finally:
        if made:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
