"""Speed and quality of the tokenized market GPT (prints figures, asserts nothing).

Run from the repository root:
    .venv/bin/python benchmarks/gpt.py                 # speed, CPU defaults: d 128, 4 layers, T 128
    .venv/bin/python benchmarks/gpt.py --compile       # CUDA: also torch.compile (MFU both ways)
    .venv/bin/python benchmarks/gpt.py --compile reduce-overhead   # another compile mode
    .venv/bin/python benchmarks/gpt.py --eval          # quality on builtin:us-stocks-5 and btc-15m

Speed (random tokens, V = 128):
- training tokens/s through ``fit_torch`` (AdamW, clipping, autocast bf16 on CUDA), the median
  step after ``--warmup`` steps, timed in one run (compilation happens in the first step and is
  printed apart); on CUDA the model FLOPs utilisation ``flops_per_token * tokens/s / peak``
  (peak: dense bf16 of the GPU from :func:`alphaforge.utils.device.peak_flops`, 989 TFLOP/s for
  H100/H200; override with ``--peak-tflops``);
- decoding: ``generate`` with the KV cache (``decode`` eager: a growing cache; static: the
  preallocated cache; graph, CUDA only: its step replayed from a CUDA graph) vs full
  recomputation for the same prompts and uniforms (tokens must be identical; the script prints
  whether they are), and ms per one-token step;
- batched sampling: 500 symbols x 8 paths x 32 new tokens from 64-token prompts.

Quality (``--eval``), per dataset, split by time 60% train / 20% valid / 20% test:
- tokenizer codebook usage, perplexity and reconstruction MAE of the VQ-VAE vs quantile bins;
- GPT next-token perplexity, top-1 and top-5 accuracy on the validation period vs the unigram
  and bigram baselines on the same targets;
- decoded forecasts (mean of sampled paths, h = 1) vs LightGBM on the feature catalogue: MAE
  and rank IC on the same test rows (one symbol: time-series Spearman instead of per-date).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from alphaforge.data import load_panel
from alphaforge.features import build_features
from alphaforge.labels import forward_return
from alphaforge.metrics import mae, rank_ic
from alphaforge.models.gpt import GPT, GPTConfig
from alphaforge.models.gpt_forecaster import (
    TokenGPTForecaster,
    TokenWindows,
    evaluate_tokens,
    train_gpt,
)
from alphaforge.models.token_analysis import bigram_baseline, unigram_baseline
from alphaforge.models.token_streams import TokenStreams
from alphaforge.models.tokenizer import (
    QuantileTokenizer,
    VQVAETokenizer,
    bar_fields,
    panel_patches,
)
from alphaforge.models.training import TrainConfig, fit_torch
from alphaforge.registry import get_model
from alphaforge.utils import device as dev
from alphaforge.utils.device import resolve_device, resolve_precision


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Any, device: torch.device) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def random_streams(n_docs: int, length: int, vocab: int, seed: int = 0) -> TokenStreams:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, n_docs * length)
    offsets = np.arange(0, n_docs * length + 1, length)
    return TokenStreams(tokens, offsets, tuple(f"S{i:04d}" for i in range(n_docs)))


# ---------------------------------------------------------------------------- speed
def bench_training(
    config: GPTConfig, args: argparse.Namespace, device: torch.device, compile_: str | bool
) -> dict[str, float]:
    torch.manual_seed(0)
    model = GPT(config)
    streams = random_streams(64, 4 * config.sequence_len, config.vocab_size)
    src = TokenWindows(
        streams,
        config.sequence_len,
        [config.bos] * 64,
        stride=config.sequence_len // 4,
        device=device,
    )
    train = TrainConfig(
        max_epochs=100,
        batch_size=args.batch_size,
        lr=1e-3,
        device=str(device),
        compile=compile_,
        patience=0,
    )
    stamps: list[float] = []

    def loss_fn(net: Any, b: dict[str, torch.Tensor]) -> torch.Tensor:
        dev.synchronize(device)  # fit_torch syncs once per step anyway
        stamps.append(time.perf_counter())
        return net(b["x"], b["y"])

    fit_torch(model, src, loss_fn, train, max_steps=args.warmup + args.steps + 1)
    gaps = np.diff(stamps)  # step i: from its loss call to the next step's
    per_step = float(np.median(gaps[args.warmup :]))
    tokens_s = args.batch_size * config.sequence_len / per_step
    row = {
        "params": model.num_params(),
        "tokens_s": tokens_s,
        "step_ms": 1e3 * per_step,
        "first_step_s": float(gaps[0]),  # compilation, allocator and kernel warm-up
    }
    peak = 1e12 * args.peak_tflops if args.peak_tflops else dev.peak_flops(device, torch.bfloat16)
    if device.type == "cuda" and peak:
        row["mfu"] = model.flops_per_token() * tokens_s / peak
    return row


@torch.inference_mode()
def bench_decoding(config: GPTConfig, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    model = GPT(config).to(device).eval()
    with torch.no_grad():  # non-zero output projections: realistic, varied logits
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    dtype = resolve_precision(device, "auto")
    ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.no_grad()
    B, prompt, new = 64, config.sequence_len // 2, config.sequence_len // 2 - 1
    idx = torch.randint(0, config.vocab_size, (B, prompt), device=device)
    idx[:, 0] = config.bos
    u = torch.rand(B, new, dtype=torch.float64)
    modes = ["eager", "static"] + (["graph"] if device.type == "cuda" else [])
    out: dict[str, Any] = {"batch": B, "prompt": prompt, "new": new}
    with ctx:
        t_one, _ = timed(lambda: model.generate(idx, 1, uniforms=u[:, :1]), device)
        for mode in modes:
            model.generate(idx, new, uniforms=u, decode=mode)  # warm-up (and graph capture)
            t, tokens = timed(lambda m=mode: model.generate(idx, new, uniforms=u, decode=m), device)
            out[f"{mode}_s"], out[f"{mode}_tokens"] = t, tokens
            out[f"{mode}_step_ms"] = 1e3 * max(0.0, t - t_one) / (new - 1)
        t_full, b = timed(lambda: model.generate(idx, new, uniforms=u, use_cache=False), device)
        prompts = torch.randint(0, config.vocab_size, (500, 65), device=device)
        prompts[:, 0] = config.bos
        sample = lambda: model.generate(prompts, 32, 1.0, num_samples=8)  # noqa: E731
        sample()  # warm-up (and graph capture on CUDA)
        t_sample, _ = timed(sample, device)
    a = out[f"{modes[-1]}_tokens"]
    out.update(
        recompute_s=t_full,
        speedup=t_full / out[f"{modes[-1]}_s"],
        fastest=modes[-1],
        identical=bool(torch.equal(a, b)),
        diff_tokens=int((a != b).sum()),
        sample_500x8x32_s=t_sample,
    )
    return out


def run_speed(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    config = GPTConfig(
        sequence_len=args.seq_len,
        vocab_size=128,
        n_layer=args.layers,
        n_head=args.heads,
        n_kv_head=args.kv_heads,
        n_embd=args.d_model,
    )
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"GPT d {args.d_model}, {args.layers} layers, {args.heads}/{args.kv_heads} heads, "
        f"T {args.seq_len}, batch {args.batch_size}"
    )
    compiled = [args.compile] if args.compile and device.type == "cuda" else []
    for compile_ in [False, *compiled]:
        row = bench_training(config, args, device, compile_)
        mfu = f", MFU {100 * row['mfu']:.1f}%" if "mfu" in row else ", MFU n/a (CPU)"
        print(
            f"train{f' (compile {compile_})' if compile_ else ''}: {row['params']:,} params, "
            f"{row['tokens_s']:,.0f} tokens/s, {row['step_ms']:.1f} ms/step{mfu}; first step "
            f"{row['first_step_s']:.1f}s (compile and warm-up)"
        )
    d = bench_decoding(config, device)
    steps = ", ".join(
        f"{m} {d[f'{m}_s']:.3f}s ({d[f'{m}_step_ms']:.2f} ms/step)"
        for m in ("eager", "static", "graph")
        if f"{m}_s" in d
    )
    print(
        f"decode {d['batch']} x ({d['prompt']} prompt + {d['new']} new): KV cache {steps}; "
        f"recompute {d['recompute_s']:.3f}s, speedup ({d['fastest']}) {d['speedup']:.1f}x, "
        f"identical tokens: {d['identical']} ({d['diff_tokens']} differ)"
    )
    print(
        f"batched sampling 500 symbols x 8 paths x 32 tokens (64-token prompts): "
        f"{d['sample_500x8x32_s']:.3f}s"
    )


# ---------------------------------------------------------------------------- quality
def run_eval(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        panel = load_panel(name)
        stamps = panel.index.get_level_values("timestamp").unique().sort_values()
        train_end, valid_end = stamps[int(0.6 * len(stamps))], stamps[int(0.8 * len(stamps))]
        print(
            f"\n== {name}: {len(panel)} bars, {panel.index.get_level_values(1).nunique()} "
            f"symbols; train <= {train_end}, valid <= {valid_end}, test after"
        )
        patches, where = panel_patches(bar_fields(panel), 1)
        ts = where["timestamp"]
        tr, te = np.asarray(ts <= train_end), np.asarray(ts > valid_end)
        toks = {}
        for kind in (VQVAETokenizer, QuantileTokenizer):
            tok = kind(random_state=0, codebook_size=args.codebook, device="cpu").fit(patches[tr])
            a, b = tok.report(patches[tr]), tok.report(patches[te])
            print(
                f"  tokenizer {kind.kind:8s}: usage {a['usage']:.3f} (test {b['usage']:.3f}), "
                f"perplexity {a['perplexity']:.1f}, MAE {a['mae']:.2e} / test {b['mae']:.2e} "
                f"(return std {b['return_std']:.2e})"
            )
            toks[kind.kind] = tok
        streams = TokenStreams.from_frame(where.assign(token=toks["vqvae"].encode(patches)))
        keep = np.asarray(streams.timestamps <= valid_end)
        upto_valid = TokenStreams.from_frame(streams.to_frame()[keep])
        train, valid = upto_valid.split(train_end)
        torch.manual_seed(0)
        gpt = GPT(
            GPTConfig(
                sequence_len=64,
                vocab_size=args.codebook,
                n_layer=2,
                n_head=4,
                n_kv_head=2,
                n_embd=64,
            )
        )
        train_gpt(
            gpt,
            train,
            valid,
            TrainConfig(
                max_epochs=args.epochs,
                batch_size=32,
                lr=2e-3,
                weight_decay=0.1,
                patience=3,
                device=str(device),
            ),
            stride=8,
        )
        rows = {
            "gpt": evaluate_tokens(gpt.eval(), valid),
            "unigram": unigram_baseline(train, valid, args.codebook),
            "bigram": bigram_baseline(train, valid, args.codebook),
        }
        for k, r in rows.items():
            print(
                f"  {k:8s} valid perplexity {r['perplexity']:7.2f}  top-1 {r['accuracy']:.4f}  "
                f"top-5 {r['top5_accuracy']:.4f}  ({r['n_tokens']} tokens"
                f"{f', {gpt.num_params():,} params' if k == 'gpt' else ''})"
            )
        forecast(panel, train_end, valid_end, args, device)
        print(f"  ({time.perf_counter() - t0:.0f}s)")


def forecast(
    panel: pd.DataFrame,
    train_end: Any,
    valid_end: Any,
    args: argparse.Namespace,
    device: torch.device,
) -> None:
    """LightGBM vs the GPT forecaster on the same test rows (h = 1)."""
    X = build_features(panel)
    y = forward_return(panel, 1)
    ts = X.index.get_level_values("timestamp")
    tr, va, te = ts <= train_end, (ts > train_end) & (ts <= valid_end), ts > valid_end
    te &= y.notna().to_numpy()
    lgb = get_model("lightgbm").from_params({"n_jobs": 1}, random_state=0)
    lgb.fit(X[tr], y[tr], valid=(X[va], y[va]))
    gpt = TokenGPTForecaster.from_params(
        {
            "codebook_size": args.codebook,
            "lookback": 32,
            "sequence_len": 64,
            "n_layer": 2,
            "n_head": 4,
            "n_kv_head": 2,
            "n_embd": 64,
            "max_epochs": args.epochs,
            "lr": 2e-3,
            "batch_size": 32,
            "stride": 8,
            "n_samples": args.samples,
            "device": str(device),
        },
        random_state=0,
    ).fit(X[tr], y[tr], valid=(X[va], y[va]))
    n_symbols = panel.index.get_level_values("symbol").nunique()
    preds = {
        "lightgbm": lgb.predict(X[tr | va | te])[te[tr | va | te]],
        "gpt": gpt.predict(X)[te],
        "zero": pd.Series(0.0, index=y[te].index),
    }
    for k, p in preds.items():
        if n_symbols > 1:
            ric, what = rank_ic(y[te], p), "rank IC"
        else:
            ric, what = p.rank().corr(y[te].rank()), "time-series Spearman"
        print(f"  forecast {k:8s}: test MAE {mae(y[te], p):.5f}, {what} {ric:+.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=["default", "reduce-overhead", "max-autotune"],
        help="CUDA: also torch.compile, in this mode",
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="bf16 dense peak (default: by GPU name)"
    )
    parser.add_argument("--eval", action="store_true", help="quality on built-in data")
    parser.add_argument("--datasets", default="builtin:us-stocks-5,builtin:btc-15m")
    parser.add_argument("--codebook", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=32, help="paths per forecast row")
    args = parser.parse_args()
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])  # pay one-time optimizer imports
    run_eval(args) if args.eval else run_speed(args)


if __name__ == "__main__":
    main()
