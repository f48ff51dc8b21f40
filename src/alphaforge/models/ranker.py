"""Multi-asset ranking transformer: per-asset encoders trained on cross-sectional ranking losses.

- Samples are cross-sections: a batch holds B dates with all N assets present on each,
  ``(B, N, T, C)`` backward-only windows (:class:`~alphaforge.models.windows.CrossSectionSource`),
  a ``(B, N)`` mask for assets missing on a date. Each asset's window is encoded on its own, so a
  prediction reads only its own symbol's bars at or before t; the cross-section enters through
  the loss.
- Feature gate: ``g = sigmoid(logits)`` in R^F scales the F standardised features before the
  input projection; ``lambda * ||g||_1`` (lambda ramped linearly from 0 to ``gate_l1`` over
  ``gate_warmup_steps``) goes to ``fit_torch``'s ``extra_loss`` and pushes useless features
  towards 0 (learned feature selection, cf. Louizos et al., 2018, arXiv:1712.01312, here with a
  plain sigmoid relaxation). ``logits = gate_speed * theta``: the gate learns ``gate_speed``
  times faster than the other weights under fit_torch's single AdamW learning rate.
- Input: linear projection F -> D with dropout, concatenated with Time2Vec (Kazemi et al., 2019,
  arXiv:1907.05321; one linear + k - 1 periodic features of the scaled window position) and
  re-projected to D; optional sinusoidal positional encoding on top.
- Encoder: pre-LN blocks (Xiong et al., 2020, arXiv:2002.04745), attention through
  ``F.scaled_dot_product_attention`` with padding (bars before a symbol's first bar) masked out,
  GELU MLP, optional stochastic depth (Huang et al., 2016, arXiv:1603.09382).
- Heads: one per lag l = 1..L (the forecast window starts l bars after the last observed bar),
  each pooling the sequence (last token or learned-query attention) into an MLP that predicts
  H horizons: output ``[l - 1, h - 1]`` scores the cumulative return of bars t+l .. t+l+h-1.
  On accelerators the L head MLPs run fused, as two batched matmuls over stacked weights (on
  CPU one small MLP per lag, the same numbers as before).
- Batches: B dates x N assets flattened into one encoder batch, no Python loop over dates;
  ``pad_assets`` pads every cross-section to a multiple of that many assets (masked out of the
  loss), so batch shapes stay fixed across folds for ``torch.compile``.
- Loss per (lag, horizon, date) group, on per-date z-scores of predictions and targets:
  ``alpha * Huber`` plus ``beta *`` a pairwise logistic rank loss weighted by ``|y_i - y_j|``
  (RankNet, Burges et al., 2005, with LambdaRank-style gain weights), masked and vectorised.
  Scores are unit-free: ``predict`` ranks assets within a date, it does not forecast returns.
- Early stopping: the valid loss above, or with ``early_stopping_metric="rank_ic"`` the valid
  window's mean per-date Spearman correlation of the lag-1, horizon-1 head with the label.

Shapes: B dates, N assets, T lookback, C channels (F features + observed + missing flags),
D d_model, L lags, H horizons, G = B * L * H groups.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from alphaforge.errors import DataError
from alphaforge.models.base import Capabilities, Valid, require
from alphaforge.models.params import Part, compose_params
from alphaforge.models.torch_base import (
    SEQUENCE_CAPS,
    FitRows,
    SequenceFields,
    TorchForecaster,
    check_window,
)
from alphaforge.models.transformer import (
    MLP,
    AttentionBackend,
    SelfAttention,
    check_attention,
    init_linear,
    sinusoidal,
)
from alphaforge.models.windows import CrossSectionSource, SequenceLayout

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

__all__ = [
    "CrossSectionFields",
    "RankerLossFields",
    "RankerNet",
    "RankerNetConfig",
    "RankerParams",
    "RankingTransformerForecaster",
    "horizon_targets",
    "masked_rank_ic",
    "masked_zscore",
    "pairwise_rank_loss",
    "ranking_loss",
]


# ============================================================================ targets
def horizon_targets(y: pd.Series, n_lags: int, horizons: int) -> npt.NDArray[np.float64]:
    """Multi-lag, multi-horizon training targets from the one-bar label, per symbol.

    ``y`` at row ``(t, s)`` is the one-bar forward return of symbol ``s`` from bar t to bar t+1
    (NaN where unknown). With rows counted in the symbol's own bars (its rows of ``y`` in time
    order), the target of lag ``l`` and horizon ``h`` at row t is::

        target[t, l - 1, h - 1] = y[t + l - 1] + y[t + l] + ... + y[t + l + h - 2]

    the cumulative return of bars t+l .. t+l+h-1 (exact for log returns, first order for simple
    returns). ``target[:, 0, 0]`` is ``y`` itself. A target is NaN when any of its terms is NaN
    or falls past the symbol's last row in ``y``: only values present in ``y`` are read, so
    targets built from a training window never use labels outside it.

    Args:
        y: One-bar forward returns on a ``(timestamp, symbol)`` MultiIndex, any row order.
        n_lags: L >= 1.
        horizons: H >= 1.

    Returns:
        ``(len(y), L, H)`` float64, rows in ``y``'s order.
    """
    values = y.to_numpy(dtype=np.float64, na_value=np.nan)
    t_code = pd.factorize(y.index.get_level_values("timestamp"), sort=True)[0]
    s_code = pd.factorize(y.index.get_level_values("symbol"), sort=True)[0]
    order = np.lexsort((t_code, s_code))  # grouped by symbol, then time
    ys, sym = values[order], s_code[order]
    n, k_max = len(ys), n_lags + horizons - 1  # offsets 0 .. L + H - 2 are read
    idx = np.arange(n)[:, None] + np.arange(k_max)[None, :]  # (R, K) row t + k
    inside = idx < n
    idx = np.where(inside, idx, 0)
    same = inside & (sym[idx] == sym[:, None])  # never read another symbol's labels
    shifted = np.where(same, ys[idx], np.nan)  # (R, K) y[t + k]
    bad = np.isnan(shifted)
    # prefix sums over k with a separate NaN count: target = P[l + h - 1] - P[l - 1]
    zero = np.zeros((n, 1))
    csum = np.concatenate([zero, np.cumsum(np.where(bad, 0.0, shifted), axis=1)], axis=1)
    cbad = np.concatenate([zero, np.cumsum(bad, axis=1)], axis=1)  # (R, K + 1)
    lo = np.arange(n_lags)[:, None]  # (L, 1) = l - 1
    hi = lo + np.arange(1, horizons + 1)[None, :]  # (L, H) = l + h - 1
    out = csum[:, hi] - csum[:, lo]  # (R, L, H)
    out[(cbad[:, hi] - cbad[:, lo]) > 0] = np.nan
    result = np.empty_like(out)
    result[order] = out  # back to y's row order
    return result


# ============================================================================ losses
def masked_zscore(v: torch.Tensor, mask: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Z-score each row of ``v`` over its masked entries: ``(G, N) -> (G, N)``, 0 off the mask."""
    m = mask.to(v.dtype)
    n = m.sum(-1, keepdim=True).clamp_min(1.0)
    v = torch.where(mask, v, torch.zeros_like(v))  # NaN targets off the mask must not spread
    mean = (v * m).sum(-1, keepdim=True) / n
    var = ((v - mean) ** 2 * m).sum(-1, keepdim=True) / n
    return (v - mean) * torch.rsqrt(var + eps) * m


def pairwise_rank_loss(
    scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Pairwise logistic rank loss, weighted by target gaps, averaged over groups.

    For every group g and ordered pair (i, j) of masked entries with ``targets_i > targets_j``
    the pair loss is ``|targets_i - targets_j| * log(1 + exp(-(scores_i - scores_j)))``. A
    group's loss is the sum of its pair losses over the sum of its weights; the result is the
    mean over groups with at least one such pair (0, still differentiable, if none has).
    Vectorised over all pairs at once: memory O(G N^2).

    Args:
        scores: ``(G, N)`` predicted scores (higher = expected higher target).
        targets: ``(G, N)`` targets; NaN allowed off the mask.
        mask: ``(G, N)`` bool, True where the entry takes part.

    Returns:
        Scalar loss.
    """
    s = torch.where(mask, scores, torch.zeros_like(scores))
    t = torch.where(mask, targets, torch.zeros_like(targets))
    ds = s[:, :, None] - s[:, None, :]  # (G, N, N) s_i - s_j
    dt = t[:, :, None] - t[:, None, :]  # (G, N, N) t_i - t_j
    pair = mask[:, :, None] & mask[:, None, :] & (dt > 0)  # i should rank above j
    w = torch.where(pair, dt, torch.zeros_like(dt))  # |t_i - t_j| on ordered pairs
    total_w = w.sum((1, 2))  # (G,)
    per_group = (w * F.softplus(-ds)).sum((1, 2)) / total_w.clamp_min(1e-12)
    has = (total_w > 0).to(per_group.dtype)
    return (per_group * has).sum() / has.sum().clamp_min(1.0)


def _groups(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, N, L, H)`` pred/target, ``(B, N)`` mask -> ``(G, N)`` each, groups of >= 2 assets."""
    B, N, L, H = pred.shape
    p = pred.permute(0, 2, 3, 1).reshape(-1, N)  # (G, N), G = B * L * H
    t = target.permute(0, 2, 3, 1).reshape(-1, N)
    m = mask[:, None, None, :].expand(B, L, H, N).reshape(-1, N) & torch.isfinite(t)
    m = m & (m.sum(-1, keepdim=True) >= 2)  # a lone asset has no cross-section
    return p, t, m


def ranking_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    alpha: float = 0.3,
    beta: float = 1.0,
    delta: float = 0.2,
    pointwise: Literal["huber", "mse"] = "huber",
) -> torch.Tensor:
    """``alpha * Huber(z(pred), z(target)) + beta * pairwise_rank_loss(z(pred), z(target))``.

    Z-scores are taken per (date, lag, horizon) group over the assets that are present and have
    a finite target; groups with fewer than two such assets are left out. Both parts see
    z-scored predictions, so the loss ignores the scores' scale and offset per date: learning
    does not wait for a small-initialised net to grow its output scale, and the logistic's
    temperature is fixed at unit z-score gaps.

    Args:
        pred: ``(B, N, L, H)`` scores.
        target: ``(B, N, L, H)`` targets, NaN where unknown.
        mask: ``(B, N)`` bool, False for padding assets.
        alpha: Weight of the pointwise loss on z-scores.
        beta: Weight of the pairwise rank loss (weights ``|z_i - z_j|`` of the targets).
        delta: Huber threshold, in z-score units.
        pointwise: ``"huber"`` or ``"mse"``.

    Returns:
        Scalar loss.
    """
    p, t, m = _groups(pred, target, mask)
    zt = masked_zscore(t, m)
    total = pred.new_zeros(())
    if alpha:
        zp = masked_zscore(p, m)
        point = (
            F.huber_loss(zp, zt, reduction="none", delta=delta)
            if pointwise == "huber"
            else (zp - zt) ** 2
        )  # (G, N), 0 off the mask
        total = total + alpha * (point * m).sum() / m.sum().clamp_min(1)
    if beta:
        total = total + beta * pairwise_rank_loss(masked_zscore(p, m), zt, m)
    return total


def masked_rank_ic(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Spearman correlation per row over masked entries: ``(G, N) -> (G,)``, NaN if < 2."""
    big = torch.finfo(scores.dtype).max
    ranks = []
    for v in (scores, targets):  # masked entries sort last, valid ones get ranks 0 .. n - 1
        v = torch.where(mask, v, torch.full_like(v, big))
        ranks.append(v.argsort(-1).argsort(-1).to(scores.dtype))
    a, b = (masked_zscore(r, mask) for r in ranks)
    n = mask.sum(-1).to(scores.dtype)
    ic = (a * b).sum(-1) / n.clamp_min(1)
    return torch.where(n >= 2, ic, torch.full_like(ic, float("nan")))


# ============================================================================ network
@dataclass(frozen=True)
class RankerNetConfig:
    """Size, heads and gate of a :class:`RankerNet`; the ranker's params are composed from it
    (``n_features`` and ``n_gated`` are set in ``fit``)."""

    n_features: int  # C: channels per bar
    n_gated: int  # F: leading channels that pass through the gate; channel F is "observed"
    d_model: int = 192  # D
    n_heads: int = 6  # head dim 32
    n_layers: int = 3
    dropout: float = 0.1
    ff_mult: int = 4
    drop_path: float = 0.0  # stochastic depth rate of the last block (linear from 0), <= 0.1
    time2vec: int = 4  # k
    positional: bool = False  # add a sinusoidal positional encoding
    pooling: Literal["last", "attention"] = "last"
    n_lags: int = 4  # L
    horizons: int = 20  # H
    max_len: int = 512  # must cover lookback
    gate_init: float = 2.0  # initial gate logit: sigmoid(2) = 0.88, features start open
    gate_speed: float = 10.0  # logits = gate_speed * theta: the gate learns that much faster
    attention_backend: AttentionBackend = "auto"  # SDPA kernels (utils.device.sdpa_context)

    def __post_init__(self) -> None:
        check_attention(self)
        require(0 <= self.drop_path <= 0.1, self, "drop_path", "in [0, 0.1]")
        require(self.time2vec >= 1, self, "time2vec", "an int >= 1")
        require(self.n_lags >= 1, self, "n_lags", "an int >= 1")
        require(self.horizons >= 1, self, "horizons", "an int >= 1")
        require(self.max_len >= 1, self, "max_len", "an int >= 1")
        require(self.gate_speed > 0, self, "gate_speed", "> 0")


class Time2Vec(nn.Module):
    """``(T,) -> (T, k)``: one linear and ``k - 1`` sine features of a scalar time."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(k))
        self.b = nn.Parameter(torch.randn(k))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        v = tau[:, None] * self.w + self.b  # (T, k)
        return torch.cat([v[:, :1], torch.sin(v[:, 1:])], dim=-1)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random share ``p`` of the samples."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class RankerBlock(nn.Module):
    def __init__(self, c: RankerNetConfig, drop: float) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(c.d_model), SelfAttention(c)
        self.ln2, self.mlp = nn.LayerNorm(c.d_model), MLP(c)  # GELU, ff_mult * D wide
        self.drop = drop

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        x = x + drop_path(self.attn(self.ln1(x), keep), self.drop, self.training)  # pre-LN
        return x + drop_path(self.mlp(self.ln2(x)), self.drop, self.training)


class RankerNet(nn.Module):
    """Gated pre-LN encoder over ``(B, T, C)`` windows with L lag heads of H horizons each."""

    def __init__(self, config: RankerNetConfig) -> None:
        super().__init__()
        c = self.config = config
        # Adam moves theta ~lr per step whatever its gradient's size; fit_torch has one lr
        self.gate_theta = nn.Parameter(torch.full((c.n_gated,), c.gate_init / c.gate_speed))
        self.inp = nn.Linear(c.n_features, c.d_model)  # (B, T, C) -> (B, T, D)
        self.inp_drop = nn.Dropout(c.dropout)
        self.t2v = Time2Vec(c.time2vec)
        self.mix = nn.Linear(c.d_model + c.time2vec, c.d_model)  # [proj | t2v] -> D
        if c.positional:
            self.register_buffer("pos", sinusoidal(c.max_len, c.d_model), persistent=False)
        rates = torch.linspace(0.0, c.drop_path, c.n_layers).tolist()  # deeper: dropped more
        self.blocks = nn.ModuleList(RankerBlock(c, r) for r in rates)
        self.ln_f = nn.LayerNorm(c.d_model)
        if c.pooling == "attention":  # only then: DDP rejects parameters without gradients
            self.query = nn.Parameter(torch.zeros(c.n_lags, c.d_model))  # one query per lag
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(c.d_model, c.d_model), nn.GELU(), nn.Linear(c.d_model, c.horizons)
            )
            for _ in range(c.n_lags)
        )
        self.apply(init_linear)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual projections: GPT-2 scaled init
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))
        # re-projection starts as identity on the features: a second 0.02-std layer would bury
        # them ~50x below the input-independent Time2Vec part and stall early training
        with torch.no_grad():
            self.mix.weight[:, : c.d_model].copy_(torch.eye(c.d_model))

    @property
    def gate(self) -> torch.Tensor:
        """``(F,)`` gate values in (0, 1)."""
        return torch.sigmoid(self.config.gate_speed * self.gate_theta)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, T, C) -> (B, T, D)`` states and the ``(B, T)`` real-bar mask (or None)."""
        c = self.config
        B, T, _ = x.shape
        if T > c.max_len:
            raise DataError(f"window of {T} bars is longer than max_len={c.max_len}")
        real = x[..., c.n_gated] > 0.5 if c.n_features > c.n_gated else None  # observed flag
        gated = torch.cat([x[..., : c.n_gated] * self.gate, x[..., c.n_gated :]], dim=-1)
        h = self.inp_drop(self.inp(gated))  # (B, T, D)
        tau = torch.arange(T, device=x.device, dtype=h.dtype) / max(T - 1, 1)  # 0 .. 1
        h = self.mix(torch.cat([h, self.t2v(tau).to(h.dtype).expand(B, T, -1)], dim=-1))
        if c.positional:
            h = h + self.pos[:T].to(h.dtype)
        keep = None if real is None else real[:, None, None, :]  # (B, 1, 1, T) keys to attend
        for block in self.blocks:
            h = block(h, keep)
        return self.ln_f(h), real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C) -> (B, L * H)``: column ``(l - 1) * H + h - 1`` scores lag l, horizon h."""
        h, real = self.encode(x)
        if self.config.pooling == "last":
            pooled = h[:, -1:].expand(-1, self.config.n_lags, -1)  # (B, L, D) the row's own bar
        else:
            att = torch.einsum("btd,ld->blt", h, self.query.to(h.dtype)) / math.sqrt(h.shape[-1])
            if real is not None:
                att = att.masked_fill(~real[:, None, :], float("-inf"))  # last bar is real
            pooled = torch.einsum("blt,btd->bld", att.softmax(-1), h)  # (B, L, D)
        out = self.heads_loop(pooled) if pooled.device.type == "cpu" else self.heads_fused(pooled)
        return out.flatten(1)  # (B, L, H) -> (B, L * H)

    def heads_loop(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(B, L, D) -> (B, L, H)``: lag l's head MLP on ``pooled[:, l]``, one after another."""
        return torch.stack([head(pooled[:, i]) for i, head in enumerate(self.heads)], 1)

    def heads_fused(self, pooled: torch.Tensor) -> torch.Tensor:
        """:meth:`heads_loop` as two batched matmuls over the stacked head weights."""
        first = [head[0] for head in self.heads]  # Linear(D, D) per lag
        last = [head[2] for head in self.heads]  # Linear(D, H) per lag
        w1, b1 = torch.stack([m.weight for m in first]), torch.stack([m.bias for m in first])
        w2, b2 = torch.stack([m.weight for m in last]), torch.stack([m.bias for m in last])
        z = torch.einsum("bld,led->ble", pooled, w1)  # (B, L, D)
        z = F.gelu(z + b1.to(z.dtype))
        out = torch.einsum("ble,lhe->blh", z, w2)  # (B, L, H)
        return out + b2.to(out.dtype)

    def flops_per_window(self, lookback: int) -> float:
        """Forward FLOPs of one window of ``lookback`` bars (multiply-add = 2 FLOPs).

        With T = ``lookback``, C channels, D = ``d_model``, f = ``ff_mult``, k Time2Vec
        features, L lags, H horizons and n layers::

            2 T C D + 2 T (D + k) D                  input projection, Time2Vec re-projection
            + n (8 T D^2 + 4 f T D^2 + 4 T^2 D)      qkv + out projection, MLP, QK^T and AV
            + L (2 D^2 + 2 D H)                      lag heads
            + 4 L T D                                attention pooling (pooling="attention")

        Training costs three times this (backward ~ 2 x forward): a benchmark's MFU is
        ``3 * flops_per_window * windows per second / peak FLOP/s``, counting real (date, asset)
        windows only, not padding.
        """
        c, T = self.config, lookback
        D, L = c.d_model, c.n_lags
        total = 2 * T * c.n_features * D + 2 * T * (D + c.time2vec) * D
        total += c.n_layers * (8 * T * D**2 + 4 * c.ff_mult * T * D**2 + 4 * T**2 * D)
        total += L * (2 * D**2 + 2 * D * c.horizons)
        if c.pooling == "attention":
            total += 4 * L * T * D
        return float(total)


# ============================================================================ forecaster
@dataclass(frozen=True)
class CrossSectionFields:
    """How the ranker batches cross-sections (not the network's, not the loss's)."""

    pad_assets: int = 0  # pad each date to a multiple of this many assets; 0: the largest date

    def __post_init__(self) -> None:
        require(self.pad_assets >= 0, self, "pad_assets", "an int >= 0 (0: no extra padding)")


@dataclass(frozen=True)
class RankerLossFields:
    """Loss and gate penalty fields of the ranker (not the network's)."""

    alpha: float = 0.3  # pointwise loss weight
    beta: float = 1.0  # pairwise rank loss weight
    huber_delta: float = 0.2
    gate_l1: float = 1e-3  # final L1 weight on the gate values
    gate_warmup_steps: int = 500  # optimizer steps over which the L1 weight ramps up from 0

    def __post_init__(self) -> None:
        require(
            self.alpha >= 0 and (self.alpha > 0 or self.beta > 0),
            self,
            "alpha",
            ">= 0, with alpha + beta > 0",
        )
        require(self.beta >= 0, self, "beta", ">= 0")
        require(self.huber_delta > 0, self, "huber_delta", "> 0")
        require(self.gate_l1 >= 0, self, "gate_l1", ">= 0")
        require(self.gate_warmup_steps >= 0, self, "gate_warmup_steps", "an int >= 0")


RankerParams = compose_params(
    "RankerParams",
    module=__name__,
    net=Part(RankerNetConfig, "net", exclude=("n_features", "n_gated")),
    extra=(SequenceFields, RankerLossFields, CrossSectionFields),
    check=check_window,
    defaults={"batch_size": 8, "lr": 1e-4, "weight_decay": 1e-4, "loss": "huber"},
    doc="Params of the ranker: window, network, heads, loss, gate and training. "
    "``batch_size`` counts dates (cross-sections), each with all its assets; ``loss`` "
    "picks the pointwise part on z-scores (``huber`` with ``huber_delta``, or ``mse``).",
)


_TINY = {
    "lookback": 8,
    "d_model": 16,
    "n_heads": 2,
    "n_layers": 1,
    "ff_mult": 2,
    "n_lags": 2,
    "horizons": 2,
    "max_epochs": 2,
    "batch_size": 8,
    "lr": 1e-3,
    "gate_warmup_steps": 10,
    "device": "cpu",
    "predict_batch_size": 1024,
}


class RankingTransformerForecaster(TorchForecaster):
    """Gated transformer over each asset's window, trained to rank assets within each date.

    ``fit(X, y)`` reads ``y`` as the one-bar forward return at t (return from t to t + 1, NaN
    where unknown) and builds the lag/horizon targets from it with :func:`horizon_targets`,
    using only labels inside the data passed to ``fit`` (train targets from ``y``, valid targets
    from ``valid``'s labels). ``predict`` returns the lag-1, horizon-1 score (the head matching
    the label); scores are unit-free (trained on per-date z-scores): use rank metrics, not MAE.
    :meth:`predict_all` gives every head. Early stopping uses the valid loss, or with
    ``early_stopping_metric="rank_ic"`` the mean per-date Rank IC of the lag-1, horizon-1 head
    on the valid window (``valid_metric`` in ``history_``).

    Learned state: as :class:`TorchForecaster`, plus ``gate_`` (feature gate values).
    """

    Config = RankerParams
    Net = RankerNet
    capabilities: ClassVar[Capabilities] = dataclasses.replace(
        SEQUENCE_CAPS, multi_output=True, label_kinds=("return",)
    )

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        d_model = trial.suggest_categorical("d_model", [64, 128, 192])
        return {
            "lr": trial.suggest_float("lr", 3e-5, 1e-3, log=True),
            "lookback": trial.suggest_categorical("lookback", [32, 64, 128]),
            "batch_size": trial.suggest_categorical("batch_size", [4, 8, 16]),
            "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-2, log=True),
            "d_model": d_model,
            "n_heads": d_model // 32,  # head dim 32
            "n_layers": trial.suggest_int("n_layers", 2, 4),
            "dropout": trial.suggest_float("dropout", 0.0, 0.2),
            "drop_path": trial.suggest_float("drop_path", 0.0, 0.1),
            "pooling": trial.suggest_categorical("pooling", ["last", "attention"]),
            "alpha": trial.suggest_float("alpha", 0.0, 1.0),
            "gate_l1": trial.suggest_float("gate_l1", 1e-4, 1e-2, log=True),
        }

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return dict(_TINY)

    @classmethod
    def _make_config(cls, params: Mapping[str, Any] | None) -> Any:
        # early_stop_metric ("loss" | "ic"), the ranker's own field before every torch model
        # had TrainConfig's early_stopping_metric: still read from old configs and saved models
        params = dict(params or {})
        if "early_stop_metric" in params:
            old = params.pop("early_stop_metric")
            params.setdefault("early_stopping_metric", {"ic": "rank_ic"}.get(old, old))
            if old != "loss":
                logger.warning("%s: early_stop_metric is now early_stopping_metric", cls.__name__)
        return super()._make_config(params)

    # ------------------------------------------------------------------ fit
    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        super()._fit(X, y, valid)  # TorchForecaster's loop over the hooks below
        self.gate_ = self._gate_series()
        logger.info("%s: gate sparsity %.2f", type(self).__name__, self.gate_sparsity())

    def _fit_target(self, y: pd.Series) -> None:
        if self.label_.label_kind == "volatility":
            raise DataError(
                f"{type(self).__name__}: ranks one-bar returns; got a volatility label {y.name!r}"
            )
        self.target_, self.target_mean_, self.target_scale_ = "return", 0.0, 1.0

    def _sources(self, rows: FitRows) -> tuple[Any, Any]:
        y = rows.y.to_numpy(np.float64)
        train = self._source(rows.layout, rows.index, np.arange(len(y)), y)
        if train is None:
            raise DataError(
                f"{type(self).__name__}: no training row has a finite lag/horizon "
                f"target (need labels on consecutive bars of a symbol)"
            )
        if rows.valid_rows is None or rows.valid_y is None:
            return train, None
        return train, self._source(rows.layout, rows.index, rows.valid_rows, rows.valid_y)

    def _extra_loss(self) -> Any:
        return self._gate_penalty()

    def _source(
        self,
        layout: SequenceLayout,
        index: pd.MultiIndex,
        rows: npt.NDArray[np.int64],
        y: npt.NDArray[np.float64],
    ) -> CrossSectionSource | None:
        """Cross-sections of layout ``rows`` (``index`` = the layout's rows), targets from ``y``.

        ``y`` holds the labels of ``rows`` only, so no target reads a label outside them.
        """
        c = self.config_
        targets = horizon_targets(pd.Series(y, index=index[rows]), c.n_lags, c.horizons)
        useful = np.isfinite(targets).any(axis=(1, 2))  # (n,) rows with some target
        if not useful.any():
            return None
        dates = np.asarray(index.get_level_values("timestamp"))[rows]
        return CrossSectionSource(
            layout,
            c.lookback,
            rows=rows[useful],
            dates=dates[useful],
            y=targets[useful],  # (n', L, H)
            pad_to=c.pad_assets,
        )

    def _net_config(self, n_channels: int) -> RankerNetConfig:
        return self.config_.net_config(n_features=n_channels, n_gated=self.n_features_in_)

    def _loss_fn(self) -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
        c = self.config_
        L, H = c.n_lags, c.horizons

        def loss(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            x, mask = batch["x"], batch["mask"]  # (B, N, T, C), (B, N)
            B, N = mask.shape
            pred = net(x.flatten(0, 1)).float().view(B, N, L, H)  # one encoder pass per asset
            return ranking_loss(
                pred,
                batch["y"],
                mask,
                alpha=c.alpha,
                beta=c.beta,
                delta=c.huber_delta,
                pointwise=c.loss,
            )

        return loss

    def _gate_penalty(self) -> Callable[[nn.Module, int], torch.Tensor] | None:
        c = self.config_
        if c.gate_l1 == 0:
            return None

        def penalty(net: nn.Module, step: int) -> torch.Tensor:
            ramp = min(1.0, step / c.gate_warmup_steps) if c.gate_warmup_steps else 1.0
            return (c.gate_l1 * ramp) * net.gate.sum()  # g > 0: ||g||_1 = sum(g)

        return penalty

    def _gate_series(self) -> pd.Series:
        gate = self.net_.gate.detach().cpu().double().numpy()
        return pd.Series(gate, index=self.feature_names_in_, name="gate")

    def gate_sparsity(self, threshold: float = 0.1) -> float:
        """Share of features whose gate value is below ``threshold`` (0 = every feature used).

        Raises:
            NotFittedError: before ``fit``.
        """
        self._check_is_fitted()
        return float((self.gate_.to_numpy() < threshold).mean())

    # ------------------------------------------------------------------ predict
    def _n_outputs(self) -> int:
        return self.net_config_.n_lags * self.net_config_.horizons  # (L, H) flattened

    def predict_all(self, X: pd.DataFrame) -> pd.DataFrame:
        """Scores of every lag and horizon head.

        Args:
            X: Features with the columns seen in ``fit``; row ``(t, s)`` reads rows of symbol
                ``s`` at or before ``t`` only.

        Returns:
            Float frame on X's index with columns ``lag{l}_h{h}`` (l = 1..L, h = 1..H, lag-major):
            unit-free scores of the cumulative return of bars t+l .. t+l+h-1, comparable across
            symbols at one timestamp. ``lag1_h1`` equals :meth:`predict`.

        Raises:
            NotFittedError: before ``fit``.
            DataError: missing or extra columns, inf values, bad index.
        """
        X = self._checked_X(X)
        c = self.net_config_
        columns = [
            f"lag{lag}_h{h}" for lag in range(1, c.n_lags + 1) for h in range(1, c.horizons + 1)
        ]
        return pd.DataFrame(self._outputs(X), index=X.index, columns=columns)

    # ------------------------------------------------------------------ save / load
    def _save_state(self, path: Path) -> dict[str, Any]:
        state = super()._save_state(path)  # the gate logits are in weights.pt
        return {**state, "gate": self.gate_.tolist()}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        super()._load_state(path, state)
        self.gate_ = self._gate_series()
