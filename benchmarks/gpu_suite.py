"""One device suite: every GPU speed figure of alphaforge, its aim, and pass/fail, in one table.

Run from the repository root on one CUDA GPU (sized for an H100/H200 to finish within 6 minutes;
sections that would start after ``--budget`` seconds are skipped and listed):
    .venv/bin/python benchmarks/gpu_suite.py --json gpu_suite.json
    .venv/bin/python benchmarks/gpu_suite.py --only ranker_compiled,kronos_compiled   # a rerun
Quick mode runs the same code on the CPU with tiny sizes; it checks that every figure can be
measured (status ``ran``), not how fast (CI runs it):
    .venv/bin/python benchmarks/gpu_suite.py --quick

Figures (random data and weights: speed only; steady state after warm-up, compile time apart):
- LSTM h64 x 2, T64, F95, batch 1024: fp32 samples/s; bf16 / fp32 throughput.
- Transformer d128 x 2: bf16 / fp32; bf16 compiled / bf16 eager (steady-state epochs).
- Ranker d192, 4 layers, T128, bf16, 16 dates per step: MFU eager and compiled, with
  ``MFU = 3 * RankerNet.flops_per_window(T) * windows/s / peak`` (real windows only).
- GPT d384 L6 T256 B64 bf16: training MFU eager and compiled; d768 L12 T256 compiled;
  ``MFU = GPT.flops_per_token() * tokens/s / peak``. Peak: dense bf16 of the GPU
  (:func:`alphaforge.utils.device.peak_flops`).
- GPT decoding (d384 L6, 64 sequences, 128-token prompts, 127 new tokens): ms per one-token step
  in bf16 and fp32 (default ``decode``: static KV cache, CUDA-graph step); KV cache vs
  recomputation at d384 and d768 (bf16); 500 symbols x 8 paths x 32 tokens; fp32 tokens of the
  graph step against the eager cache (must be identical).
- Kronos small, 64 symbols x 32 samples, context 128, horizon 16 (the adapter, fp32): paths/s
  with the KV cache vs recomputation; compiled vs eager; fp32 graph step vs eager cache.
- End to end: ``run_experiment(configs/gpu_e2e.yaml)``: 4 networks x 4 folds on 400 symbols x
  1,500 synthetic bars, features included (needs the config's packages, pydantic among them;
  reported as skipped when they do not import).

Each section is guarded: an error becomes that row's status and the suite goes on. Sections run
cheapest first; compiled runs come last and are skipped once ``--budget`` seconds are spent.
``--json PATH`` writes every row (and the device) as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from alphaforge.models.foundation.kronos import KronosAdapter
from alphaforge.models.gpt import GPT, GPTConfig
from alphaforge.models.gpt_forecaster import TokenWindows
from alphaforge.models.ranker import RankingTransformerForecaster
from alphaforge.models.rnn import LSTMForecaster
from alphaforge.models.token_streams import TokenStreams
from alphaforge.models.training import TrainConfig, fit_torch
from alphaforge.models.transformer import TransformerForecaster
from alphaforge.testing import tiny_problem
from alphaforge.utils import device as dev

ROOT = Path(__file__).resolve().parents[1]
E2E_CONFIG = ROOT / "configs" / "gpu_e2e.yaml"


# ---------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One figure: value, unit, aim (``op`` and ``target``) and status."""

    figure: str
    value: float | None
    unit: str
    op: str  # ">=", "<=", "==" or "" (reported only)
    target: float | None
    status: str = ""
    note: str = ""

    @property
    def aim(self) -> str:
        return "report" if not self.op else f"{self.op} {_fmt(self.target)}"

    def judge(self, quick: bool) -> Row:
        """Set ``status``: pass/fail on a GPU, ``ran`` in quick mode (sizes prove nothing)."""
        if self.status:
            return self
        if quick:
            self.status = "ran"  # tiny sizes on a CPU: the code ran, the figure means nothing
        elif self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            self.status = "n/a"
        elif not self.op:
            self.status = "ran"
        else:
            ok = {
                ">=": self.value >= self.target,
                "<=": self.value <= self.target,
                "==": self.value == self.target,
            }[self.op]
            self.status = "pass" if ok else "fail"
        return self


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0 or 0.01 <= abs(v) < 1e5:
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:.3g}"


@dataclass
class Context:
    """What every section needs: the device, sizes, budget and where rows go."""

    device: torch.device
    quick: bool
    budget_s: float
    start: float
    rows: list[Row] = dataclasses.field(default_factory=list)
    memo: dict[str, float] = dataclasses.field(default_factory=dict)  # eager rates, reused

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def add(self, row: Row) -> None:
        row.judge(self.quick)
        self.rows.append(row)
        print(
            f"  {row.figure:<46} {_fmt(row.value):>10} {row.unit:<9} {row.status:<6} {row.note}",
            flush=True,
        )


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    dev.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    dev.synchronize(device)
    return time.perf_counter() - t0, out


def amp(ctx: Context, dtype: torch.dtype | None) -> Any:
    return dev.autocast(ctx.device, dtype if ctx.cuda else None)


def bf16(ctx: Context) -> str:
    """The "bf16" run's precision: bf16 on CUDA, fp32 in quick mode on the CPU."""
    return "bf16" if ctx.cuda else "fp32"


# ---------------------------------------------------------------------------- panels
def random_panel(n_symbols: int, n_bars: int, n_features: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2015-01-02", periods=n_bars), [f"S{i:04d}" for i in range(n_symbols)]],
        names=["timestamp", "symbol"],
    )
    values = rng.standard_normal((n_bars, n_symbols, n_features)).astype(np.float32)
    values[:20] = np.nan  # feature warm-up
    X = pd.DataFrame(
        values.reshape(-1, n_features),
        index=index,
        columns=[f"f{k:02d}" for k in range(n_features)],
    )
    return X, pd.Series(rng.standard_normal(len(X)) * 0.01, index=index, name="y")


def fit_rates(model: Any, n_samples: int) -> tuple[float, float]:
    """(steady-state samples/s, compile and warm-up seconds) from a fitted model's epochs.

    Steady state: the median of epochs 1.. (epoch 0 pays for compilation and allocator
    warm-up); the compile time is epoch 0 minus that median.
    """
    times = [float(t) for t in model.history_["epoch_time_s"]]
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    return n_samples / steady, max(0.0, times[0] - steady)


# ---------------------------------------------------------------------------- sections
def sequence_section(ctx: Context, compiled: bool) -> None:
    """LSTM and Transformer throughput through ``Forecaster.fit`` (fp32, bf16, compiled)."""
    q = ctx.quick
    X, y = random_panel(*((4, 80, 6) if q else (400, 800, 95)))
    Xt, yt = random_panel(*((4, 80, 6) if q else (200, 800, 95)))
    base = {
        "lookback": 8 if q else 64,
        "n_layers": 2,
        "batch_size": 64 if q else 1024,
        "max_epochs": 2 if q else 3,
        "patience": 0,
        "device": str(ctx.device),
    }
    lstm = {**base, "hidden": 8 if q else 64}
    tf = {**base, "d_model": 16 if q else 128, "n_heads": 2 if q else 4}
    n, nt = int(y.notna().sum()), int(yt.notna().sum())

    def rate(cls: Any, params: dict[str, Any], data: Any, count: int, **over: Any) -> Any:
        model = cls.from_params({**params, **over}, random_state=0).fit(*data)
        return fit_rates(model, count)

    if not compiled:
        fp32, _ = rate(LSTMForecaster, lstm, (X, y), n, precision="fp32")
        ctx.add(Row("LSTM h64x2 T64 F95 b1024 fp32", fp32, "samples/s", ">=", 170_000))
        half, _ = rate(LSTMForecaster, lstm, (X, y), n, precision=bf16(ctx))
        ctx.add(Row("LSTM bf16 / fp32", half / fp32, "x", ">=", 0.97, note="noise +-3%"))
        fp32, _ = rate(TransformerForecaster, tf, (Xt, yt), nt, precision="fp32")
        half, _ = rate(TransformerForecaster, tf, (Xt, yt), nt, precision=bf16(ctx))
        ctx.add(Row("Transformer d128x2 bf16 / fp32", half / fp32, "x", ">=", 0.97))
        ctx.memo["transformer_bf16"] = half
        return
    eager = ctx.memo.get("transformer_bf16")
    if eager is None:
        eager, _ = rate(TransformerForecaster, tf, (Xt, yt), nt, precision=bf16(ctx))
    comp, compile_s = rate(
        TransformerForecaster, tf, (Xt, yt), nt, precision=bf16(ctx), compile="default"
    )
    ctx.add(
        Row(
            "Transformer bf16 compiled / eager",
            comp / eager,
            "x",
            ">=",
            1.3,
            note=f"steady state; compile {compile_s:.1f}s",
        )
    )


def ranker_section(ctx: Context, compiled: bool) -> None:
    """Ranker training MFU: d192, 4 layers, T128, bf16, 16 dates of all assets per step."""
    q = ctx.quick
    X, y = random_panel(*((4, 50, 6) if q else (300, 250, 95)))
    T = 8 if q else 128
    params = {
        "lookback": T,
        "max_len": max(512, T),
        "d_model": 16 if q else 192,
        "n_heads": 2 if q else 6,
        "n_layers": 1 if q else 4,
        "n_lags": 2 if q else 4,
        "horizons": 2 if q else 20,
        "max_epochs": 2 if q else 3,
        "patience": 0,
        "batch_size": 4 if q else 16,
        "device": str(ctx.device),
        "precision": bf16(ctx),
        "compile": "default" if compiled else False,
    }
    model = RankingTransformerForecaster.from_params(params, random_state=0).fit(X, y)
    windows = int(y.notna().sum())  # (date, asset) training windows, roughly
    rate, compile_s = fit_rates(model, windows)
    peak = dev.peak_flops(ctx.device, torch.bfloat16)
    flops = 3 * model.net_.flops_per_window(T)
    mfu = 100 * flops * rate / peak if peak else float("nan")
    label = "Ranker d192 L4 T128 bf16 MFU " + ("compiled" if compiled else "eager")
    note = f"{rate:,.0f} windows/s" + (f"; compile {compile_s:.1f}s" if compiled else "")
    ctx.add(Row(label, mfu, "%", ">=", 15.0, note=note))


def gpt_train_section(ctx: Context, size: str, compiled: bool) -> None:
    """GPT training tokens/s and MFU; compile time apart from the timed steps."""
    q = ctx.quick
    d, L = {"d384": (384, 6), "d768": (768, 12)}[size]
    config = GPTConfig(
        sequence_len=16 if q else 256,
        vocab_size=128,
        n_layer=1 if q else L,
        n_head=2 if q else d // 64,
        n_kv_head=2 if q else d // 64,
        n_embd=16 if q else d,
    )
    batch, warmup, steps = (4, 2, 3) if q else (64, 5, 25)
    torch.manual_seed(0)
    model = GPT(config)
    rng = np.random.default_rng(0)
    n_docs, length = 64, 4 * config.sequence_len
    streams = TokenStreams(
        rng.integers(0, config.vocab_size, n_docs * length),
        np.arange(0, n_docs * length + 1, length),
        tuple(f"S{i:04d}" for i in range(n_docs)),
    )
    src = TokenWindows(
        streams, config.sequence_len, [config.bos] * n_docs, stride=8, device=ctx.device
    )
    train = TrainConfig(
        max_epochs=1000,
        batch_size=batch,
        device=str(ctx.device),
        precision=bf16(ctx),
        compile="default" if compiled else False,
        patience=0,
    )
    stamps: list[float] = []

    def loss(net: Any, b: dict[str, torch.Tensor]) -> torch.Tensor:
        dev.synchronize(ctx.device)  # fit_torch syncs once per step anyway
        stamps.append(time.perf_counter())
        return net(b["x"], b["y"])

    fit_torch(model, src, loss, train, max_steps=warmup + steps + 1)
    gaps = np.diff(stamps)  # step i's time: from its loss call to the next one
    steady = float(np.median(gaps[warmup:]))
    tokens_s = batch * config.sequence_len / steady
    peak = dev.peak_flops(ctx.device, torch.bfloat16)
    mfu = 100 * model.flops_per_token() * tokens_s / peak if peak else float("nan")
    aim = 40.0 if size == "d768" else 30.0
    note = f"{tokens_s:,.0f} tokens/s" + (
        f"; compile {max(0.0, gaps[0] - steady):.1f}s" if compiled else ""
    )
    kind = "compiled" if compiled else "eager"
    ctx.add(Row(f"GPT {size} L{L} T256 B64 bf16 MFU {kind}", mfu, "%", ">=", aim, note=note))


def _random_gpt(ctx: Context, d: int, L: int) -> GPT:
    q = ctx.quick
    config = GPTConfig(
        sequence_len=32 if q else 256,
        vocab_size=128,
        n_layer=2 if q else L,
        n_head=2 if q else d // 64,
        n_kv_head=2 if q else d // 64,
        n_embd=16 if q else d,
    )
    torch.manual_seed(0)
    model = GPT(config).to(ctx.device).eval()
    with torch.no_grad():  # non-zero output projections: varied logits
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def _prompts(ctx: Context, model: GPT, n: int, length: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, model.config.vocab_size, (n, length), generator=g)
    idx[:, 0] = model.config.bos
    return idx.to(ctx.device)


def decode_section(ctx: Context) -> None:
    """GPT one-token decode steps, KV cache vs recomputation, batched sampling, equality."""
    q = ctx.quick
    fast = "auto" if ctx.cuda else "static"  # CUDA: the graph step; CPU: its static cache
    B, prompt, new = (4, 8, 6) if q else (64, 128, 127)
    model = _random_gpt(ctx, 384, 6)
    idx = _prompts(ctx, model, B, prompt)
    u = torch.rand(B, new, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", None)):
            with amp(ctx, dtype):
                run = lambda n: model.generate(idx, n, uniforms=u[:, :n], decode=fast)  # noqa: E731
                run(new)  # warm-up: captures the step for this shape
                t_all, _ = timed(lambda r=run: r(new), ctx.device)
                t_one, _ = timed(lambda r=run: r(1), ctx.device)  # prefill + first draw only
            ms = 1e3 * (t_all - t_one) / (new - 1)
            ctx.add(Row(f"GPT decode step, {B} sequences, {name}", ms, "ms/step", "<=", 1.0))
        eager = model.generate(idx, new, uniforms=u, decode="eager")
        graph = model.generate(idx, new, uniforms=u, decode=fast)
        diff = int((eager != graph).sum())
        ctx.add(Row("GPT fp32 tokens, graph step vs eager cache", diff, "differ", "==", 0))
    for d, L in ((384, 6), (768, 12)):
        model = _random_gpt(ctx, d, L)
        with torch.inference_mode(), amp(ctx, torch.bfloat16):
            model.generate(idx, new, uniforms=u, decode=fast)  # warm-up
            t_kv, _ = timed(
                lambda m=model: m.generate(idx, new, uniforms=u, decode=fast), ctx.device
            )
            t_re, _ = timed(
                lambda m=model: m.generate(idx, new, uniforms=u, use_cache=False), ctx.device
            )
        ctx.add(Row(f"GPT KV cache vs recompute, d{d} bf16", t_re / t_kv, "x", ">=", 10.0))
    model = _random_gpt(ctx, 384, 6)
    n_sym, n_paths, n_new = (10, 2, 4) if q else (500, 8, 32)
    prompts = _prompts(ctx, model, n_sym, 9 if q else 65)
    sample = lambda: model.generate(prompts, n_new, 1.0, num_samples=n_paths, decode=fast)  # noqa: E731
    with torch.inference_mode(), amp(ctx, torch.bfloat16):
        sample()  # warm-up
        t, _ = timed(sample, ctx.device)
    label = f"GPT sampling {n_sym} symbols x {n_paths} paths x {n_new} tokens"
    ctx.add(Row(label, 1e3 * t, "ms", "<=", 100.0, note="d384 L6, bf16"))


def kronos_section(ctx: Context, compiled: bool) -> None:
    """Kronos adapter: paths/s with the KV cache, recomputation, compiled; fp32 equality."""
    q = ctx.quick
    n_sym, S, T, H = (4, 4, 24, 3) if q else (64, 32, 128, 16)
    X, y = tiny_problem(n_symbols=n_sym, n_bars=T + 30, n_features=5)
    stamps = X.index.get_level_values("timestamp")
    last = X[stamps == stamps.max()]
    base = {
        "arch": "tiny" if q else "small",
        "max_context": T,
        "num_samples": S,
        "horizon": H,
        "samples_per_batch": n_sym * S,
        "device": str(ctx.device),
        "precision": "fp32",
    }
    fast = "auto" if ctx.cuda else "static"

    def paths_s(warm_up: bool = True, **over: Any) -> tuple[float, float, pd.Series]:
        # (paths/s of a warm call, first call minus warm call: capture and compile, forecasts)
        model = KronosAdapter.from_params({**base, **over}, random_state=0).fit(X, y)
        first, pred = timed(lambda: model.predict(last), ctx.device)
        warm = first
        if warm_up:
            warm, pred = timed(lambda: model.predict(last), ctx.device)
        return n_sym * S / warm, first - warm, pred

    if compiled:
        eager = ctx.memo.get("kronos_kv") or paths_s(decode=fast)[0]
        comp, compile_s, _ = paths_s(decode=fast, compile="default")
        note = f"{comp:,.0f} paths/s; compile {compile_s:.1f}s"
        ctx.add(Row("Kronos compiled / eager (KV cache)", comp / eager, "x", ">=", 1.0, note=note))
        return
    kv, _, fast_pred = paths_s(decode=fast)
    ctx.memo["kronos_kv"] = kv
    re, _, _ = paths_s(warm_up=False, use_cache=False)  # nothing to capture or compile
    note = f"{n_sym} symbols x {S} samples, fp32; recompute {re:,.0f} paths/s"
    ctx.add(Row("Kronos small KV cache paths/s", kv, "paths/s", "", None, note=note))
    ctx.add(Row("Kronos KV cache vs recompute", kv / re, "x", ">=", 1.0))
    _, _, eager_pred = paths_s(warm_up=False, decode="eager")
    diff = float(np.abs(fast_pred.to_numpy() - eager_pred.to_numpy()).max())
    ctx.add(Row("Kronos fp32 graph step vs eager cache", diff, "max |d|", "==", 0.0))


def e2e_section(ctx: Context) -> None:
    """``run_experiment`` on configs/gpu_e2e.yaml (quick: a tiny version of it), timed."""
    label = "alphaforge run 4 nets x " + ("1 fold (tiny)" if ctx.quick else "4 folds, 400x1500")
    try:
        import yaml

        from alphaforge.run import run_experiment
    except ImportError as exc:  # pydantic, yaml or a model package missing on this machine
        ctx.add(
            Row(label, None, "s", "<=", 90.0, status="skipped", note=f"{type(exc).__name__}: {exc}")
        )
        return
    config = yaml.safe_load(E2E_CONFIG.read_text())
    if ctx.quick:
        config["data"]["source"] = "synthetic:n_symbols=6,n_bars=260,seed=0"
        config["split"] = {"train": 150, "valid": 20, "test": 30, "embargo": 2, "n_folds": 1}
        config["features"] = {"cross_section": False, "names": ["ret_1", "ret_5", "rv_20"]}
        config["baselines"] = False
        tiny = {"lookback": 8, "max_epochs": 1, "device": str(ctx.device)}
        sizes = {"hidden": 8, "d_model": 8, "n_heads": 2, "batch_size": 8, "pad_assets": 8}
        for m in config["models"]:
            m["params"] = {**m["params"], **tiny}
            m["params"].update({k: v for k, v in sizes.items() if k in m["params"]})
    state: dict[str, Any] = {"t": time.perf_counter(), "epochs": 0, "fold": 0, "model": None}

    def progress(stage: str, done: int, total: int, desc: str) -> None:
        # run_experiment reports ("model", j, n, name) when model j starts, j + 1 when it ends
        if stage == "fold":
            state["fold"] = done
        elif stage == "epoch":
            state["epochs"] = done
        elif stage == "model" and state["model"] != desc:  # starts
            state.update(t=time.perf_counter(), epochs=0, model=desc)
        elif stage == "model":  # ends: one line per fold x model
            took = time.perf_counter() - state["t"]
            print(f"    e2e fold {state['fold']}: {desc} {took:.1f}s, {state['epochs']} epochs")
            state["model"] = None

    with tempfile.TemporaryDirectory() as tmp:
        try:
            elapsed, _ = timed(
                lambda: run_experiment(config, out=Path(tmp) / "run", progress=progress),
                ctx.device,
            )
        except ImportError as exc:  # a package the run needs (report, a model) is missing
            ctx.add(
                Row(
                    label,
                    None,
                    "s",
                    "<=",
                    90.0,
                    status="skipped",
                    note=f"{type(exc).__name__}: {exc}",
                )
            )
            return
    ctx.add(Row(label, elapsed, "s", "<=", 90.0, note="features included"))


# ---------------------------------------------------------------------------- driver
SECTIONS: list[tuple[str, float, Callable[[Context], None]]] = [
    # name, rough GPU seconds (for the budget), function: cheapest and eager first
    ("decode", 20, decode_section),
    ("sequence", 45, lambda c: sequence_section(c, compiled=False)),
    ("ranker", 30, lambda c: ranker_section(c, compiled=False)),
    ("gpt_train", 10, lambda c: gpt_train_section(c, "d384", compiled=False)),
    ("kronos", 25, lambda c: kronos_section(c, compiled=False)),
    ("e2e", 90, e2e_section),
    ("sequence_compiled", 45, lambda c: sequence_section(c, compiled=True)),
    ("gpt_train_compiled", 45, lambda c: gpt_train_section(c, "d384", compiled=True)),
    ("gpt_train_d768_compiled", 55, lambda c: gpt_train_section(c, "d768", compiled=True)),
    ("ranker_compiled", 50, lambda c: ranker_section(c, compiled=True)),
    ("kronos_compiled", 40, lambda c: kronos_section(c, compiled=True)),
]


def run_sections(ctx: Context, names: list[str]) -> Iterator[str]:
    for name, estimate, fn in SECTIONS:
        if names and name not in names:
            continue
        left = ctx.budget_s - ctx.elapsed()
        if not ctx.quick and left < estimate:
            ctx.add(
                Row(
                    name,
                    None,
                    "",
                    "",
                    None,
                    status="skipped",
                    note=f"time budget: {left:.0f}s left, needs ~{estimate:.0f}s",
                )
            )
            continue
        print(f"[{ctx.elapsed():6.1f}s] {name}", flush=True)
        try:
            fn(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not hide the others
            traceback.print_exc()
            ctx.add(
                Row(
                    name,
                    None,
                    "",
                    "",
                    None,
                    status="error",
                    note=f"{type(exc).__name__}: {str(exc)[:120]}",
                )
            )
        yield name


def print_table(ctx: Context) -> None:
    print(f"\n{'figure':<46} {'value':>10} {'unit':<9} {'aim':<10} {'status':<6}")
    print("-" * 86)
    for r in ctx.rows:
        print(f"{r.figure:<46} {_fmt(r.value):>10} {r.unit:<9} {r.aim:<10} {r.status:<6}")
    notes = [f"  {r.figure}: {r.note}" for r in ctx.rows if r.note]
    if notes:
        print("notes:\n" + "\n".join(notes))
    counts = {s: sum(r.status == s for r in ctx.rows) for s in ("pass", "fail", "ran")}
    print("-" * 86)
    print(
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['ran']} ran (quick), "
        f"{len(ctx.rows) - sum(counts.values())} other; {ctx.elapsed():.0f}s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes on the CPU (CI)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --quick")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--budget", type=float, default=330.0, help="seconds after which sections are skipped"
    )
    parser.add_argument("--only", default="", help="comma-separated section names")
    args = parser.parse_args(argv)
    logging.getLogger("alphaforge").setLevel(logging.WARNING)
    device = dev.resolve_device(args.device or ("cpu" if args.quick else "cuda"))
    if args.quick:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {device} ({card}), torch {torch.__version__}; quick={args.quick}; "
        f"compile cache {dev.compile_cache_dir()}",
        flush=True,
    )
    if args.quick:  # quick proves the code runs: trace with dynamo, skip inductor's C++ builds
        os.environ.setdefault("ALPHAFORGE_COMPILE_BACKEND", "eager")
    ctx = Context(device, args.quick, args.budget, time.perf_counter())
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - {n for n, _, _ in SECTIONS})
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {[n for n, _, _ in SECTIONS]}")
    for _ in run_sections(ctx, names):
        pass
    print_table(ctx)
    if args.json:
        payload = {
            "device": str(device),
            "card": card,
            "torch": torch.__version__,
            "quick": args.quick,
            "elapsed_s": ctx.elapsed(),
            "rows": [{**dataclasses.asdict(r), "aim": r.aim} for r in ctx.rows],
        }
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 1 if any(r.status == "error" for r in ctx.rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
