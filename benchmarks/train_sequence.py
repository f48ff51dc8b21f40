"""Training and inference speed of the sequence forecasters against a plain PyTorch loop.

Run from the repository root:  .venv/bin/python benchmarks/train_sequence.py
(CPU defaults take a few minutes; on a GPU try ``--symbols 500 --bars 1000 --epochs 3``.)

Data: a balanced random panel, ``--symbols`` x ``--bars`` rows of F = 95 float features (the
first 20 bars of every symbol NaN, like feature warm-up) and a random label; lookback T = 64.

Per network (F 95, T 64, hidden / d_model 128; plus the LSTM hidden 64 x 2 layers, batch 256):
- ours: ``Forecaster.fit`` (standardiser, on-device ``SequenceLayout``, windows gathered per
  batch, ``fit_torch``); epoch time is the steady state, the median of ``history_.epoch_time_s``
  after epoch 0 (epoch 0 pays for warm-up and compilation, reported apart as ``compile_s`` =
  epoch 0 minus the steady epoch), samples/s = training rows / that; prep = the rest of ``fit``;
- ref: the same ``nn.Module`` trained by a textbook loop (AdamW, clip 1.0, MSE) over a
  ``DataLoader`` of windows pre-built in numpy (``(R, T, F)`` float32, shuffled, pinned on CUDA);
  prep = building those windows;
- memory: bytes of the training data representation (our layout vs the pre-built windows); on
  CUDA also ``torch.cuda.max_memory_allocated`` during each training run;
- inference: ``predict`` on 500 symbols x ``--infer-bars`` bars (rows/s, every row predicted
  from its own window) and one forward pass of a (500, T, F) batch (one cross-section).
On CUDA the fp32 and bf16 (autocast) paths run, and ``--compile [MODE]`` adds ``torch.compile``
(``default``, ``reduce-overhead`` or ``max-autotune``; compiled training drops each epoch's last
partial batch, so one graph serves every step). Use ``--epochs 3`` or more with ``--compile``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from alphaforge.models.rnn import (
    AttentionLSTMForecaster,
    CNNLSTMForecaster,
    GRUForecaster,
    LSTMForecaster,
    MultiTaskLSTMForecaster,
    ResidualLSTMForecaster,
)
from alphaforge.models.torch_base import TorchForecaster
from alphaforge.models.transformer import TransformerForecaster
from alphaforge.models.windows import SequenceLayout, Standardizer
from alphaforge.utils import device as dev
from alphaforge.utils.device import resolve_device

N_FEATURES, LOOKBACK = 95, 64
MIB = 1024**2

CASES: list[tuple[str, type[TorchForecaster], dict[str, Any]]] = [
    ("lstm h128x2", LSTMForecaster, {"hidden": 128}),
    ("gru h128x2", GRUForecaster, {"hidden": 128}),
    ("residual_lstm h128x2", ResidualLSTMForecaster, {"hidden": 128}),
    ("attention_lstm h128x2", AttentionLSTMForecaster, {"hidden": 128}),
    ("cnn_lstm h128x2 c64", CNNLSTMForecaster, {"hidden": 128, "conv_channels": 64}),
    ("multitask_lstm h128x2", MultiTaskLSTMForecaster, {"hidden": 128}),
    ("transformer d128x2", TransformerForecaster, {"d_model": 128, "n_heads": 4}),
    ("lstm h64x2 b256", LSTMForecaster, {"hidden": 64}),
    ("gru h64x2 b256", GRUForecaster, {"hidden": 64}),
]


def random_panel(n_symbols: int, n_bars: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2015-01-02", periods=n_bars), [f"S{i:04d}" for i in range(n_symbols)]],
        names=["timestamp", "symbol"],
    )
    values = rng.standard_normal((n_bars, n_symbols, N_FEATURES)).astype(np.float64)
    values[:20] = np.nan  # warm-up
    X = pd.DataFrame(
        values.reshape(-1, N_FEATURES),
        index=index,
        columns=[f"f{k:02d}" for k in range(N_FEATURES)],
    )
    return X, pd.Series(rng.standard_normal(len(X)) * 0.01, index=index, name="y")


def numpy_windows(X: pd.DataFrame, scaler: Standardizer, lookback: int) -> np.ndarray:
    """``(R, T, F + 1)`` windows of a balanced panel (+ the observed channel), strided view."""
    n_bars = X.index.get_level_values("timestamp").nunique()
    z = scaler.transform(X).reshape(n_bars, -1, N_FEATURES)  # (T_all, N, F), X's row order
    z = np.concatenate([z, np.ones((*z.shape[:2], 1), np.float32)], axis=2)  # + observed
    pad = np.concatenate([np.zeros((lookback - 1, *z.shape[1:]), np.float32), z])
    view = np.lib.stride_tricks.sliding_window_view(pad, lookback, axis=0)  # (T_all, N, C, T)
    return np.ascontiguousarray(view.transpose(0, 1, 3, 2)).reshape(-1, lookback, z.shape[2])


def reference_fit(
    net: nn.Module,
    windows: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    dtype: torch.dtype | None,
) -> list[float]:
    """A textbook PyTorch loop over a DataLoader; returns the seconds of each epoch."""
    data = torch.utils.data.TensorDataset(torch.from_numpy(windows), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=True, pin_memory=device.type == "cuda"
    )
    net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = nn.functional.mse_loss(net(xb)[:, 0].float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            loss.item()  # the per-step host sync fit_torch also does
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def peak_reset(device: torch.device) -> None:
    dev.reset_peak_memory(device)  # initialises CUDA first: no "Invalid device argument"


def peak_mib(device: torch.device) -> float:
    return dev.peak_memory_mib(device)


def bench_case(
    name: str,
    cls: type[TorchForecaster],
    params: dict[str, Any],
    data: dict[str, Any],
    args: argparse.Namespace,
    device: torch.device,
    precision: str,
    compile_: str | bool,
) -> dict[str, Any]:
    X, y, X_inf = data["X"], data["y"], data["X_inf"]
    config = {
        "lookback": LOOKBACK,
        "n_layers": 2,
        "dropout": 0.1,
        "max_epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": 1e-3,
        "device": str(device),
        "precision": precision,
        "compile": compile_,
        **params,
    }
    peak_reset(device)
    fit_s, model = timed(lambda: cls.from_params(config, random_state=0).fit(X, y), device)
    epochs = [float(t) for t in model.history_["epoch_time_s"]]
    epoch_s = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]  # steady state
    ours_peak = peak_mib(device)
    layout = SequenceLayout.build(X, model.standardizer_, device="cpu")
    row: dict[str, Any] = {
        "case": name,
        "precision": precision,
        "compile": compile_,
        "params": sum(p.numel() for p in model.net_.parameters()),
        "ours_epoch_s": epoch_s,
        "ours_samples_s": len(X) / epoch_s,
        "compile_s": max(0.0, epochs[0] - epoch_s),
        "ours_prep_s": fit_s - float(model.history_["epoch_time_s"].sum()),
        "ours_data_mib": (layout.values.nbytes + 2 * layout.pos.nbytes) / MIB,
        "ours_gpu_peak_mib": ours_peak,
    }
    del layout
    # inference: every row of a 500-symbol panel, then one (500, T, F) cross-section
    predict_s, _ = timed(lambda: model.predict(X_inf), device)
    row["predict_rows_s"] = len(X_inf) / predict_s
    xb = torch.randn(500, LOOKBACK, model.net_config_.n_features, device=device)
    with torch.inference_mode():
        model.net_(xb)  # warm-up
        row["forward_500_ms"] = 1e3 * timed(lambda: model.net_(xb), device)[0]
    if not args.skip_reference and not compile_:
        dtype = torch.bfloat16 if precision == "bf16" else None
        prep_s, windows = timed(lambda: numpy_windows(X, model.standardizer_, LOOKBACK), device)
        target = ((y.to_numpy() - y.mean()) / y.std()).astype(np.float32)
        torch.manual_seed(0)
        net = cls.Net(model.net_config_)
        peak_reset(device)
        times = reference_fit(
            net,
            windows,
            target,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=1e-3,
            device=device,
            dtype=dtype,
        )
        ref_s = statistics.median(times)
        row.update(
            ref_epoch_s=ref_s,
            ref_samples_s=len(X) / ref_s,
            ref_prep_s=prep_s,
            ref_data_mib=windows.nbytes / MIB,
            ref_gpu_peak_mib=peak_mib(device),
            speedup=ref_s / epoch_s,
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=40, help="training panel symbols")
    parser.add_argument("--bars", type=int, default=120, help="training panel bars per symbol")
    parser.add_argument("--infer-bars", type=int, default=80, help="bars per symbol, inference")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=["default", "reduce-overhead", "max-autotune"],
        help="also run torch.compile in this mode (CUDA)",
    )
    parser.add_argument("--cases", default="", help="comma-separated case-name prefixes")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])  # pay torch's one-time optimizer imports
    X, y = random_panel(args.symbols, args.bars)
    X_inf, _ = random_panel(500, args.infer_bars, seed=1)
    data = {"X": X, "y": y, "X_inf": X_inf}
    runs: list[tuple[str, str | bool]] = [("fp32", False)]
    if device.type == "cuda":
        runs += [("bf16", False)] + ([("bf16", args.compile)] if args.compile else [])
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {device} ({card}, {torch.get_num_threads()} threads), torch "
        f"{torch.__version__}; train panel {args.symbols} x {args.bars} = {len(X)} rows, "
        f"F {N_FEATURES}, T {LOOKBACK}, batch {args.batch_size}, {args.epochs} epochs; "
        f"inference 500 x {args.infer_bars}"
    )
    rows = []
    for name, cls, params in CASES:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        for precision, compile_ in runs:
            row = bench_case(name, cls, params, data, args, device, precision, compile_)
            rows.append(row)
            print(
                " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                ),
                flush=True,
            )
    table = pd.DataFrame(rows).set_index(["case", "precision", "compile"])
    with pd.option_context(
        "display.width", 250, "display.max_columns", 30, "display.float_format", "{:.4g}".format
    ):
        print(table)
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
