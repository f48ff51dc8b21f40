"""Speed of the foundation-model adapters: sampled paths per second and latency per symbol.

Run from the repository root:
  .venv/bin/python benchmarks/foundation.py                 (CPU defaults: about 1-2 minutes)
  .venv/bin/python benchmarks/foundation.py --symbols 64 --context 512 --samples 256 \
      --kronos-arch small                                    (GPU-sized run)

Every model has random weights in a released shape (Kronos ``--kronos-arch``; Toto and
Chronos-Bolt: the shapes in ``TOTO_BENCH`` / ``CHRONOS_BENCH`` below, random init). Random weights
say nothing about accuracy: only timings are printed. Adapters whose package is not installed
are skipped with the reason.

Workload: ``tiny_problem`` with ``--symbols`` symbols and ``--context + 30`` bars; ``fit`` keeps
the context, then one timed call forecasts the last bar of every symbol (``predict`` on one row
per symbol, ``--samples`` sampled futures each, ``--horizon`` bars ahead). Printed per variant:
the first call (includes ``torch.compile``), the median of ``--repeat`` warm calls, sampled
paths per second (symbols x samples / median) and latency per symbol (median / symbols).

Variants: eager and compiled (``compile=True``; on CUDA only unless ``--compile-cpu``);
Kronos with the shared-prefix KV cache (``decode="auto"``: preallocated caches and CUDA-graph
steps on CUDA; ``decode="eager"``: caches that grow each step) and with full recomputation of
the window at every step (``use_cache=False``, the reference loop); Toto with one context pass
(the adapter) and with per-sample decoding (the package's ``TotoForecaster``, which repeats
the context once per sample and runs the network per batch of samples).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from alphaforge.testing import tiny_problem
from alphaforge.utils.device import resolve_device

TOTO_BENCH = {  # Toto-Open-Base-like shape (random init)
    "patch_size": 64,
    "stride": 64,
    "embed_dim": 768,
    "num_layers": 12,
    "num_heads": 12,
    "mlp_hidden_dim": 3072,
    "dropout": 0.0,
    "spacewise_every_n_layers": 12,
    "scaler_cls": "<class 'model.scaler.CausalPatchStdMeanScaler'>",
    "output_distribution_classes": ["<class 'model.distribution.MixtureOfStudentTsOutput'>"],
    "output_distribution_kwargs": {"k_components": 24},
    "spacewise_first": True,
    "use_memory_efficient_attention": False,
    "stabilize_with_global": True,
    "scale_factor_exponent": 10.0,
}
CHRONOS_BENCH = {  # chronos-bolt-small-like shape (random init)
    "model_type": "t5",
    "architectures": ["ChronosBoltModelForForecasting"],
    "d_model": 512,
    "d_ff": 2048,
    "d_kv": 64,
    "num_heads": 8,
    "num_layers": 6,
    "num_decoder_layers": 6,
    "dropout_rate": 0.0,
    "feed_forward_proj": "relu",
    "vocab_size": 2,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
    "is_encoder_decoder": True,
    "chronos_config": {
        "context_length": 2048,
        "prediction_length": 64,
        "input_patch_size": 16,
        "input_patch_stride": 16,
        "quantiles": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "use_reg_token": True,
    },
}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(first call seconds, median of ``repeat`` warm calls)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        warm.append(time.perf_counter() - t0)
    return first, statistics.median(warm)


def report(name: str, first: float, median: float, n_symbols: int, n_samples: int) -> None:
    print(
        f"  {name:<34} first {first:8.3f} s   warm {median:8.4f} s   "
        f"{n_symbols * n_samples / median:11.0f} paths/s   "
        f"{1000 * median / n_symbols:9.2f} ms/symbol",
        flush=True,
    )


def adapter_runs(
    args: argparse.Namespace,
    device: torch.device,
    X: pd.DataFrame,
    y: pd.Series,
    last: pd.DataFrame,
) -> None:
    compile_ok = device.type == "cuda" or args.compile_cpu
    base = {
        "max_context": args.context,
        "num_samples": args.samples,
        "device": str(device),
        "samples_per_batch": max(args.samples * len(last), 1),
        "horizon": args.horizon,
        "precision": args.precision,
    }
    plans: list[tuple[str, str, str, dict[str, Any], list[tuple[str, dict[str, Any]]]]] = [
        (
            "kronos",
            "alphaforge.models.foundation.kronos",
            "KronosAdapter",
            {"arch": args.kronos_arch},
            [
                ("eager, KV cache", {}),  # decode auto: CUDA-graph steps on CUDA
                ("eager, KV cache, growing caches", {"decode": "eager"}),
                ("eager, no cache (recompute)", {"use_cache": False}),
                ("compiled, KV cache", {"compile": True}),
            ],
        ),
        (
            "toto",
            "alphaforge.models.foundation.toto",
            "TotoAdapter",
            {},
            [("eager, one context pass", {}), ("compiled, one context pass", {"compile": True})],
        ),
        (
            "chronos",
            "alphaforge.models.foundation.chronos",
            "ChronosAdapter",
            {"quantile_mode": "interpolate"},
            [("eager", {}), ("compiled", {"compile": True})],
        ),
    ]
    for name, module, cls_name, extra, variants in plans:
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"{name}: skipped ({exc})")
            continue
        print(f"{name} ({cls_name}) on {device}:")
        for label, over in variants:
            if over.get("compile") and not compile_ok:
                print(f"  {label:<34} skipped (compile is timed on CUDA; --compile-cpu forces)")
                continue
            params = {**base, **extra, **over}
            if name == "kronos":
                model = cls.from_params(params, random_state=0)
            else:
                arch = TOTO_BENCH if name == "toto" else CHRONOS_BENCH
                model = cls.from_config(
                    arch, {k: v for k, v in params.items() if k != "arch"}, random_state=0
                )
            model.fit(X, y)
            first, median = timed(lambda m=model: m.predict(last), args.repeat)
            report(label, first, median, len(last), args.samples)
            if name == "toto" and not over:
                toto_per_sample(model, args, device)


def toto_per_sample(model: Any, args: argparse.Namespace, device: torch.device) -> None:
    """The package's forecaster: the context repeated per sample, one network run per batch."""
    from toto.data.util.dataset import MaskedTimeseries
    from toto.inference.forecaster import TotoForecaster

    rng = np.random.default_rng(0)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (args.symbols, args.context)), 1))
    series = torch.tensor(prices, dtype=torch.float32, device=device)[:, None]
    inputs = MaskedTimeseries(
        series=series,
        padding_mask=torch.ones_like(series, dtype=torch.bool),
        id_mask=torch.zeros_like(series, dtype=torch.int),
        timestamp_seconds=torch.zeros_like(series, dtype=torch.int),
        time_interval_seconds=torch.full((args.symbols, 1), 86400, dtype=torch.int, device=device),
    )
    forecaster = TotoForecaster(model.module_.model)
    per_batch = min(args.samples, args.toto_samples_per_batch)
    while args.samples % per_batch:
        per_batch -= 1

    def run() -> None:
        with torch.inference_mode():
            forecaster.forecast(
                inputs,
                prediction_length=args.horizon,
                num_samples=args.samples,
                samples_per_batch=per_batch,
                use_kv_cache=True,
            )

    first, median = timed(run, args.repeat)
    report(f"package per-sample ({per_batch}/batch)", first, median, args.symbols, args.samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--symbols", type=int, default=8, help="series forecast per call")
    parser.add_argument("--context", type=int, default=64, help="context bars per series")
    parser.add_argument("--samples", type=int, default=32, help="sampled futures per series")
    parser.add_argument("--horizon", type=int, default=2, help="bars ahead")
    parser.add_argument("--repeat", type=int, default=2, help="warm calls timed (median)")
    parser.add_argument("--kronos-arch", default="mini", help="mini, small or base shape")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 (CUDA), auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--toto-samples-per-batch",
        type=int,
        default=16,
        help="samples per network run of the package's per-sample forecaster",
    )
    parser.add_argument("--compile-cpu", action="store_true", help="also time compile on CPU")
    args = parser.parse_args()
    logging.getLogger("alphaforge").setLevel(logging.ERROR)  # random weights on purpose
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} "
        f"CPU threads; {args.symbols} symbols x {args.samples} samples, context "
        f"{args.context}, horizon {args.horizon}; random weights (timings only)"
    )
    X, y = tiny_problem(n_symbols=args.symbols, n_bars=args.context + 30, n_features=5)
    stamps = X.index.get_level_values("timestamp")
    last = X[stamps == stamps.max()]
    adapter_runs(args, device, X, y, last)


if __name__ == "__main__":
    main()
