"""``alphaforge gpt ...``: tokenize returns, train the market GPT, sample, evaluate, analyze.

Each command parses its options and calls :mod:`alphaforge.models.tokenizer`,
:mod:`alphaforge.models.gpt` and :mod:`alphaforge.models.gpt_forecaster`; an
:class:`~alphaforge.errors.AlphaforgeError` prints one red line and exits with status 2
(:func:`alphaforge.cli.ui.guard`). Option defaults are read from the configs that declare them:
``TokenizerConfig`` (tokenize), ``GPTConfig`` (network) and the GPT forecaster's params
(training and sampling), so the command line and ``model: gpt`` agree.

Files: ``tokenize`` writes ``tokens.parquet`` (``timestamp, symbol, token``; split and tokenizer
location in the Parquet metadata) and the fitted tokenizer next to it (``tokens.tokenizer/``);
``train`` writes a model directory (``gpt.json``, ``gpt.pt``, ``tokenizer/``).
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import pandas as pd
import torch
import typer
from matplotlib.figure import Figure

from alphaforge.cli import ui
from alphaforge.data import load_panel
from alphaforge.errors import ConfigError
from alphaforge.models.gpt import GPT, GPTConfig, prefix_tokens
from alphaforge.models.gpt_forecaster import (
    TokenGPTParams,
    evaluate_tokens,
    load_gpt,
    save_gpt,
    train_gpt,
)
from alphaforge.models.token_analysis import analyze_tokens, bigram_baseline, unigram_baseline
from alphaforge.models.token_streams import TokenStreams, read_tokens, write_tokens
from alphaforge.models.tokenizer import (
    TOKENIZERS,
    TokenizerConfig,
    load_tokenizer,
    tokenize_panel,
)
from alphaforge.models.training import TrainConfig
from alphaforge.utils.device import seeded
from alphaforge.utils.io import atomic_write_bytes, atomic_write_text

# the one declaration of each default: tokenizer, network, training and sampling
_TOK, _NET, _FIT = TokenizerConfig(), GPTConfig(), TokenGPTParams()

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Tokenized market GPT: tokenize returns, train, generate, evaluate, analyze.",
)

# options several commands share, declared once
ModelDir = Annotated[Path, typer.Option("--model", help="model directory from `gpt train`")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | mps")]
Seed = Annotated[int, typer.Option(help="random seed")]
TokenFile = Annotated[Path, typer.Option(help="token file from `gpt tokenize`")]
TokenizerDir = Annotated[
    Optional[Path], typer.Option(help="tokenizer directory (default: the token file's)")
]


def _load_tokens(path: Path, tokenizer: Path | None) -> tuple[Any, dict[str, Any], Any]:
    """``(TokenStreams, meta, tokenizer or None)`` of a token file; tokenizer from meta."""
    frame, meta = read_tokens(path)
    if tokenizer is None and meta.get("tokenizer"):
        tokenizer = path.parent / meta["tokenizer"]
    tok = load_tokenizer(tokenizer) if tokenizer is not None else None
    return TokenStreams.from_frame(frame), meta, tok


def _split(streams: Any, meta: dict[str, Any], valid_from: str | None) -> tuple[Any, Any]:
    """Train / valid token streams: training up to ``valid_from`` or the tokenizer's split."""
    end = valid_from or meta.get("train_end")
    if end is None:  # no recorded split: last 20% of the timestamps are validation
        stamps = streams.timestamps.unique().sort_values()
        end = stamps[int(0.8 * (len(stamps) - 1))]
    try:
        stamp = pd.Timestamp(end)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--valid-from: expected a timestamp, got {end!r} ({exc})") from None
    return streams.split(stamp)


def _vocab(meta: dict[str, Any], tok: Any, streams: Any) -> int:
    vocab = tok.vocab_size if tok is not None else meta.get("vocab_size")
    vocab = int(vocab) if vocab is not None else int(streams.tokens.max()) + 1
    if len(streams.tokens) and streams.tokens.max() >= vocab:
        raise ConfigError(f"tokens reach {streams.tokens.max()} but the vocabulary has {vocab}")
    return vocab


@app.command("tokenize")
def tokenize_cmd(
    data: Annotated[str, typer.Option(help="CSV/Parquet file, builtin:NAME or synthetic:...")],
    out_file: Annotated[Path, typer.Option("--out", help="token file to write (.parquet)")],
    codebook: Annotated[int, typer.Option(help="vocabulary size K (codes)")] = _TOK.codebook_size,
    patch: Annotated[int, typer.Option(help="bars per token")] = _TOK.patch,
    fields: Annotated[
        str, typer.Option(help="comma-separated channels: ret[,range,volume]")
    ] = "ret",
    method: Annotated[str, typer.Option(help="vqvae | quantile")] = "vqvae",
    train_frac: Annotated[
        float, typer.Option(help="share of timestamps the tokenizer is fitted on")
    ] = 0.8,
    epochs: Annotated[int, typer.Option(help="VQ-VAE training epochs")] = _TOK.max_epochs,
    tokenizer_dir: Annotated[
        Optional[Path],
        typer.Option("--tokenizer", help="where to save the tokenizer (default OUT.tokenizer/)"),
    ] = None,
    seed: Seed = 0,
    device: Annotated[
        str, typer.Option(help="auto | cpu | cuda | mps (VQ-VAE training)")
    ] = _TOK.device,
) -> None:
    """Fit a return tokenizer on the early part of a panel and tokenize all of it."""
    names = tuple(f.strip() for f in fields.split(",") if f.strip())
    tok_dir = tokenizer_dir or out_file.with_suffix(".tokenizer")
    with ui.guard():
        if method not in TOKENIZERS:
            raise ConfigError(f"--method: expected one of {sorted(TOKENIZERS)}, got {method!r}")
        config = TokenizerConfig(
            codebook_size=codebook, patch=patch, max_epochs=epochs, device=device
        )
        tokenizer = TOKENIZERS[method](config, random_state=seed)
        with ui.spinner("tokenizing"):
            tokens, meta = tokenize_panel(
                load_panel(data, min_bars=patch + 1), tokenizer, fields=names, train_frac=train_frac
            )
            tokenizer.save(tok_dir)
            meta["tokenizer"] = os.path.relpath(tok_dir.resolve(), out_file.parent.resolve())
            write_tokens(out_file, tokens, meta)
    rep = meta["report_train"]
    ui.out.print(
        f"wrote {out_file}: {len(tokens)} tokens, {tokens['symbol'].nunique()} symbols; "
        f"tokenizer {tok_dir} ({method}, usage {rep['usage']:.2f}, perplexity "
        f"{rep['perplexity']:.1f}, MAE {rep['mae']:.3g} on training patches)"
    )


@app.command("train")
def train_cmd(
    tokens: TokenFile,
    out_dir: Annotated[Path, typer.Option("--out", help="model directory to write")],
    tokenizer: TokenizerDir = None,
    valid_from: Annotated[
        Optional[str],
        typer.Option(
            help="first validation time is after this timestamp (default: the tokenizer's training "
            "end)"
        ),
    ] = None,
    seq_len: Annotated[
        int, typer.Option(help="training window, tokens (prefix included)")
    ] = _NET.sequence_len,
    n_layer: Annotated[int, typer.Option(help="transformer blocks")] = _NET.n_layer,
    n_head: Annotated[int, typer.Option(help="query heads")] = _NET.n_head,
    n_kv_head: Annotated[
        int, typer.Option(help="key/value heads (divides n_head; < n_head is GQA)")
    ] = _NET.n_kv_head,
    n_embd: Annotated[int, typer.Option(help="embedding width")] = _NET.n_embd,
    tie: Annotated[
        bool, typer.Option(help="tie input and output embeddings")
    ] = _NET.tie_embeddings,
    symbol_tokens: Annotated[
        bool, typer.Option(help="prefix each window with a per-symbol token")
    ] = _FIT.symbol_tokens,
    dropout: Annotated[float, typer.Option(help="residual dropout")] = _NET.dropout,
    epochs: Annotated[int, typer.Option(help="passes over the training windows")] = _FIT.max_epochs,
    batch_size: Annotated[int, typer.Option(help="windows per step")] = _FIT.batch_size,
    lr: Annotated[float, typer.Option(help="peak AdamW learning rate")] = _FIT.lr,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay")] = _FIT.weight_decay,
    stride: Annotated[
        int, typer.Option(help="training window stride, tokens (0: seq_len / 2)")
    ] = _FIT.stride,
    patience: Annotated[
        int, typer.Option(help="epochs without validation improvement before stopping (0: never)")
    ] = _FIT.patience,
    device: Device = _FIT.device,
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = _FIT.precision,
    compile_: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model")
    ] = _FIT.compile,
    seed: Seed = 0,
) -> None:
    """Train the GPT on a token file (time split: training, then validation for early stopping)."""
    with ui.guard():
        streams, meta, tok = _load_tokens(tokens, tokenizer)
        train, valid = _split(streams, meta, valid_from)
        vocab = _vocab(meta, tok, streams)
        symbols = sorted(train.symbols) if symbol_tokens else []
        config = GPTConfig(
            sequence_len=seq_len,
            vocab_size=vocab,
            n_layer=n_layer,
            n_head=n_head,
            n_kv_head=n_kv_head,
            n_embd=n_embd,
            n_symbols=len(symbols),
            tie_embeddings=tie,
            dropout=dropout,
        )  # ConfigError naming the field on bad sizes
        train_config = TrainConfig(
            max_epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            device=device,
            precision=precision,
            compile=compile_,
        )
        with seeded(seed):  # weight init; the caller's RNG is restored on exit
            model = GPT(config)
        with ui.progress(f"training {model.num_params():,} parameters") as progress:
            each, windows = _epoch_progress(progress, epochs), {"stride": stride, "seed": seed}
            history = train_gpt(
                model, train, valid, train_config, symbols=symbols, **windows, on_epoch=each
            )
            scores = evaluate_tokens(model.eval(), valid, symbols=symbols)
            save_gpt(
                out_dir,
                model,
                tok,
                symbols=symbols,
                info={
                    "train_end": str(meta.get("train_end", valid_from)),
                    "history": dataclasses.asdict(history),
                    "valid": scores,
                },
            )
    ui.out.print(
        f"trained {model.num_params():,} parameters, {history.steps} steps; valid "
        f"cross-entropy {scores['cross_entropy']:.4f} (perplexity "
        f"{scores['perplexity']:.2f}, top-1 {scores['accuracy']:.3f}); wrote {out_dir}"
    )


def _epoch_progress(progress: ui.Progress_, epochs: int) -> Any:
    """``train_gpt``'s ``on_epoch``: ``progress("epoch", epoch + 1, epochs, "valid loss 2.71")``."""
    return lambda epoch, loss: progress("epoch", epoch + 1, epochs, f"valid loss {loss:.4g}")


@app.command("generate")
def generate_cmd(
    model_dir: ModelDir,
    seed_tokens: Annotated[
        str, typer.Option(help='prompt tokens, e.g. "80 81 83" (may be empty)')
    ] = "",
    num: Annotated[int, typer.Option(help="tokens to generate")] = 50,
    temperature: Annotated[
        float, typer.Option(help="softmax temperature (0: greedy)")
    ] = _FIT.temperature,
    top_k: Annotated[
        int, typer.Option(help="sample among the k most likely tokens (0: all)")
    ] = _FIT.top_k,
    samples: Annotated[int, typer.Option(help="continuations to draw")] = 1,
    symbol: Annotated[
        Optional[str],
        typer.Option(help="symbol prefix token (models trained with --symbol-tokens)"),
    ] = None,
    seed: Seed = 0,
    device: Device = "cpu",
) -> None:
    """Sample continuations of a token prompt; print tokens and their decoded cumulative return."""
    with ui.guard():
        model, tok, meta = load_gpt(model_dir, device=device)
        V = model.config.vocab_size
        try:
            prompt = [int(t) for t in seed_tokens.replace(",", " ").split()]
        except ValueError:
            raise ConfigError(
                f"--seed-tokens: expected integers separated by spaces, got {seed_tokens!r}"
            ) from None
        _check_sampling(prompt, V, num=num, samples=samples, temperature=temperature, top_k=top_k)
        prefix = prefix_tokens([symbol or ""], model.config, meta.get("symbols", ()))
        prompt = prompt[-(model.config.sequence_len - 1) :]  # the latest that fit after the prefix
        idx = torch.tensor([[int(prefix[0]), *prompt]], device=next(model.parameters()).device)
        gen = torch.Generator().manual_seed(seed)
        new = (
            model.generate(idx, num, temperature, top_k or None, gen, num_samples=samples)
            .cpu()
            .numpy()
        )
    for i, row in enumerate(new):
        line = f"sample {i}: " + " ".join(map(str, row))
        if tok is not None:
            line += f"  | cumulative return {np.sum(tok.decode_returns(row)):+.4%}"
        ui.out.print(line, soft_wrap=True)


def _check_sampling(prompt: list[int], vocab: int, **options: float) -> None:
    """Raise a :class:`ConfigError` naming the first broken input of ``gpt generate`` only.

    Args:
        prompt: Prompt tokens, each in ``[0, vocab)``.
        vocab: The model's vocabulary size.
        **options: ``num`` and ``samples`` (>= 1), ``temperature`` and ``top_k`` (>= 0).
    """
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        raise ConfigError(f"need tokens in [0, {vocab}) in --seed-tokens, got {bad}")
    least = {"num": 1, "samples": 1, "temperature": 0, "top_k": 0}
    for name, value in options.items():
        if value < least[name]:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag}: need >= {least[name]}, got {value:g}")


@app.command("evaluate")
def evaluate_cmd(
    model_dir: ModelDir,
    tokens: Annotated[Path, typer.Option(help="token file (same tokenizer as the model)")],
    valid_from: Annotated[
        Optional[str],
        typer.Option(help="score tokens after this timestamp (default: the model's training end)"),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="windows per forward pass")] = 64,
    device: Device = "cpu",
) -> None:
    """Next-token cross-entropy, perplexity, top-1/top-5 accuracy vs unigram and bigram."""
    with ui.guard():
        model, _, meta = load_gpt(model_dir, device=device)
        streams, tok_meta, _ = _load_tokens(tokens, None)
        split_meta = {"train_end": meta.get("train_end") or tok_meta.get("train_end")}
        train, valid = _split(streams, split_meta, valid_from)
        V = model.config.vocab_size
        if streams.tokens.max() >= V:
            raise ConfigError(
                f"tokens reach {streams.tokens.max()} but the model's vocabulary "
                f"has {V}: was it trained on this tokenizer?"
            )
        rows = {
            "gpt": evaluate_tokens(
                model, valid, symbols=meta.get("symbols", ()), batch_size=batch_size
            ),
            "unigram": unigram_baseline(train, valid, V),
            "bigram": bigram_baseline(train, valid, V),
        }
    table = ui.new_table(f"next-token metrics on {rows['gpt']['n_tokens']} validation tokens")
    heads = ["model", "params", "cross-entropy", "perplexity", "top-1", "top-5"]
    ui.add_columns(table, heads, numbers=heads[1:])
    params = {"gpt": f"{model.num_params():,}", "unigram": f"{V - 1}", "bigram": f"{V * (V - 1)}"}
    for name, r in rows.items():
        table.add_row(
            name,
            params[name],
            f"{r['cross_entropy']:.4f}",
            f"{r['perplexity']:.2f}",
            f"{r['accuracy']:.4f}",
            f"{r['top5_accuracy']:.4f}",
        )
    ui.print_table(table)


@app.command("analyze")
def analyze_cmd(
    tokens: TokenFile,
    out_dir: Annotated[
        Path, typer.Option("--out", help="directory for tables (CSV) and plots (PNG)")
    ],
    top: Annotated[int, typer.Option(help="n-grams listed per length")] = 20,
    tokenizer: TokenizerDir = None,
) -> None:
    """Token frequencies, transitions, entropy, frequent 2/3-grams and outliers, with plots."""
    with ui.guard():
        streams, meta, tok = _load_tokens(tokens, tokenizer)
        vocab = _vocab(meta, tok, streams)
        tables = analyze_tokens(streams, vocab, tok, top=top)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, frame in tables.items():
            atomic_write_text(out_dir / f"{name}.csv", frame.to_csv(index=name == "transitions"))
        plots = _plot_tables(tables, out_dir)
    ui.out.print(f"wrote {len(tables)} tables and {len(plots)} plots to {out_dir}")
    entropy = dict(zip(tables["entropy"]["metric"], tables["entropy"]["value"], strict=True))
    ui.out.print(
        f"entropy {entropy['unigram_entropy_bits']:.3f} bits (max "
        f"{entropy['max_entropy_bits']:.3f}), conditional "
        f"{entropy['conditional_entropy_bits']:.3f} bits, usage "
        f"{entropy['codebook_usage']:.2f}"
    )


def _plot_tables(tables: dict[str, Any], out_dir: Path) -> list[Path]:
    """Frequency bars (sorted and coloured by decoded return when known), transition heatmap."""
    freq, trans = tables["frequencies"], tables["transitions"]
    has_ret = "decoded_return" in freq
    order = freq.sort_values("decoded_return") if has_ret else freq
    fig = Figure(figsize=(10, 3.5))
    ax = fig.subplots()
    ax.bar(
        np.arange(len(order)),
        order["share"],
        width=1.0,
        color=np.where(order["decoded_return"] < 0, "tab:red", "tab:green")
        if has_ret
        else "tab:blue",
    )
    ax.set(
        xlabel="token (sorted by decoded return)" if has_ret else "token",
        ylabel="share",
        title="token frequencies",
    )
    written = [_save_fig(fig, out_dir / "frequencies.png")]
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    im = ax.imshow(trans.to_numpy(), cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set(xlabel="next token", ylabel="token", title="transition probabilities")
    fig.colorbar(im, ax=ax)
    written.append(_save_fig(fig, out_dir / "transitions.png"))
    return written


def _save_fig(fig: Figure, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path
