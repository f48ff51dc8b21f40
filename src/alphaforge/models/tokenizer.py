"""Return tokenizers: a VQ-VAE and equal-frequency quantile bins over short patches of bars.

- Input: per-bar channels, grouped into patches of P consecutive bars, ``(n, P, C)``. Channel 0
  is always the bar's return; :func:`bar_fields` builds ``ret`` (log return), ``range``
  (log high/low) and ``volume`` (log volume change) from a panel. Reconstruction errors are
  reported on channel 0, in return units.
- Normalisation: per-channel mean and standard deviation fitted on the training patches only;
  standardised values are clipped to ``[-clip, clip]`` (fat tails would otherwise own codes).
- VQ-VAE (van den Oord et al., 2017, arXiv:1711.00937): MLP encoder ``P*C -> D``, a codebook of
  K codes, MLP decoder; straight-through gradient and commitment loss ``beta ||z - sg(e)||^2``.
  The codebook is not trained by gradient: exponential moving averages of the encoder outputs
  assigned to each code move it (Razavi et al., 2019, arXiv:1906.00446). It starts from k-means
  (k-means++ seeding, Lloyd iterations) on encoder outputs of training patches, and codes whose
  EMA usage falls below ``dead_fraction`` of a fair share are restarted on random encoder
  outputs of the batch (Dhariwal et al., 2020, arXiv:2005.00341), so usage stays high. Training
  goes through ``fit_torch``; EMA updates and restarts run inside ``forward`` in training mode.
- :class:`QuantileTokenizer`: K equal-frequency bins of the patch's summed standardised return;
  a token decodes to the mean training patch of its bin. Same interface, no training.
- Token documents and files live in :mod:`~alphaforge.models.token_streams`, baselines and
  token statistics in :mod:`~alphaforge.models.token_analysis`.

Shapes: n patches, P bars per patch, C channels, K codes, D code dimension, V vocabulary (= K).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from alphaforge.errors import ConfigError, DataError, NotFittedError
from alphaforge.models.base import require
from alphaforge.models.training import TensorSource, TrainConfig, fit_torch
from alphaforge.utils.device import resolve_device, seeded
from alphaforge.utils.integrity import digest_tree, read_json, seal, verify_tree
from alphaforge.utils.io import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "FIELDS",
    "TOKENIZERS",
    "QuantileTokenizer",
    "ReturnTokenizer",
    "TokenizerConfig",
    "VQVAE",
    "VQVAETokenizer",
    "bar_fields",
    "code_perplexity",
    "codebook_usage",
    "first_valid",
    "kmeans",
    "load_tokenizer",
    "panel_patches",
    "sortable_time",
    "symbol_major",
    "tokenize_panel",
]

FIELDS = ("ret", "range", "volume")
META_FILE, WEIGHTS_FILE = "tokenizer.json", "tokenizer.pt"
_FORMAT = "alphaforge.tokenizer"


# ============================================================================ bars -> patches
def bar_fields(panel: pd.DataFrame, fields: Sequence[str] = ("ret",)) -> pd.DataFrame:
    """Per-bar tokenizer channels of a panel, each looking back one bar at most.

    Args:
        panel: Validated panel indexed by ``(timestamp, symbol)``.
        fields: From :data:`FIELDS`, ``"ret"`` first: ``ret`` = log return of ``adj_close``
            when the panel has it (splits and dividends removed), else of ``close``; ``range``
            = ``log(high / low)``; ``volume`` = ``log1p(volume_t) - log1p(volume_(t-1))``.

    Returns:
        Float frame on the panel's index, one column per field; NaN on each symbol's first bar
        for ``ret`` and ``volume``.

    Raises:
        ConfigError: unknown field, or ``ret`` not first.
    """
    fields = tuple(fields)
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or not fields or fields[0] != "ret":
        raise ConfigError(f"fields must start with 'ret' and come from {FIELDS}, got {fields}")
    by_symbol = panel.groupby(level="symbol", sort=False)
    price = "adj_close" if "adj_close" in panel.columns else "close"
    out = {}
    for f in fields:
        if f == "ret":
            p = np.log(panel[price])
            out[f] = p - by_symbol[price].shift(1).pipe(np.log)
        elif f == "range":
            out[f] = np.log(panel["high"] / panel["low"])
        else:
            lv = np.log1p(panel["volume"])
            out[f] = lv - np.log1p(by_symbol["volume"].shift(1))
    return pd.DataFrame(out, index=panel.index).astype(np.float64)


def symbol_major(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Row order sorting a ``(timestamp, symbol)`` frame by (symbol, timestamp).

    Returns:
        ``(order, codes, stamps)``: ``(R,)`` positions, then the symbol codes (sorted names)
        and the timestamps of the rows in that order.
    """
    codes, _ = pd.factorize(frame.index.get_level_values("symbol"), sort=True)
    ts = frame.index.get_level_values("timestamp")
    order = np.lexsort((sortable_time(ts), codes))
    return order, codes[order], ts[order]


def sortable_time(ts: pd.Index) -> np.ndarray:
    """Timestamps as an array ``np.lexsort`` can order (int64 nanoseconds for datetimes).

    Returns:
        ``(R,)`` array ordering like ``ts``.
    """
    return np.asarray(ts.asi8) if isinstance(ts, pd.DatetimeIndex) else np.asarray(ts)


def first_valid(values: np.ndarray, sym: np.ndarray) -> np.ndarray:
    """Per row (symbol-major order): index of its symbol's first bar with every channel finite.

    Args:
        values: ``(R, C)`` bars sorted by (symbol, timestamp).
        sym: ``(R,)`` symbol codes in the same order.

    Returns:
        ``(R,)`` int64 row index; ``R`` (past the end) for a symbol without a finite bar.
    """
    R = len(values)
    ok = np.isfinite(values).all(axis=1)
    cand = np.where(ok, np.arange(R), R)
    starts = np.flatnonzero(np.r_[True, sym[1:] != sym[:-1]])
    per_symbol = np.minimum.reduceat(cand, starts) if R else cand
    return per_symbol[np.cumsum(np.r_[True, sym[1:] != sym[:-1]]) - 1]


def panel_patches(
    frame: pd.DataFrame, patch: int = 1
) -> tuple[npt.NDArray[np.float64], pd.DataFrame]:
    """Non-overlapping patches of each symbol's bars, aligned at its first complete bar.

    Leading bars with a NaN channel (the first bar has no return) are skipped; later NaN are
    set to 0 (no move). A symbol's trailing bars that do not fill a patch are dropped.

    Args:
        frame: Bar channels (e.g. :func:`bar_fields`) on a ``(timestamp, symbol)`` index.
        patch: P, bars per patch.

    Returns:
        ``(patches, where)``: ``(n, P, C)`` float64 and a frame with ``timestamp`` (the patch's
        last bar) and ``symbol`` per patch, sorted by symbol then time.
    """
    order, sym, ts = symbol_major(frame)
    values = frame.to_numpy(np.float64)[order]  # (R, C) symbol-major
    start = first_valid(values, sym)
    R = len(values)
    keep = np.arange(R) >= start
    pos = np.arange(R) - start  # bar position since the symbol's first complete bar
    last = keep & ((pos + 1) % patch == 0)  # a patch ends here ...
    ends = np.flatnonzero(last)  # pos >= P - 1: the patch lies inside one symbol
    rows = ends[:, None] - np.arange(patch - 1, -1, -1)  # (n, P)
    patches = np.nan_to_num(values[rows], nan=0.0)
    symbols = np.asarray(frame.index.get_level_values("symbol"))[order][ends]
    return patches, pd.DataFrame({"timestamp": ts[ends], "symbol": symbols})


def tokenize_panel(
    panel: pd.DataFrame,
    tokenizer: ReturnTokenizer,
    *,
    fields: Sequence[str] = ("ret",),
    train_frac: float = 0.8,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit ``tokenizer`` on the first ``train_frac`` of the timestamps, then encode every patch.

    Args:
        panel: Validated panel.
        tokenizer: Unfitted tokenizer (its ``patch`` sets the patch length).
        fields: Channels of :func:`bar_fields`.
        train_frac: Share of the panel's timestamps whose patches fit the tokenizer (and its
            normalisation); later patches are only encoded.

    Returns:
        ``(tokens, meta)``: frame ``timestamp, symbol, token`` and a JSON-able dict with
        ``kind, vocab_size, patch, fields, train_end`` and the tokenizer's ``report`` on the
        training and later patches.

    Raises:
        ConfigError: ``train_frac`` outside (0, 1].
        DataError: no complete patch in the training period.
    """
    if not 0 < train_frac <= 1:
        raise ConfigError(f"train_frac must be in (0, 1], got {train_frac}")
    patches, where = panel_patches(bar_fields(panel, fields), tokenizer.config.patch)
    stamps = panel.index.get_level_values("timestamp").unique().sort_values()
    train_end = stamps[max(0, int(np.ceil(train_frac * len(stamps))) - 1)]
    train = np.asarray(where["timestamp"] <= train_end)
    tokenizer.fit(patches[train], fields=fields)
    tokens = where.assign(token=tokenizer.encode(patches))
    meta = {
        "kind": tokenizer.kind,
        "vocab_size": tokenizer.vocab_size,
        "patch": tokenizer.config.patch,
        "fields": list(fields),
        "train_end": str(train_end),
        "report_train": tokenizer.report(patches[train]),
    }
    if (~train).any():
        meta["report_later"] = tokenizer.report(patches[~train])
    return tokens, meta


# ============================================================================ code statistics
def codebook_usage(tokens: npt.ArrayLike, vocab_size: int) -> float:
    """Share of the ``vocab_size`` codes that occur at least once in ``tokens``."""
    t = np.asarray(tokens).ravel()
    return float(np.unique(t[t >= 0]).size / vocab_size)


def code_perplexity(tokens: npt.ArrayLike, vocab_size: int) -> float:
    """``exp(H)`` of the code frequencies (nats): K for uniform use, 1 for a single code."""
    t = np.asarray(tokens).ravel()
    p = np.bincount(t[t >= 0], minlength=vocab_size) / max(1, int((t >= 0).sum()))
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def kmeans(
    x: torch.Tensor, k: int, iters: int = 20, generator: torch.Generator | None = None
) -> torch.Tensor:
    """k-means++ seeding, then Lloyd iterations; empty clusters re-seeded at random points.

    Args:
        x: ``(n, D)`` points (any device); with ``n < k`` points are repeated with tiny noise.
        k: Number of centroids.
        iters: Lloyd iterations.
        generator: CPU generator for the seeding draws (deterministic given its seed).

    Returns:
        ``(k, D)`` centroids on ``x``'s device.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    x = x.float()
    if len(x) < k:  # too few points: jittered copies so every centroid has one
        reps = x[torch.randint(len(x), (k - len(x),), generator=g).to(x.device)]
        x = torch.cat([x, reps + 1e-3 * torch.randn(reps.shape, generator=g).to(x.device)])
    n = len(x)
    centers = x[torch.randint(n, (1,), generator=g).to(x.device)]  # (1, D)
    d2 = torch.cdist(x, centers).squeeze(1) ** 2  # (n,) distance to the nearest centre
    for _ in range(1, k):  # k-means++: next centre drawn with probability ~ d^2
        w = (d2 / d2.sum()).cpu() if d2.sum() > 0 else torch.full((n,), 1.0 / n)
        i = torch.multinomial(w, 1, generator=g).to(x.device)
        centers = torch.cat([centers, x[i]])
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1))
    for _ in range(iters):
        assign = torch.cdist(x, centers).argmin(1)  # (n,)
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float()
        empty = counts == 0
        centers = torch.where(empty[:, None], centers, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            pick = torch.randint(n, (int(empty.sum()),), generator=g).to(x.device)
            centers[empty] = x[pick]
    return centers


# ============================================================================ VQ-VAE network
@dataclass(frozen=True)
class VQVAEConfig:
    n_inputs: int  # P * C standardised values per patch
    codebook_size: int = 128  # K
    code_dim: int = 8  # D
    hidden: int = 64  # MLP width of encoder and decoder
    decay: float = 0.99  # EMA decay of code sums and counts
    dead_fraction: float = 0.03  # restart codes used < this share of a fair 1/K since last check
    restart_every: int = 10  # training steps between dead-code checks


class VQVAE(nn.Module):
    """MLP encoder, EMA codebook, MLP decoder over flattened standardised patches ``(B, P*C)``."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = nn.Sequential(
            nn.Linear(c.n_inputs, c.hidden),
            nn.GELU(),
            nn.Linear(c.hidden, c.hidden),
            nn.GELU(),
            nn.Linear(c.hidden, c.code_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(c.code_dim, c.hidden),
            nn.GELU(),
            nn.Linear(c.hidden, c.hidden),
            nn.GELU(),
            nn.Linear(c.hidden, c.n_inputs),
        )
        # buffers, not parameters: the optimiser never touches the codebook, the EMA does
        self.register_buffer("codebook", torch.randn(c.codebook_size, c.code_dim))
        self.register_buffer("ema_count", torch.ones(c.codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("usage", torch.zeros(c.codebook_size), persistent=False)
        self.steps = 0  # training forward passes, for the restart schedule
        self.restarts = 0  # codes restarted so far

    def init_codebook(self, centers: torch.Tensor) -> None:
        """Start the codebook (and its EMA state) at ``centers``, ``(K, D)``."""
        with torch.no_grad():
            self.codebook.copy_(centers)
            self.ema_sum.copy_(centers)
            self.ema_count.fill_(1.0)
            self.usage.zero_()

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D) -> (B,)`` index of the nearest code (squared Euclidean distance)."""
        cb = self.codebook
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ cb.t() + cb.pow(2).sum(1)  # (B, K)
        return d.argmin(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, P*C) -> (reconstruction (B, P*C), commitment loss (), codes (B,))``."""
        z = self.encoder(x).float()  # (B, D); fp32 distances even under autocast
        codes = self.quantize(z)
        e = self.codebook[codes]  # (B, D)
        if self.training:
            self._ema_update(z.detach(), codes)
        commit = F.mse_loss(z, e)  # e is a buffer: gradient reaches the encoder only
        z_q = z + (e - z).detach()  # straight-through: decoder sees e, encoder gets its grad
        return self.decoder(z_q), commit, codes

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        c, K = self.config, self.config.codebook_size
        counts = torch.bincount(codes, minlength=K).float()  # (K,)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, z)  # (K, D)
        self.ema_count.mul_(c.decay).add_(counts, alpha=1 - c.decay)
        self.ema_sum.mul_(c.decay).add_(sums, alpha=1 - c.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (n + K * 1e-5) * n  # Laplace: no division by 0
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        self.usage.add_(counts)
        self.steps += 1
        if self.steps % c.restart_every:
            return
        # dead: used by fewer than dead_fraction of a fair share since the last check
        dead = self.usage < c.dead_fraction * self.usage.sum() / K
        n_dead = int(dead.sum())  # one host sync every restart_every steps
        self.usage.zero_()
        if n_dead:  # restart on random batch points (global RNG: seeded by fit_torch)
            fair = len(z) / K
            pick = torch.randint(len(z), (n_dead,), device=z.device)
            new = z[pick] + 1e-2 * z.std(0) * torch.randn_like(z[pick])
            self.codebook[dead] = new
            self.ema_sum[dead] = new * fair
            self.ema_count[dead] = fair
            self.restarts += n_dead


# ============================================================================ tokenizers
@dataclass(frozen=True)
class TokenizerConfig:
    """Settings of both tokenizers (the VQ-VAE block is ignored by :class:`QuantileTokenizer`)."""

    codebook_size: int = 128  # K: vocabulary of return tokens
    patch: int = 1  # P: bars per token
    clip: float = 6.0  # standardised channels clipped to [-clip, clip]
    # VQ-VAE only
    code_dim: int = 8
    hidden: int = 64
    beta: float = 0.25  # commitment loss weight
    decay: float = 0.99
    dead_fraction: float = 0.03
    restart_every: int = 10
    kmeans_iters: int = 20
    kmeans_points: int = 20000  # training patches sampled for the k-means initialisation
    max_epochs: int = 20
    min_steps: int = 200  # small data: more epochs until this many steps (restarts need steps)
    batch_size: int = 512
    lr: float = 2e-3
    device: str = "cpu"
    encode_batch_size: int = 2048  # fixed chunk: a patch's token never depends on its neighbours

    def __post_init__(self) -> None:
        require(self.codebook_size >= 2, self, "codebook_size", "an int >= 2")
        require(self.patch >= 1, self, "patch", "an int >= 1")
        require(self.clip > 0, self, "clip", "> 0")
        for name in (
            "code_dim",
            "hidden",
            "restart_every",
            "kmeans_points",
            "max_epochs",
            "batch_size",
            "encode_batch_size",
        ):
            require(getattr(self, name) >= 1, self, name, "an int >= 1")
        require(self.beta >= 0, self, "beta", ">= 0")
        require(0 < self.decay < 1, self, "decay", "in (0, 1)")
        require(self.dead_fraction >= 0, self, "dead_fraction", ">= 0")
        require(self.kmeans_iters >= 0, self, "kmeans_iters", "an int >= 0")
        require(self.min_steps >= 0, self, "min_steps", "an int >= 0")
        require(self.lr > 0, self, "lr", "> 0")


class ReturnTokenizer:
    """Patches of bars -> integer tokens -> patches; subclasses set ``kind`` and ``_fit_codes``.

    Args:
        config: A :class:`TokenizerConfig`; ``None`` for the defaults.
        random_state: Seed of every draw ``fit`` makes.
        **overrides: Fields of :class:`TokenizerConfig` replacing those of ``config``.

    Learned state: ``mean_``, ``std_`` (``(C,)`` channel statistics of the training patches),
    ``fields_`` (channel names), ``table_`` (``(K, P, C)`` float64 decoded patch per token).
    """

    kind: ClassVar[str] = "base"

    def __init__(
        self, config: TokenizerConfig | None = None, *, random_state: int = 0, **overrides: Any
    ) -> None:
        self.config = dataclasses.replace(config or TokenizerConfig(), **overrides)
        self.random_state = random_state

    @property
    def vocab_size(self) -> int:
        """K, the number of tokens."""
        return self.config.codebook_size

    def fit(self, patches: npt.ArrayLike, fields: Sequence[str] | None = None) -> Self:
        """Fit normalisation and codes on training patches only.

        Args:
            patches: ``(n, P, C)`` finite training patches in original units (channel 0:
                returns).
            fields: Channel names for the record; default ``ret, ch1, ...``.

        Returns:
            ``self``.

        Raises:
            DataError: wrong shape, non-finite values, or no patches.
        """
        x = self._check(patches, fitted=False)
        C = x.shape[2]
        self.fields_ = (
            tuple(fields) if fields is not None else ("ret",) + tuple(f"ch{i}" for i in range(1, C))
        )
        if len(self.fields_) != C:
            raise DataError(f"{len(self.fields_)} field names for {C} channels: {self.fields_}")
        flat = x.reshape(-1, C)
        self.mean_ = flat.mean(0)
        std = flat.std(0)
        self.std_ = np.where(std > 0, std, 1.0)
        self._fit_codes(x)
        return self

    def standardise(self, patches: np.ndarray) -> np.ndarray:
        """``(n, P, C)`` original units -> clipped standardised values (same shape)."""
        z = (patches - self.mean_) / self.std_
        return np.clip(z, -self.config.clip, self.config.clip)

    def encode(self, patches: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """``(n, P, C)`` patches -> ``(n,)`` int64 tokens in ``[0, K)``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: wrong shape or non-finite values.
        """
        return self._encode(self._check(patches, fitted=True))

    def decode(self, tokens: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(...)`` tokens -> ``(..., P, C)`` patches in original units."""
        self._check_fitted()
        return self.table_[np.asarray(tokens, dtype=np.int64)]

    def decode_returns(self, tokens: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(...)`` tokens -> ``(..., P)`` bar returns (channel 0), in return units."""
        return self.decode(tokens)[..., 0]

    def reconstruction_error(self, patches: npt.ArrayLike) -> dict[str, float]:
        """MSE and MAE of ``decode(encode(patches))`` on channel 0, in return units."""
        x = self._check(patches, fitted=True)
        err = self.decode(self._encode(x))[..., 0] - x[..., 0]
        return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}

    def report(self, patches: npt.ArrayLike) -> dict[str, float]:
        """Codebook usage, perplexity, reconstruction MSE/MAE and return std of ``patches``."""
        x = self._check(patches, fitted=True)
        tokens = self._encode(x)
        return {
            "usage": codebook_usage(tokens, self.vocab_size),
            "perplexity": code_perplexity(tokens, self.vocab_size),
            **self.reconstruction_error(x),
            "return_std": float(x[..., 0].std()),
        }

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer.json`` (+ ``tokenizer.pt`` weights) into directory ``path``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": _FORMAT,
            "kind": self.kind,
            "config": dataclasses.asdict(self.config),
            "random_state": self.random_state,
            "fields": list(self.fields_),
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
            "table": self.table_.tolist(),
            "state": self._save_state(path),
        }
        if (path / WEIGHTS_FILE).is_file():  # checked by load_tokenizer before reading
            meta["files"] = {WEIGHTS_FILE: digest_tree(path)[WEIGHTS_FILE]}
        # last: marks completeness; sealed, so an altered tokenizer.json is refused
        atomic_write_text(path / META_FILE, json.dumps(seal(meta)) + "\n")
        return path

    def _save_state(self, path: Path) -> dict[str, Any]:
        return {}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------ helpers
    def _fit_codes(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def _encode(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "table_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first.")

    def _check(self, patches: npt.ArrayLike, *, fitted: bool) -> np.ndarray:
        if fitted:
            self._check_fitted()
        x = np.asarray(patches, dtype=np.float64)
        P = self.config.patch
        if x.ndim != 3 or x.shape[1] != P or (fitted and x.shape[2] != len(self.fields_)):
            want = f"(n, {P}, {len(self.fields_) if fitted else 'C'})"
            raise DataError(f"{type(self).__name__}: patches must have shape {want}, got {x.shape}")
        if not fitted and len(x) == 0:
            raise DataError(f"{type(self).__name__}: no training patches")
        if not np.isfinite(x).all():
            raise DataError(f"{type(self).__name__}: patches hold NaN or inf; expected finite")
        return x


class VQVAETokenizer(ReturnTokenizer):
    """VQ-VAE tokenizer (see the module notes). Extra learned state: ``net_`` (eval mode) and
    ``history_`` (per-epoch training losses)."""

    kind = "vqvae"

    def _net_config(self, n_inputs: int) -> VQVAEConfig:
        c = self.config
        return VQVAEConfig(
            n_inputs=n_inputs,
            codebook_size=c.codebook_size,
            code_dim=c.code_dim,
            hidden=c.hidden,
            decay=c.decay,
            dead_fraction=c.dead_fraction,
            restart_every=c.restart_every,
        )

    def _fit_codes(self, x: np.ndarray) -> None:
        c = self.config
        device = resolve_device(c.device)
        z = torch.from_numpy(self.standardise(x).reshape(len(x), -1)).float()  # (n, P*C)
        seed = int(self.random_state)
        with seeded(seed):  # CPU init, then moved: the same weights on every device
            net = VQVAE(self._net_config(z.shape[1])).to(device)
        g = torch.Generator().manual_seed(seed)
        sample = z[torch.randperm(len(z), generator=g)[: c.kmeans_points]].to(device)
        with torch.no_grad():
            net.init_codebook(kmeans(net.encoder(sample), c.codebook_size, c.kmeans_iters, g))
        beta = c.beta

        def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            recon, commit, _ = model(batch["x"])
            return F.mse_loss(recon.float(), batch["x"]) + beta * commit

        batch = min(c.batch_size, len(z))
        epochs = max(c.max_epochs, -(-c.min_steps * batch // len(z)))  # >= min_steps steps
        train = TrainConfig(
            max_epochs=epochs,
            batch_size=batch,
            lr=c.lr,
            weight_decay=0.0,
            patience=0,
            device=c.device,
            precision="fp32",
        )
        history = fit_torch(net, TensorSource({"x": z}, device=device), loss_fn, train, seed=seed)
        self.net_ = net.eval()
        self.history_ = history.to_frame()
        self.table_ = self._decode_codes()
        logger.info(
            "VQ-VAE tokenizer: %d codes, final loss %.4g",
            c.codebook_size,
            self.history_["train_loss"].iloc[-1],
        )

    @torch.no_grad()
    def _decode_codes(self) -> np.ndarray:
        out = self.net_.decoder(self.net_.codebook).double().cpu().numpy()  # (K, P*C)
        P = self.config.patch
        return out.reshape(self.vocab_size, P, -1) * self.std_ + self.mean_  # (K, P, C)

    @torch.no_grad()
    def _encode(self, x: np.ndarray) -> np.ndarray:
        device = self.net_.codebook.device
        z = torch.from_numpy(self.standardise(x).reshape(len(x), -1)).float()
        size = self.config.encode_batch_size
        out = np.empty(len(z), dtype=np.int64)
        for lo in range(0, len(z), size):
            chunk = z[lo : lo + size]
            n = len(chunk)
            if n < size:  # fixed shape: pad the last chunk (its outputs are dropped)
                chunk = torch.cat([chunk, chunk.new_zeros(size - n, chunk.shape[1])])
            codes = self.net_.quantize(self.net_.encoder(chunk.to(device)).float())
            out[lo : lo + n] = codes[:n].cpu().numpy()
        return out

    def _save_state(self, path: Path) -> dict[str, Any]:
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, buf)
        atomic_write_bytes(path / WEIGHTS_FILE, buf.getvalue())
        return {
            "net_config": dataclasses.asdict(self.net_.config),
            "history": self.history_.to_dict(orient="list"),
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        weights = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        net = VQVAE(VQVAEConfig(**state["net_config"]))
        net.load_state_dict(weights)
        self.net_ = net.to(resolve_device(self.config.device)).eval()
        self.history_ = pd.DataFrame(state["history"])


class QuantileTokenizer(ReturnTokenizer):
    """Equal-frequency bins of the patch's summed standardised return (channel 0).

    Extra learned state: ``edges_``, the ``(K - 1,)`` inner bin edges. Ties in the training data
    (many exact zero returns) can merge bins; such bins stay empty and decode to the mean patch.
    """

    kind = "quantile"

    def _score(self, x: np.ndarray) -> np.ndarray:
        return self.standardise(x)[..., 0].sum(1)  # (n,) patch return, standardised

    def _fit_codes(self, x: np.ndarray) -> None:
        K = self.vocab_size
        s = self._score(x)
        self.edges_ = np.quantile(s, np.arange(1, K) / K)  # (K - 1,)
        codes = self._encode(x)
        counts = np.bincount(codes, minlength=K)
        sums = np.zeros((K, *x.shape[1:]))
        np.add.at(sums, codes, x)
        mean = x.mean(0)
        self.table_ = np.where(
            counts[:, None, None] > 0, sums / np.maximum(counts, 1)[:, None, None], mean
        )

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges_, self._score(x), side="right").astype(np.int64)

    def _save_state(self, path: Path) -> dict[str, Any]:
        return {"edges": self.edges_.tolist()}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.edges_ = np.asarray(state["edges"], dtype=np.float64)


TOKENIZERS: dict[str, type[ReturnTokenizer]] = {
    "vqvae": VQVAETokenizer,
    "quantile": QuantileTokenizer,
}


def load_tokenizer(path: str | os.PathLike[str]) -> ReturnTokenizer:
    """Load a tokenizer saved by :meth:`ReturnTokenizer.save` (no pickle).

    Raises:
        DataError: missing or malformed files.
    """
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise DataError(f"not a saved tokenizer: no {META_FILE}", path=str(path))
    meta = read_json(path / META_FILE, what="saved tokenizer's metadata")
    try:
        klass = TOKENIZERS[meta["kind"]]
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"not a saved tokenizer ({type(exc).__name__}: {exc})", path=str(path)
        ) from None
    verify_tree(path, meta.get("files", {}), what="saved tokenizer")
    if meta.get("format") != _FORMAT:
        raise DataError(f"not a saved tokenizer (format {meta.get('format')!r})", path=str(path))
    tok = klass(TokenizerConfig(**meta["config"]), random_state=meta["random_state"])
    tok.fields_ = tuple(meta["fields"])
    tok.mean_ = np.asarray(meta["mean"], dtype=np.float64)
    tok.std_ = np.asarray(meta["std"], dtype=np.float64)
    tok.table_ = np.asarray(meta["table"], dtype=np.float64)
    tok._load_state(path, meta["state"])
    return tok
