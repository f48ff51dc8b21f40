"""Training, evaluation, save/load of the market GPT, and its forecaster.

- :class:`TokenWindows`: fixed-length windows inside token documents, a
  :func:`~alphaforge.models.training.fit_torch` batch source (training windows every
  ``stride`` tokens; evaluation windows scoring each target once, with context before it).
- :func:`train_gpt` goes through ``fit_torch`` (AdamW, warmup + cosine, clipping, AMP,
  checkpoints); :func:`evaluate_tokens` gives cross-entropy, perplexity, top-1 / top-5 accuracy
  on the same targets as the unigram and bigram baselines of
  :mod:`~alphaforge.models.token_analysis`.
- :func:`save_gpt` / :func:`load_gpt`: ``gpt.json`` + ``gpt.pt`` state dict + ``tokenizer/``.
- :class:`TokenGPTForecaster`: tokenizes each symbol's returns, trains the GPT, and forecasts
  h-bar returns by sampling continuations (randomness keyed to seed, symbol and timestamp).
  Its params are composed (:func:`~alphaforge.models.params.compose_params`) from the
  tokenizer's, the network's (:class:`~alphaforge.models.gpt.GPTConfig`) and the training
  settings; only the training defaults differ from ``TrainConfig``'s (fewer, smaller-batch
  epochs with stronger weight decay and patience 3), and it early-stops on the valid token
  cross-entropy only (no ``early_stopping_metric``). ``decode`` picks how continuations are
  sampled (:meth:`~alphaforge.models.gpt.GPT.generate`): on CUDA by default from a static KV
  cache with a CUDA-graph step, reused across prediction batches of one shape.

Shapes: B batch, T tokens, V return tokens, S samples per prompt, R rows of X, L context tokens,
P bars per token.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
import torch.nn.functional as F

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, require
from alphaforge.models.decoding import DECODE_MODES
from alphaforge.models.gpt import GPT, GPTConfig, prefix_tokens
from alphaforge.models.params import Part, compose_params
from alphaforge.models.token_streams import TokenStreams
from alphaforge.models.tokenizer import (
    TOKENIZERS,
    ReturnTokenizer,
    TokenizerConfig,
    first_valid,
    load_tokenizer,
    panel_patches,
    sortable_time,
    symbol_major,
)
from alphaforge.models.training import History, TrainConfig, fit_torch
from alphaforge.utils.device import autocast, resolve_device, resolve_precision, seeded
from alphaforge.utils.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

__all__ = [
    "TokenGPTFields",
    "TokenGPTForecaster",
    "TokenGPTParams",
    "TokenWindows",
    "evaluate_tokens",
    "load_gpt",
    "save_gpt",
    "train_gpt",
]

GPT_META, GPT_WEIGHTS = "gpt.json", "gpt.pt"


# ============================================================================ data + training
class TokenWindows:
    """``fit_torch`` batch source of fixed-length windows inside documents.

    A sample covers target positions ``[start, start + T)`` of one document:
    ``x = [prefix, tok[start], ..., tok[start + T - 2]]`` and ``y = tok[start .. start + T - 1]``,
    with -1 (ignored) outside ``[t_lo, t_hi)`` and past the document's end.

    Args:
        streams: Token documents; with ``target_from`` only later positions are targets.
        seq_len: T.
        prefix: ``(D,)`` prefix token per document (:func:`prefix_tokens`).
        stride: Training windows every ``stride`` positions (plus one ending at the last token);
            0: evaluation windows, each target scored once with at least ``T // 2`` context
            tokens where the document has them.
        device: Where the tokens live.
    """

    def __init__(
        self,
        streams: TokenStreams,
        seq_len: int,
        prefix: npt.ArrayLike,
        *,
        stride: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        T = seq_len
        starts, los, his, docs = [], [], [], []
        tf = (
            streams.target_from
            if streams.target_from is not None
            else np.zeros(len(streams.symbols), dtype=np.int64)
        )
        for d, (o, n) in enumerate(zip(streams.offsets[:-1], streams.lengths, strict=True)):
            if n <= tf[d]:
                continue
            if stride > 0:  # overlapping training windows
                s = np.unique(np.r_[np.arange(0, max(n - T, 0) + 1, stride), max(n - T, 0)])
                lo, hi = np.maximum(s, tf[d]), np.minimum(s + T, n)
            else:  # evaluation: targets in chunks of T // 2, context before each chunk
                lo = np.arange(tf[d], n, max(1, T // 2))
                hi = np.minimum(lo + max(1, T // 2), n)
                s = np.maximum(hi - T, 0)
            keep = hi > lo
            starts.append(o + s[keep]), los.append(o + lo[keep]), his.append(o + hi[keep])
            docs.append(np.full(int(keep.sum()), d))
        if not starts:
            raise DataError(
                f"no token windows: {len(streams.tokens)} tokens in "
                f"{len(streams.symbols)} documents, none a target"
            )
        dev = torch.device(device)

        def as_tensor(parts: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.concatenate(parts).astype(np.int64)).to(dev)

        self.start, self.t_lo, self.t_hi = as_tensor(starts), as_tensor(los), as_tensor(his)
        self.prefix = torch.from_numpy(np.asarray(prefix, dtype=np.int64)[np.concatenate(docs)]).to(
            dev
        )
        self.tokens = torch.from_numpy(streams.tokens.astype(np.int64)).to(dev)
        self.seq_len, self._device = T, dev

    def __len__(self) -> int:
        return len(self.start)

    @property
    def device(self) -> torch.device:
        """Where the windows are gathered."""
        return self._device

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"x": (B, T), "y": (B, T)}`` int64 for samples ``idx``."""
        pos = self.start[idx, None] + torch.arange(self.seq_len, device=idx.device)  # (B, T)
        tok = self.tokens[pos.clamp(max=len(self.tokens) - 1)]
        ok = (pos >= self.t_lo[idx, None]) & (pos < self.t_hi[idx, None])
        x = torch.cat([self.prefix[idx, None], tok[:, :-1]], dim=1)  # shifted right by the prefix
        return {"x": x, "y": torch.where(ok, tok, -1)}


def train_gpt(
    model: GPT,
    train: TokenStreams,
    valid: TokenStreams | None,
    config: TrainConfig,
    *,
    symbols: Sequence[str] = (),
    stride: int = 0,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: Callable[[int, float], None] | None = None,
) -> History:
    """Train ``model`` on token documents with :func:`~alphaforge.models.training.fit_torch`.

    Args:
        model: The GPT (its ``sequence_len`` is the window length).
        train: Training documents (every position a target).
        valid: Validation documents (targets from ``target_from``; earlier tokens are context),
            or ``None``.
        config: Optimisation settings (``fit_torch``'s ``TrainConfig``).
        symbols: Symbol vocabulary of the conditioning tokens (id = position).
        stride: Training window stride; 0: ``sequence_len // 2``.
        seed: Batch order and dropout seed.
        checkpoint_dir: Passed to ``fit_torch``; with ``resume`` continues from ``last.pt``.
        resume: See ``checkpoint_dir``.
        on_epoch: ``on_epoch(epoch, valid_loss)`` after every epoch.

    Returns:
        ``fit_torch``'s per-epoch history (losses are mean cross-entropy, nats per token).
    """
    c, device = model.config, resolve_device(config.device)
    stride = stride or max(1, c.sequence_len // 2)
    src = TokenWindows(
        train,
        c.sequence_len,
        prefix_tokens(train.symbols, c, symbols),
        stride=stride,
        device=device,
    )
    val = (
        None
        if valid is None
        else TokenWindows(
            valid, c.sequence_len, prefix_tokens(valid.symbols, c, symbols), device=device
        )
    )
    return fit_torch(
        model,
        src,
        lambda net, b: net(b["x"], b["y"]),
        config,
        valid=val,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        on_epoch=on_epoch,
    )


@torch.inference_mode()
def evaluate_tokens(
    model: GPT, streams: TokenStreams, *, symbols: Sequence[str] = (), batch_size: int = 64
) -> dict[str, float]:
    """Next-token metrics of ``model`` on the targets of ``streams`` (evaluation windows).

    Returns:
        ``cross_entropy`` (nats/token), ``perplexity``, ``accuracy`` (top-1), ``top5_accuracy``,
        ``n_tokens``: the same keys as the unigram/bigram baselines, on the same targets.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    src = TokenWindows(
        streams,
        model.config.sequence_len,
        prefix_tokens(streams.symbols, model.config, symbols),
        device=device,
    )
    total = torch.zeros(4, dtype=torch.float64, device=device)  # ce sum, top1, top5, count
    for lo in range(0, len(src), batch_size):
        b = src.batch(torch.arange(lo, min(lo + batch_size, len(src)), device=device))
        logits = model(b["x"]).float()  # (B, T, V)
        ok = b["y"] >= 0
        lg, y = logits[ok], b["y"][ok]  # (m, V), (m,)
        ce = F.cross_entropy(lg, y, reduction="sum")
        rank = (lg > lg.gather(1, y[:, None])).sum(1)  # tokens strictly more likely
        total += torch.stack(
            [
                ce.double(),
                (rank == 0).sum().double(),
                (rank < 5).sum().double(),
                torch.tensor(float(len(y)), dtype=torch.float64, device=device),
            ]
        )
    model.train(was_training)
    ce, top1, top5, n = total.tolist()
    return {
        "cross_entropy": ce / n,
        "perplexity": math.exp(ce / n),
        "accuracy": top1 / n,
        "top5_accuracy": top5 / n,
        "n_tokens": int(n),
    }


def save_gpt(
    path: str | os.PathLike[str],
    model: GPT,
    tokenizer: ReturnTokenizer | None = None,
    *,
    symbols: Sequence[str] = (),
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``gpt.json``, ``gpt.pt`` (state dict) and ``tokenizer/`` into directory ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None:
        tokenizer.save(path / "tokenizer")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(path / GPT_WEIGHTS, buf.getvalue())
    meta = {
        "format": "alphaforge.gpt",
        "config": dataclasses.asdict(model.config),
        "symbols": list(symbols),
        "n_params": model.num_params(),
        **(info or {}),
    }
    atomic_write_text(path / GPT_META, json.dumps(meta, indent=1, default=str) + "\n")
    return path


def load_gpt(
    path: str | os.PathLike[str], device: str = "cpu"
) -> tuple[GPT, ReturnTokenizer | None, dict[str, Any]]:
    """Load a directory written by :func:`save_gpt`: ``(model in eval mode, tokenizer, meta)``.

    Raises:
        DataError: missing or malformed files.
    """
    path = Path(path)
    try:
        meta = json.loads((path / GPT_META).read_text(encoding="utf-8"))
        model = GPT(GPTConfig(**meta["config"]))
        model.load_state_dict(torch.load(path / GPT_WEIGHTS, map_location="cpu", weights_only=True))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise DataError(f"not a saved GPT ({type(exc).__name__}: {exc})", path=str(path)) from None
    tok = load_tokenizer(path / "tokenizer") if (path / "tokenizer").is_dir() else None
    return model.to(resolve_device(device)).eval(), tok, meta


# ============================================================================ forecaster
@dataclass(frozen=True)
class TokenGPTFields:
    """The forecaster's own fields: what it reads, how it samples, how it trains on windows."""

    return_column: str = "ret_1"  # feature holding the bar's own one-bar return
    extra_columns: tuple[str, ...] = ()  # more per-bar channels for the tokenizer (hl_range ...)
    tokenizer: Literal["vqvae", "quantile"] = "vqvae"
    horizon: int = 1  # h: forecast = sum of the next h decoded one-bar returns
    lookback: int = 64  # L: history tokens per forecast (lookback * patch bars)
    n_samples: int = 64  # S: sampled paths per row
    aggregate: Literal["mean", "median"] = "mean"
    temperature: float = 1.0
    top_k: int = 0  # 0: sample from the full distribution
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # predict_distribution columns
    symbol_tokens: bool = False  # condition on a per-symbol prefix token (unknown symbols: BOS)
    stride: int = 0  # training window stride; 0: sequence_len // 2
    predict_batch_size: int = 4096  # sequences (rows x samples) per generation batch
    decode: Literal["auto", "eager", "static", "graph"] = "auto"  # see GPT.generate

    def __post_init__(self) -> None:
        for name in ("horizon", "lookback", "n_samples", "predict_batch_size"):
            require(getattr(self, name) >= 1, self, name, "an int >= 1")
        require(self.temperature > 0, self, "temperature", "> 0")
        require(self.top_k >= 0, self, "top_k", "an int >= 0")
        require(all(0 < q < 1 for q in self.quantiles), self, "quantiles", "values in (0, 1)")
        require(self.stride >= 0, self, "stride", "an int >= 0 (0: sequence_len // 2)")
        require(self.decode in DECODE_MODES, self, "decode", f"one of {', '.join(DECODE_MODES)}")


def _check_context(params: Any) -> None:
    """The training window holds the prompt (prefix + lookback) and the sampled tokens."""
    n_new = -(-params.horizon // params.patch)
    require(
        params.lookback + n_new <= params.sequence_len,
        params,
        "sequence_len",
        f">= lookback + ceil(horizon / patch) = {params.lookback + n_new}",
    )


# the tokenizer's fields under the forecaster's names; device comes from the training device
_TOKENIZER = Part(
    TokenizerConfig,
    "tokenizer",
    keys={
        "codebook_size": "codebook_size",
        "patch": "patch",
        "max_epochs": "vq_epochs",
        "min_steps": "vq_min_steps",
        "hidden": "vq_hidden",
        "code_dim": "vq_code_dim",
    },
)

TokenGPTParams = compose_params(
    "TokenGPTParams",
    module=__name__,
    extra=(TokenGPTFields, _TOKENIZER),
    net=Part(GPTConfig, "net", exclude=("vocab_size", "n_symbols")),
    # early stopping on the token cross-entropy only: a Rank IC would need sampling every epoch
    train=Part(TrainConfig, "train", exclude=("early_stopping_metric",)),
    check=_check_context,
    defaults={"max_epochs": 10, "batch_size": 64, "weight_decay": 0.1, "patience": 3},
    doc="Params of :class:`TokenGPTForecaster`: sampling, tokenizer (``vq_*``), GPT and "
    "training fields. The GPT's ``vocab_size`` is ``codebook_size``; ``n_symbols`` comes "
    "from the training symbols when ``symbol_tokens``.",
)


class TokenGPTForecaster(BaseForecaster):
    """Forecast h-bar returns by sampling continuations of each row's tokenized return history.

    ``fit`` tokenizes the training rows' return column (tokenizer fitted on them only), trains
    the GPT on each symbol's token stream (early stopping on the valid window's tokens, with
    the training rows as their context) and ``predict`` encodes, for every row, the symbol's
    last ``lookback`` tokens at or before it, samples ``n_samples`` continuations of
    ``ceil(h / P)`` tokens (randomness keyed to seed, symbol and timestamp), decodes them to
    returns and aggregates the sums of the first h returns. Rows whose return is NaN before a
    symbol's first complete bar have no history (the prefix alone); later NaN count as 0.

    Learned state: ``tokenizer_``, ``net_`` (eval mode), ``net_config_``, ``symbols_``
    (conditioning vocabulary), ``history_``.
    """

    Config: ClassVar[type] = TokenGPTParams
    capabilities: ClassVar[Capabilities] = Capabilities(
        family="neural",
        supports_valid=True,
        early_stopping=True,
        needs_sequence=True,
        label_kinds=("return",),
        checkpointable=True,
    )
    _keep_unlabelled_rows = True  # unlabelled rows still carry return history

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        n_head = trial.suggest_categorical("n_head", [2, 4])
        return {
            "codebook_size": trial.suggest_categorical("codebook_size", [32, 64, 128]),
            "lookback": trial.suggest_categorical("lookback", [16, 32, 64]),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
            "n_embd": trial.suggest_categorical("n_embd", [64, 128, 256]),
            "n_layer": trial.suggest_int("n_layer", 2, 6),
            "n_head": n_head,
            "n_kv_head": n_head // trial.suggest_categorical("kv_groups", [1, 2]),  # GQA
            "dropout": trial.suggest_float("dropout", 0.0, 0.2),
            "lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-3, 0.3, log=True),
        }

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {
            "codebook_size": 16,
            "vq_epochs": 2,
            "vq_min_steps": 20,
            "vq_hidden": 16,
            "vq_code_dim": 4,
            "lookback": 8,
            "n_samples": 8,
            "sequence_len": 16,
            "n_layer": 1,
            "n_head": 2,
            "n_kv_head": 1,
            "n_embd": 16,
            "max_epochs": 2,
            "batch_size": 32,
            "device": "cpu",
            "predict_batch_size": 4096,
        }

    # ------------------------------------------------------------------ fit
    def _columns(self, X: pd.DataFrame) -> list[str]:
        c = self.config_
        cols = [c.return_column, *c.extra_columns]
        missing = [col for col in cols if col not in X.columns]
        if missing:
            raise ConfigError(
                f"{type(self).__name__}: column(s) {missing} not in X; it needs "
                f"the bar's return in return_column (available: "
                f"{list(X.columns)[:20]})"
            )
        return cols

    def _streams(self, X: pd.DataFrame) -> TokenStreams:
        patches, where = panel_patches(X[self._columns(X)], self.config_.patch)
        return TokenStreams.from_frame(where.assign(token=self.tokenizer_.encode(patches)))

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        cols = self._columns(X)
        patches, _ = panel_patches(X[cols], c.patch)
        tok_config = c.build("tokenizer", device=c.device)
        self.tokenizer_ = TOKENIZERS[c.tokenizer](tok_config, random_state=self.seed_).fit(
            patches, fields=cols
        )
        train = self._streams(X)
        valid_streams = None
        if valid is not None:
            X_valid = valid[0]
            new = ~X_valid.index.isin(X.index)
            if new.any():
                full = self._streams(pd.concat([X, X_valid[new]]))
                stamps = X.index.get_level_values("timestamp")
                try:
                    valid_streams = full.split(stamps.max())[1]
                except DataError:
                    valid_streams = None  # no valid token after the training rows
        self.symbols_ = sorted(train.symbols) if c.symbol_tokens else []
        self.net_config_ = c.net_config(vocab_size=c.codebook_size, n_symbols=len(self.symbols_))
        with seeded(self.seed_, resolve_device(c.device)):  # weight init; RNG restored on exit
            net = GPT(self.net_config_)
            history = train_gpt(
                net,
                train,
                valid_streams,
                c.train_config(),
                symbols=self.symbols_,
                stride=c.stride,
                seed=self.seed_,
                checkpoint_dir=self.checkpoint_dir,
                resume=self.resume and self.checkpoint_dir is not None,
                on_epoch=self.iteration_callback if valid_streams is not None else None,
            )
        self.net_ = net.eval()
        self.history_ = history.to_frame()
        logger.info(
            "%s: %d epochs, %d parameters, %d training tokens",
            type(self).__name__,
            len(self.history_),
            net.num_params(),
            len(train.tokens),
        )

    # ------------------------------------------------------------------ predict
    def _histories(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Index]:
        """Per row in symbol-major order: ``order``, history ``(R, L)`` (-1 = none, latest
        last), symbol names and timestamps."""
        c = self.config_
        frame = X[self._columns(X)]
        order, sym, ts = symbol_major(frame)
        values = frame.to_numpy(np.float64)[order]  # (R, F) symbol-major
        start = first_valid(values, sym) + c.patch - 1  # first row that ends a patch
        R, rows = len(values), np.arange(len(values))
        ends = np.flatnonzero(rows >= start)
        # encode in (timestamp, symbol) order in fixed chunks: later rows never shift earlier ones
        tmaj = np.lexsort((sym[ends], sortable_time(ts[ends])))
        patches = np.nan_to_num(values[ends[tmaj, None] - np.arange(c.patch - 1, -1, -1)])
        tok = np.full(R, -1, dtype=np.int64)
        tok[ends[tmaj]] = self.tokenizer_.encode(patches)
        back = rows[:, None] - c.patch * np.arange(c.lookback - 1, -1, -1)  # (R, L)
        ok = back >= start[:, None]
        hist = np.where(ok, tok[np.maximum(back, 0)], -1)
        names = np.asarray(frame.index.get_level_values("symbol"))[order]
        return order, hist, names, ts

    def _paths(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """``(R, S)`` sampled h-bar returns per row of X (X's row order)."""
        c = self.config_
        order, hist, names, ts = self._histories(X)
        R, L, S = len(order), c.lookback, c.n_samples
        n_new = -(-c.horizon // c.patch)
        prefix = prefix_tokens(names, self.net_config_, self.symbols_)
        u = _row_uniforms(self.seed_, names, ts, S, n_new)  # (R, S, n_new)
        table = torch.from_numpy(self.tokenizer_.decode_returns(np.arange(c.codebook_size)))
        device = next(self.net_.parameters()).device
        precision = resolve_precision(device, c.precision)
        n_hist = (hist >= 0).sum(1)
        rows_per = max(1, c.predict_batch_size // S)
        paths = np.empty((R, S), dtype=np.float64)
        tmaj = np.lexsort((names, sortable_time(ts)))  # (timestamp, symbol) order
        with torch.inference_mode(), autocast(device, precision):
            for n in np.unique(n_hist):  # one prompt length per batch: no padding inside it
                group = tmaj[n_hist[tmaj] == n]
                for lo in range(0, len(group), rows_per):
                    rows = group[lo : lo + rows_per]
                    take = np.r_[rows, np.full(rows_per - len(rows), rows[0])]  # fixed shape
                    idx = np.concatenate([prefix[take, None], hist[take, L - n :]], axis=1)
                    new = self.net_.generate(
                        torch.from_numpy(idx).to(device),
                        n_new,
                        c.temperature,
                        c.top_k or None,
                        num_samples=S,
                        uniforms=torch.from_numpy(u[take].reshape(-1, n_new)),
                        decode=c.decode,
                    )
                    bars = table[new.cpu()].reshape(len(take), S, n_new * c.patch)
                    paths[rows] = bars[: len(rows), :, : c.horizon].sum(-1).numpy()
        out = np.empty_like(paths)
        out[order] = paths
        return out

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        paths = self._paths(X)
        return np.median(paths, 1) if self.config_.aggregate == "median" else paths.mean(1)

    def predict_distribution(self, X: pd.DataFrame) -> pd.DataFrame:
        """Summary of the sampled h-bar return paths per row.

        Args:
            X: Features with the columns seen in ``fit``; row ``(t, s)`` reads rows of symbol
                ``s`` at or before ``t`` only.

        Returns:
            Frame on X's index: ``mean``, ``median``, one ``q<pct>`` column per configured
            quantile (``q10, q50, q90``) and ``vol`` (standard deviation across paths), all in
            return units over the horizon.

        Raises:
            NotFittedError: before ``fit``.
            DataError: missing columns, inf values, bad index.
        """
        X = self._checked_X(X)
        paths = self._paths(X)
        out = {"mean": paths.mean(1), "median": np.median(paths, 1)}
        for q in self.config_.quantiles:
            out[f"q{round(q * 100):02d}"] = np.quantile(paths, q, axis=1)
        out["vol"] = paths.std(1)
        return pd.DataFrame(out, index=X.index)

    # ------------------------------------------------------------------ save / load
    def _save_state(self, path: Path) -> dict[str, Any]:
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, buf)
        atomic_write_bytes(path / GPT_WEIGHTS, buf.getvalue())
        self.tokenizer_.save(path / "tokenizer")
        return {
            "net_config": dataclasses.asdict(self.net_config_),
            "symbols": self.symbols_,
            "history": self.history_.to_dict(orient="list"),
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.net_config_ = GPTConfig(**state["net_config"])
        self.symbols_ = list(state["symbols"])
        self.history_ = pd.DataFrame(state["history"])
        self.tokenizer_ = load_tokenizer(path / "tokenizer")
        net = GPT(self.net_config_)
        net.load_state_dict(torch.load(path / GPT_WEIGHTS, map_location="cpu", weights_only=True))
        self.net_ = net.to(resolve_device(self.config_.device)).eval()


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic): a counter-based RNG."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _row_uniforms(
    seed: int, symbols: np.ndarray, timestamps: pd.Index, n_samples: int, n_steps: int
) -> npt.NDArray[np.float64]:
    """``(R, S, n)`` uniforms in (0, 1), a pure function of (seed, symbol, timestamp, s, i)."""
    ts = timestamps.asi8 if isinstance(timestamps, pd.DatetimeIndex) else np.asarray(timestamps)
    key = pd.util.hash_array(np.asarray(symbols, dtype=object)) ^ _splitmix64(
        pd.util.hash_array(np.asarray(ts)) ^ np.uint64(seed)
    )
    key = _splitmix64(key)  # (R,)
    ctr = _splitmix64(np.arange(n_samples * n_steps, dtype=np.uint64)).reshape(n_samples, n_steps)
    bits = _splitmix64(key[:, None, None] ^ ctr[None])  # (R, S, n)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
