"""Kronos network: tokenizer, predictor and sampling (the adapter is in ``kronos.py``).

A decoder-only foundation model over tokenised OHLCV candles.

Shi et al., 2025, "Kronos: A Foundation Model for the Language of Financial Markets",
arXiv:2508.02739.

Our own implementation of the published architecture, state-dict compatible with the released
``NeoQuasar/Kronos-{mini,small,base}`` and ``Kronos-Tokenizer-{2k,base}`` checkpoints (same
parameter names and shapes; read with ``safetensors``, never downloaded):

- Tokenizer: a causal pre-RMSNorm transformer encoder over normalised OHLCV+amount candles
  (``d_in = 6``), a linear map to ``s1_bits + s2_bits`` dims, and Binary Spherical Quantisation
  (Zhao et al., 2024, arXiv:2406.07548): the sign of each dim is one bit. The first ``s1_bits``
  form the coarse token, the rest the fine token (bit ``i`` weighs ``2**i``). Decoding maps the
  bits (``+-1 / sqrt(codebook)``) back through a causal transformer decoder to candles.
  Quirks kept because the released weights depend on them: ``n_enc_layers`` and
  ``n_dec_layers`` hold one block *fewer* than their names say, and decoding splits both halves
  with ``codebook_dim // 2`` bits (so ``s1_bits == s2_bits``).
- Predictor: hierarchical token embedding (coarse and fine tables, each scaled by
  ``sqrt(d_model)``, fused by a linear layer) plus learned calendar embeddings (minute, hour,
  weekday, day, month); causal pre-RMSNorm blocks with rotary attention (RoPE, Su et al., 2021,
  arXiv:2104.09864) and SwiGLU MLPs; a coarse head, then a dependency-aware layer (the sampled
  coarse token's embedding cross-attends to the hidden states; at inference its rotary angles
  are all zero) and a fine head conditioned on the coarse token.
- Sampling (ours): temperature, then top-k, then nucleus top-p on what top-k kept (both, not
  one or the other), then inverse-CDF draws from counter-based uniforms (one coarse and one fine
  draw per step and sample). KV cache: the context is encoded once per series and shared by all
  samples (prefix keys ``(B, nh, T, hd)``, per-sample keys ``(B, S, nh, k, hd)``); the
  tokenizer decoder reuses the same shared-prefix cache. ``use_cache=False`` recomputes the whole
  window at every step, as the reference implementation does (also when the window slides).
- Context slicing: a row reads its last ``max_context`` bars, and those same bars are the
  normalisation window (mean/std per channel, ``(x - mean) / (std + 1e-5)``, clipped to
  ``+-clip``); the model attends to at most ``max_context + horizon`` tokens.

Shapes: B series, S samples, T context bars, H horizon, D d_model, nh heads, hd head dim,
V1/V2 coarse/fine vocabularies.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from alphaforge.errors import ConfigError

__all__ = [
    "KRONOS_ARCHS",
    "KronosModelConfig",
    "KronosNet",
    "KronosTokenizerConfig",
    "kronos_generate",
    "sample_tokens",
]


# ============================================================================ configs
@dataclass(frozen=True)
class KronosTokenizerConfig:
    """Tokenizer config; field names are those of the released ``config.json``."""

    d_in: int = 6  # open, high, low, close, volume, amount
    d_model: int = 256
    n_heads: int = 4
    ff_dim: int = 512
    n_enc_layers: int = 4  # builds n_enc_layers - 1 blocks (released-weights quirk)
    n_dec_layers: int = 4  # builds n_dec_layers - 1 blocks
    ffn_dropout_p: float = 0.0
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.0
    s1_bits: int = 10  # coarse token bits
    s2_bits: int = 10  # fine token bits
    beta: float = 0.05  # BSQ training-loss weights (unused at inference, kept for the file)
    gamma0: float = 1.0
    gamma: float = 1.1
    zeta: float = 0.05
    group_size: int = 4


@dataclass(frozen=True)
class KronosModelConfig:
    """Predictor config; field names are those of the released ``config.json``."""

    s1_bits: int = 10
    s2_bits: int = 10
    n_layers: int = 8
    d_model: int = 512
    n_heads: int = 8
    ff_dim: int = 1024
    ffn_dropout_p: float = 0.25
    attn_dropout_p: float = 0.1
    resid_dropout_p: float = 0.25
    token_dropout_p: float = 0.1
    learn_te: bool = True  # learned calendar tables (else fixed sinusoidal ones)


def _tok(**kw: Any) -> dict[str, Any]:
    return dataclasses.asdict(KronosTokenizerConfig(**kw))


def _model(**kw: Any) -> dict[str, Any]:
    return dataclasses.asdict(KronosModelConfig(**kw))


KRONOS_ARCHS: dict[str, dict[str, dict[str, Any]]] = {
    # released shapes (4.1M / 24.7M / 102.3M predictor parameters); random init unless loaded
    "mini": {
        "tokenizer": _tok(group_size=5),
        "model": _model(
            n_layers=4,
            d_model=256,
            n_heads=4,
            ff_dim=512,
            ffn_dropout_p=0.2,
            attn_dropout_p=0.0,
            resid_dropout_p=0.2,
            token_dropout_p=0.0,
        ),
    },
    "small": {"tokenizer": _tok(), "model": _model()},
    "base": {
        "tokenizer": _tok(),
        "model": _model(
            n_layers=12,
            d_model=832,
            n_heads=16,
            ff_dim=2048,
            ffn_dropout_p=0.2,
            attn_dropout_p=0.0,
            resid_dropout_p=0.2,
            token_dropout_p=0.0,
        ),
    },
    # tests: 16-token vocabularies, one block each
    "tiny": {
        "tokenizer": _tok(
            d_model=16, n_heads=2, ff_dim=32, n_enc_layers=2, n_dec_layers=2, s1_bits=4, s2_bits=4
        ),
        "model": _model(s1_bits=4, s2_bits=4, n_layers=1, d_model=16, n_heads=2, ff_dim=32),
    },
}


# ============================================================================ building blocks
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        norm = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return norm.type_as(x) * self.weight


class Rotary(nn.Module):
    """Rotary embedding over the head dim (GPT-NeoX half rotation); ``inv_freq`` is saved."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # x (..., L, hd), pos (L,) absolute positions within the window
        freqs = pos.to(self.inv_freq.dtype)[:, None] * self.inv_freq[None, :]  # (L, hd/2)
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Attention(nn.Module):
    """Projections of a rotary multi-head attention (self- or cross-)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.q_proj, self.k_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.v_proj, self.out_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.rotary = Rotary(self.head_dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        # (..., L, D) -> (..., nh, L, hd)
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(-3, -2)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        # (..., nh, L, hd) -> (..., L, D)
        return self.out_proj(x.transpose(-3, -2).flatten(-2))


def shared_attention(
    q: torch.Tensor,
    kp: torch.Tensor,
    vp: torch.Tensor,
    prefix_valid: torch.Tensor,
    kn: torch.Tensor,
    vn: torch.Tensor,
) -> torch.Tensor:
    """Attention of per-sample queries over a shared prefix plus per-sample keys.

    Args:
        q: ``(B, S, nh, k, hd)`` the k newest positions of every sample.
        kp, vp: ``(B, nh, L, hd)`` prefix keys/values, one copy per series.
        prefix_valid: ``(B, L)`` bool, false on left padding.
        kn, vn: ``(B, S, nh, m, hd)`` per-sample keys/values, the last ``k`` being the queries'
            own positions (causal among them).

    Returns:
        ``(B, S, nh, k, hd)``.
    """
    B, S, nh, k, hd = q.shape
    L, m = kp.shape[2], kn.shape[3]
    scale = hd**-0.5
    qf = q.permute(0, 2, 1, 3, 4).reshape(B, nh, S * k, hd)
    sp = (qf @ kp.transpose(-1, -2)).view(B, nh, S, k, L).permute(0, 2, 1, 3, 4) * scale
    sp = sp.masked_fill(~prefix_valid[:, None, None, None, :], float("-inf"))
    sn = (q @ kn.transpose(-1, -2)) * scale  # (B, S, nh, k, m)
    allowed = (
        torch.arange(m, device=q.device)[None, :]
        <= (m - k) + torch.arange(k, device=q.device)[:, None]
    )  # (k, m) causal among the new positions
    sn = sn.masked_fill(~allowed, float("-inf"))
    w = torch.softmax(torch.cat([sp, sn], dim=-1), dim=-1)
    wp = w[..., :L].permute(0, 2, 1, 3, 4).reshape(B, nh, S * k, L)
    out = (wp @ vp).view(B, nh, S, k, hd).permute(0, 2, 1, 3, 4)
    return out + w[..., L:] @ vn


def causal_mask(valid: torch.Tensor) -> torch.Tensor:
    """``(N, L)`` valid keys -> ``(N, 1, L, L)`` bool mask: causal, no padding keys.

    A padding query still sees itself, so no row of the softmax is empty.
    """
    L = valid.shape[1]
    tri = torch.ones(L, L, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(L, dtype=torch.bool, device=valid.device)
    return ((tri & valid[:, None, :]) | eye)[:, None]


class Block(nn.Module):
    """Pre-RMSNorm block: causal rotary self-attention, SwiGLU MLP."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm1, self.self_attn = RMSNorm(d_model), Attention(d_model, n_heads)
        self.norm2, self.ffn = RMSNorm(d_model), SwiGLU(d_model, ff_dim)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        mask: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        # full window: x (N, L, D), mask (N, 1, L, L); appends (k, v) (N, nh, L, hd) to cache
        a = self.self_attn
        h = self.norm1(x)
        q, k, v = a.split(a.q_proj(h)), a.split(a.k_proj(h)), a.split(a.v_proj(h))
        q, k = a.rotary(q, pos), a.rotary(k, pos)
        if cache is not None:
            cache.append((k, v))
        x = x + a.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        return x + self.ffn(self.norm2(x))

    def step(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        prefix: tuple[torch.Tensor, torch.Tensor],
        prefix_valid: torch.Tensor,
        new: list[torch.Tensor | None],
    ) -> torch.Tensor:
        # k new positions per sample: x (B, S, k, D); new = [k, v] per-sample cache, updated
        a = self.self_attn
        h = self.norm1(x)
        q, k, v = a.split(a.q_proj(h)), a.split(a.k_proj(h)), a.split(a.v_proj(h))
        q, k = a.rotary(q, pos), a.rotary(k, pos)  # (B, S, nh, k, hd)
        new[0] = k if new[0] is None else torch.cat([new[0], k], dim=3)
        new[1] = v if new[1] is None else torch.cat([new[1], v], dim=3)
        x = x + a.merge(shared_attention(q, *prefix, prefix_valid, new[0], new[1]))
        return x + self.ffn(self.norm2(x))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, ff_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class _BSQBuffers(nn.Module):
    """Bit weights of the binary spherical quantiser, kept for state-dict compatibility."""

    def __init__(self, codebook_dim: int, group_size: int) -> None:
        super().__init__()
        self.register_buffer("basis", 2 ** torch.arange(codebook_dim - 1, -1, -1))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1))


class _BSQuantizer(nn.Module):
    def __init__(self, codebook_dim: int, group_size: int) -> None:
        super().__init__()
        self.bsq = _BSQBuffers(codebook_dim, group_size)


# ============================================================================ tokenizer
class KronosTokenizer(nn.Module):
    """Candles <-> (coarse, fine) tokens."""

    def __init__(self, c: KronosTokenizerConfig) -> None:
        super().__init__()
        if c.s1_bits != c.s2_bits:
            raise ConfigError(
                f"Kronos tokenizer needs s1_bits == s2_bits (decoding splits the "
                f"codebook in halves), got {c.s1_bits} and {c.s2_bits}"
            )
        self.config = c
        self.codebook_dim = c.s1_bits + c.s2_bits
        self.embed, self.head = nn.Linear(c.d_in, c.d_model), nn.Linear(c.d_model, c.d_in)
        self.encoder = nn.ModuleList(
            Block(c.d_model, c.n_heads, c.ff_dim) for _ in range(c.n_enc_layers - 1)
        )
        self.decoder = nn.ModuleList(
            Block(c.d_model, c.n_heads, c.ff_dim) for _ in range(c.n_dec_layers - 1)
        )
        self.quant_embed = nn.Linear(c.d_model, self.codebook_dim)
        self.post_quant_embed_pre = nn.Linear(c.s1_bits, c.d_model)  # trained only, kept
        self.post_quant_embed = nn.Linear(self.codebook_dim, c.d_model)
        self.tokenizer = _BSQuantizer(self.codebook_dim, c.group_size)

    def encode(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, T, d_in)`` normalised candles -> coarse and fine ids, each ``(N, T)`` int64."""
        pos = torch.arange(x.shape[1], device=x.device)
        mask = causal_mask(valid)
        z = self.embed(x)
        for block in self.encoder:
            z = block(z, pos, mask)
        bits = (self.quant_embed(z) > 0).long()  # the sign is the BSQ code
        s1 = self.config.s1_bits
        w1 = 2 ** torch.arange(s1, device=x.device)
        w2 = 2 ** torch.arange(self.codebook_dim - s1, device=x.device)
        return (bits[..., :s1] * w1).sum(-1), (bits[..., s1:] * w2).sum(-1)

    def embed_tokens(self, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """Ids -> ``(..., D)`` decoder inputs (bits as +-1 / sqrt(codebook_dim))."""
        half = torch.arange(self.codebook_dim // 2, device=s1.device)  # both halves: dim // 2
        bits = torch.cat([(s1[..., None] >> half) & 1, (s2[..., None] >> half) & 1], dim=-1)
        dtype = self.post_quant_embed.weight.dtype
        return self.post_quant_embed((bits.to(dtype) * 2 - 1) / math.sqrt(self.codebook_dim))


# ============================================================================ predictor
class HierarchicalEmbedding(nn.Module):
    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.emb_s1, self.emb_s2 = (
            nn.Embedding(2**s1_bits, d_model),
            nn.Embedding(2**s2_bits, d_model),
        )
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def forward(self, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(torch.cat([self.emb_s1(s1) * scale, self.emb_s2(s2) * scale], -1))


class FixedEmbedding(nn.Module):
    """Sinusoidal, frozen table (``learn_te=False`` checkpoints store it as ``emb.weight``)."""

    def __init__(self, n: int, d_model: int) -> None:
        super().__init__()
        pos = torch.arange(n, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model))
        w = torch.zeros(n, d_model)
        w[:, 0::2], w[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.emb = nn.Embedding(n, d_model)
        self.emb.weight = nn.Parameter(w, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x)


class TemporalEmbedding(nn.Module):
    SIZES: ClassVar[dict[str, int]] = {
        "minute": 60,
        "hour": 24,
        "weekday": 7,
        "day": 32,
        "month": 13,
    }

    def __init__(self, d_model: int, learn: bool) -> None:
        super().__init__()
        for name, n in self.SIZES.items():
            table = nn.Embedding(n, d_model) if learn else FixedEmbedding(n, d_model)
            setattr(self, f"{name}_embed", table)

    def forward(self, stamp: torch.Tensor) -> torch.Tensor:
        # stamp (..., 5): minute, hour, weekday, day, month; summed in the reference order
        return (
            self.hour_embed(stamp[..., 1])
            + self.weekday_embed(stamp[..., 2])
            + self.day_embed(stamp[..., 3])
            + self.month_embed(stamp[..., 4])
            + self.minute_embed(stamp[..., 0])
        )


class DependencyAwareLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int = 4) -> None:
        super().__init__()
        self.cross_attn, self.norm = Attention(d_model, n_heads), RMSNorm(d_model)


class DualHead(nn.Module):
    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.proj_s1 = nn.Linear(d_model, 2**s1_bits)
        self.proj_s2 = nn.Linear(d_model, 2**s2_bits)


class KronosModel(nn.Module):
    """The autoregressive predictor over (coarse, fine) tokens with calendar features."""

    def __init__(self, c: KronosModelConfig) -> None:
        super().__init__()
        self.config = c
        self.embedding = HierarchicalEmbedding(c.s1_bits, c.s2_bits, c.d_model)
        self.time_emb = TemporalEmbedding(c.d_model, c.learn_te)
        self.transformer = nn.ModuleList(
            Block(c.d_model, c.n_heads, c.ff_dim) for _ in range(c.n_layers)
        )
        self.norm = RMSNorm(c.d_model)
        self.dep_layer = DependencyAwareLayer(c.d_model)
        self.head = DualHead(c.s1_bits, c.s2_bits, c.d_model)

    def inputs(
        self, s1: torch.Tensor, s2: torch.Tensor, stamp: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.embedding(s1, s2)
        return x if stamp is None else x + self.time_emb(stamp)


class KronosNet(nn.Module):
    """Tokenizer + predictor; ``state_dict`` keys are ``tokenizer.*`` and ``model.*``."""

    def __init__(self, tokenizer: KronosTokenizerConfig, model: KronosModelConfig) -> None:
        super().__init__()
        if (tokenizer.s1_bits, tokenizer.s2_bits) != (model.s1_bits, model.s2_bits):
            raise ConfigError(
                f"Kronos tokenizer bits {(tokenizer.s1_bits, tokenizer.s2_bits)} "
                f"!= predictor bits {(model.s1_bits, model.s2_bits)}"
            )
        self.tokenizer, self.model = KronosTokenizer(tokenizer), KronosModel(model)
        self.init_weights()

    def init_weights(self) -> None:
        # the reference initialisation: xavier-normal linears, N(0, d^-1/2) token tables
        d = self.model.config.d_model
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding) and m.weight.requires_grad:
                nn.init.normal_(m.weight, std=d**-0.5)


# ============================================================================ sampling
def sample_tokens(
    logits: torch.Tensor, u: torch.Tensor, temperature: float, top_k: int, top_p: float
) -> torch.Tensor:
    """Draw one token per row of ``logits (..., V)`` from uniforms ``u (...)``.

    Temperature, then top-k (keep logits >= the k-th largest; 0: off), then top-p on the
    distribution top-k left (keep the smallest prefix of the sorted tokens whose mass before
    them is <= top_p; 1: off), then inverse-CDF sampling in vocabulary order.
    """
    logits = logits / temperature
    V = logits.shape[-1]
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, V), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sp, idx = torch.sort(probs, dim=-1, descending=True)
        before = torch.cumsum(sp, dim=-1) - sp  # mass of the more likely tokens
        probs = torch.zeros_like(probs).scatter(-1, idx, sp.masked_fill(before > top_p, 0.0))
    cdf = torch.cumsum(probs, dim=-1)
    target = (u.to(cdf.dtype) * cdf[..., -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_max(V - 1)


def kronos_generate(
    net: KronosNet,
    x: torch.Tensor,
    valid: torch.Tensor,
    stamps: torch.Tensor | None,
    u: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.9,
    window: int = 512,
    use_cache: bool = True,
) -> torch.Tensor:
    """Sample ``S`` futures of ``H`` candles per series.

    Args:
        net: The network.
        x: ``(B, T, d_in)`` normalised, clipped candles (any value on padding).
        valid: ``(B, T)`` bool, false on left padding.
        stamps: ``(B, T + H, 5)`` int64 calendar fields of the context and forecast bars, or
            ``None`` (no calendar embedding).
        u: ``(B, S, H, 2)`` uniforms: coarse and fine draw of each step of each sample.
        temperature, top_k, top_p: See :func:`sample_tokens`.
        window: Most tokens the predictor and the decoder attend to (the reference's
            ``max_context``); older tokens drop out of the window.
        use_cache: Shared-prefix KV cache; falls back to recomputation if the window slides.

    Returns:
        ``(B, S, H, d_in)`` normalised candles.
    """
    T, H = x.shape[1], u.shape[2]
    s1c, s2c = net.tokenizer.encode(x, valid)  # (B, T) each
    ctx = _Encoded(s1c, s2c, valid, stamps)
    draw = functools.partial(sample_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    if use_cache and T + H <= window:
        return _generate_cached(net, ctx, u, draw)
    return _generate_full(net, ctx, u, draw, window)


@dataclass(frozen=True)
class _Encoded:
    """A batch's context as tokens: coarse and fine ids and validity ``(B, T)``, calendar."""

    s1: torch.Tensor
    s2: torch.Tensor
    valid: torch.Tensor
    stamps: torch.Tensor | None  # (B, T + H, 5) or None


#: ``draw(logits (..., V), u (...)) -> tokens (...)``: :func:`sample_tokens` with its settings
Draw = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _cross(
    dep: DependencyAwareLayer,
    s1_emb: torch.Tensor,
    last: torch.Tensor,
    keys: tuple[torch.Tensor, ...],
    valid: torch.Tensor | None,
) -> torch.Tensor:
    """Fine-token features: ``norm(last + CrossAttn(q=coarse embedding, kv=hidden states))``."""
    a = dep.cross_attn
    q = a.split(a.q_proj(s1_emb)[..., None, :])  # rotary angle 0 at inference: no rotation
    if len(keys) == 2:  # full recomputation: (N, nh, L, hd) keys, padding mask (N, L)
        out = F.scaled_dot_product_attention(q, *keys, attn_mask=valid[:, None, None, :])
    else:
        out = shared_attention(q, *keys)
    return dep.norm(last + a.merge(out)[..., 0, :])


def _generate_cached(net: KronosNet, ctx: _Encoded, u: torch.Tensor, draw: Draw) -> torch.Tensor:
    s1c, s2c, valid, stamps = ctx.s1, ctx.s2, ctx.valid, ctx.stamps
    m, tok = net.model, net.tokenizer
    B, S, H = u.shape[:3]
    T = s1c.shape[1]
    pos, mask = torch.arange(T, device=s1c.device), causal_mask(valid)
    # prefill once per series: (B, T, D) hidden states and per-layer prefix keys
    h = m.inputs(s1c, s2c, None if stamps is None else stamps[:, :T])
    prefix: list[tuple[torch.Tensor, torch.Tensor]] = []
    for block in m.transformer:
        h = block(h, pos, mask, cache=prefix)
    hn = m.norm(h)
    a = m.dep_layer.cross_attn
    dep_prefix = (a.split(a.k_proj(hn)), a.split(a.v_proj(hn)))  # (B, nh, T, hd)
    dep_new: list[torch.Tensor] = []  # per-sample (B, S, nh, i, hd) keys and values
    new: list[list[torch.Tensor | None]] = [[None, None] for _ in m.transformer]
    last = hn[:, -1:].expand(B, S, -1)  # (B, S, D) hidden state of the newest position
    logits1 = m.head.proj_s1(hn[:, -1])[:, None].expand(B, S, -1)  # (B, S, V1)
    out1, out2 = [], []
    for i in range(H):
        s1 = draw(logits1, u[:, :, i, 0])  # (B, S)
        if dep_new:
            kn, vn = dep_new
        else:
            kn = vn = dep_prefix[0].new_zeros(B, S, a.n_heads, 0, a.head_dim)
        x2 = _cross(m.dep_layer, m.embedding.emb_s1(s1), last, (*dep_prefix, valid, kn, vn), None)
        s2 = draw(m.head.proj_s2(x2), u[:, :, i, 1])
        out1.append(s1)
        out2.append(s2)
        if i == H - 1:
            break
        e = m.inputs(
            s1[..., None],
            s2[..., None],
            None if stamps is None else stamps[:, None, T + i : T + i + 1].expand(B, S, 1, -1),
        )  # (B, S, 1, D)
        p = torch.tensor([T + i], device=e.device)
        for block, pre, cache in zip(m.transformer, prefix, new, strict=True):
            e = block.step(e, p, pre, valid, cache)
        last = m.norm(e)[:, :, 0]  # (B, S, D)
        k_new, v_new = a.split(a.k_proj(last)[:, :, None]), a.split(a.v_proj(last)[:, :, None])
        dep_new = (
            [k_new, v_new]
            if not dep_new
            else [torch.cat([dep_new[0], k_new], 3), torch.cat([dep_new[1], v_new], 3)]
        )
        logits1 = m.head.proj_s1(last)
    g1, g2 = torch.stack(out1, -1), torch.stack(out2, -1)  # (B, S, H)
    # decode: the context tokens once per series, the generated ones per sample
    z = tok.embed_tokens(s1c, s2c)
    dec_prefix: list[tuple[torch.Tensor, torch.Tensor]] = []
    for block in tok.decoder:
        z = block(z, pos, mask, cache=dec_prefix)
    zn = tok.embed_tokens(g1, g2)  # (B, S, H, D)
    p = torch.arange(T, T + H, device=zn.device)
    for block, pre in zip(tok.decoder, dec_prefix, strict=True):
        zn = block.step(zn, p, pre, valid, [None, None])
    return tok.head(zn)


def _generate_full(
    net: KronosNet, ctx: _Encoded, u: torch.Tensor, draw: Draw, window: int
) -> torch.Tensor:
    """Reference loop: every sample path recomputes its whole (sliding) window at every step."""
    s1c, s2c, valid, stamps = ctx.s1, ctx.s2, ctx.valid, ctx.stamps
    m, tok = net.model, net.tokenizer
    B, S, H = u.shape[:3]
    T = s1c.shape[1]
    rep = lambda t: t.repeat_interleave(S, dim=0)  # noqa: E731  (B, ...) -> (B*S, ...)
    seq1, seq2, ok = rep(s1c), rep(s2c), rep(valid)
    st = None if stamps is None else rep(stamps)
    uu = u.reshape(B * S, H, 2)
    a = m.dep_layer.cross_attn
    for i in range(H):
        end = T + i
        lo = max(0, end - window)
        vv = ok[:, lo:end]
        h = m.inputs(seq1[:, lo:end], seq2[:, lo:end], None if st is None else st[:, lo:end])
        pos, mask = torch.arange(end - lo, device=h.device), causal_mask(vv)
        for block in m.transformer:
            h = block(h, pos, mask)
        hn = m.norm(h)
        s1 = draw(m.head.proj_s1(hn[:, -1]), uu[:, i, 0])
        keys = (a.split(a.k_proj(hn)), a.split(a.v_proj(hn)))
        x2 = _cross(m.dep_layer, m.embedding.emb_s1(s1), hn[:, -1], keys, vv)
        s2 = draw(m.head.proj_s2(x2), uu[:, i, 1])
        seq1, seq2 = torch.cat([seq1, s1[:, None]], 1), torch.cat([seq2, s2[:, None]], 1)
        ok = torch.cat([ok, ok.new_ones(B * S, 1)], 1)
    lo = max(0, T + H - window)
    z = tok.embed_tokens(seq1[:, lo:], seq2[:, lo:])
    pos, mask = torch.arange(z.shape[1], device=z.device), causal_mask(ok[:, lo:])
    for block in tok.decoder:
        z = block(z, pos, mask)
    return tok.head(z[:, -H:]).view(B, S, H, -1)
