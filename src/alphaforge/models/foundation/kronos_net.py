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
from alphaforge.models.decoding import DecoderCache, GraphedStep, resolve_decode
from alphaforge.models.foundation.kronos_layers import (
    Attention,
    Block,
    RMSNorm,
    causal_mask,
    shared_attention,
)
from alphaforge.utils import device as dev

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
        self._decoders = DecoderCache()  # fixed-shape decoders by batch shape (decode static)
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
    decode: str = "eager",
    attention_backend: str = "auto",
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
        decode: With the cache: ``eager`` (per-sample caches that grow each step), ``static``
            (preallocated per-sample caches, fixed-shape steps), ``graph`` (``static`` replayed
            from a CUDA graph, CUDA only) or ``auto`` (``graph`` on CUDA, else ``eager``).
        attention_backend: SDPA kernels of the window passes
            (:func:`~alphaforge.utils.device.choose_sdpa_backends`).

    Returns:
        ``(B, S, H, d_in)`` normalised candles.

    Raises:
        ConfigError: unknown ``decode`` or ``attention_backend``; ``graph`` off CUDA.
    """
    T, H = x.shape[1], u.shape[2]
    mode = resolve_decode(decode, x.device)
    c = net.model.config
    amp = dev.autocast_dtype(x.device) or x.dtype
    kernels = dev.sdpa_backend_context(
        x.device,
        amp,
        attention_backend,
        head_dim=c.d_model // c.n_heads,
        masked=True,  # padding and causal masks
        varying_keys=True,  # windows grow when recomputing
    )
    with kernels:
        s1c, s2c = net.tokenizer.encode(x, valid)  # (B, T) each
        ctx = _Encoded(s1c, s2c, valid, stamps)
        draw = functools.partial(sample_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
        if not use_cache or T + H > window:
            return _generate_full(net, ctx, u, draw, window)
        if mode == "eager":
            return _generate_cached(net, ctx, u, draw)
        key = (tuple(u.shape), T, amp, stamps is not None, temperature, top_k, top_p)
        key += (torch.is_inference_mode_enabled(), mode)  # buffers are made in that mode
        return _generate_static(net, ctx, u, draw, key)


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


@dataclass(frozen=True)
class _Prefill:
    """The context pass shared by all samples of a series."""

    pos: torch.Tensor  # (T,) positions
    mask: torch.Tensor  # (B, 1, T, T) causal, no padding keys
    prefix: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (B, nh, T, hd) keys, values
    hidden: torch.Tensor  # (B, T, D) normalised hidden states
    dep_prefix: tuple[torch.Tensor, torch.Tensor]  # (B, nh, T, hd) dependency-layer keys


def _prefill(net: KronosNet, ctx: _Encoded) -> _Prefill:
    """Run the predictor once over each series' context (prefill)."""
    m, T = net.model, ctx.s1.shape[1]
    pos, mask = torch.arange(T, device=ctx.s1.device), causal_mask(ctx.valid)
    h = m.inputs(ctx.s1, ctx.s2, None if ctx.stamps is None else ctx.stamps[:, :T])
    prefix: list[tuple[torch.Tensor, torch.Tensor]] = []
    for block in m.transformer:
        h = block(h, pos, mask, cache=prefix)
    hn = m.norm(h)
    a = m.dep_layer.cross_attn
    return _Prefill(pos, mask, prefix, hn, (a.split(a.k_proj(hn)), a.split(a.v_proj(hn))))


def _decode_candles(
    net: KronosNet, ctx: _Encoded, pre: _Prefill, g1: torch.Tensor, g2: torch.Tensor
) -> torch.Tensor:
    """Sampled ``(B, S, H)`` tokens -> ``(B, S, H, d_in)`` candles: the context tokens through
    the decoder once per series, the generated ones per sample."""
    tok, T, H = net.tokenizer, ctx.s1.shape[1], g1.shape[-1]
    z = tok.embed_tokens(ctx.s1, ctx.s2)
    dec_prefix: list[tuple[torch.Tensor, torch.Tensor]] = []
    for block in tok.decoder:
        z = block(z, pre.pos, pre.mask, cache=dec_prefix)
    zn = tok.embed_tokens(g1, g2)  # (B, S, H, D)
    p = torch.arange(T, T + H, device=zn.device)
    for block, prefix in zip(tok.decoder, dec_prefix, strict=True):
        zn = block.step(zn, p, prefix, ctx.valid, [None, None])
    return tok.head(zn)


def _generate_cached(net: KronosNet, ctx: _Encoded, u: torch.Tensor, draw: Draw) -> torch.Tensor:
    stamps, valid = ctx.stamps, ctx.valid
    m = net.model
    B, S, H = u.shape[:3]
    T = ctx.s1.shape[1]
    pre = _prefill(net, ctx)
    hn, dep_prefix, a = pre.hidden, pre.dep_prefix, m.dep_layer.cross_attn
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
        for block, prefix, cache in zip(m.transformer, pre.prefix, new, strict=True):
            e = block.step(e, p, prefix, valid, cache)
        last = m.norm(e)[:, :, 0]  # (B, S, D)
        k_new, v_new = a.split(a.k_proj(last)[:, :, None]), a.split(a.v_proj(last)[:, :, None])
        dep_new = (
            [k_new, v_new]
            if not dep_new
            else [torch.cat([dep_new[0], k_new], 3), torch.cat([dep_new[1], v_new], 3)]
        )
        logits1 = m.head.proj_s1(last)
    return _decode_candles(net, ctx, pre, torch.stack(out1, -1), torch.stack(out2, -1))


def _generate_static(
    net: KronosNet, ctx: _Encoded, u: torch.Tensor, draw: Draw, key: tuple[Any, ...]
) -> torch.Tensor:
    """:func:`_generate_cached` with preallocated caches and fixed-shape steps (``key[-1]``:
    ``static``, or ``graph`` to replay each step from a CUDA graph). The decoder, caches and
    graph are kept per ``key`` and reused by the next batch of the same shape."""
    T, H = ctx.s1.shape[1], u.shape[2]
    pre = _prefill(net, ctx)
    decoder = net._decoders.get(net, key, lambda: _StaticDecoder(net, pre, u, ctx, draw, key))
    decoder.load(pre, ctx.valid)
    out1, out2 = [], []
    for i in range(H):
        stamp = None if ctx.stamps is None else ctx.stamps[:, None, T + i : T + i + 1]
        s1, s2 = decoder(i, u[:, :, i], stamp)
        out1.append(s1)
        out2.append(s2)
    return _decode_candles(net, ctx, pre, torch.stack(out1, -1), torch.stack(out2, -1))


class _StaticDecoder:
    """Preallocated per-sample caches and the fixed-shape sampling step over them.

    One step reads ``(logits1, last)`` of the newest position, draws the coarse and fine tokens
    with uniforms ``u``, writes the new position's keys into slot ``i`` of every per-sample
    cache (``(B, S, nh, H, hd)``, slots ``<= i`` visible) and leaves the next ``(logits1,
    last)`` in separate output buffers: a step never overwrites its own inputs, so the warm-up
    runs before a CUDA-graph capture repeat the same step.
    """

    def __init__(
        self,
        net: KronosNet,
        pre: _Prefill,
        u: torch.Tensor,
        ctx: _Encoded,
        draw: Draw,
        key: tuple[Any, ...],
    ) -> None:
        m = net.model
        a = m.dep_layer.cross_attn
        B, S, H = u.shape[:3]
        hn, device = pre.hidden, pre.hidden.device
        self.net, self.draw, self.T, self.graph_mode = net, draw, ctx.s1.shape[1], key[-1]
        cache = lambda k: k.new_zeros(B, S, k.shape[1], H, k.shape[3])  # noqa: E731
        self.prefix = [(torch.empty_like(k), torch.empty_like(v)) for k, v in pre.prefix]
        self.new = [(cache(k), cache(v)) for k, v in pre.prefix]
        self.dep_prefix = (torch.empty_like(pre.dep_prefix[0]), torch.empty_like(pre.dep_prefix[1]))
        self.dep_new = (cache(pre.dep_prefix[0]), cache(pre.dep_prefix[1]))
        self.valid = torch.empty_like(ctx.valid)
        self.slots = torch.arange(H, device=device)  # (H,) cache slots
        self.i = torch.zeros(1, dtype=torch.long, device=device)  # the step's slot
        self.u = torch.empty_like(u[:, :, 0])  # (B, S, 2)
        self.stamp = None if ctx.stamps is None else ctx.stamps.new_zeros(B, S, 1, 5)
        V1 = m.head.proj_s1.out_features
        self.state = [hn.new_zeros(B, S, hn.shape[-1]), hn.new_zeros(B, S, V1)]  # last, logits1
        self.next = [torch.empty_like(t) for t in self.state]
        self.s1 = torch.zeros(B, S, dtype=torch.long, device=device)
        self.s2 = torch.zeros_like(self.s1)
        self.a, self.graph = a, None

    def load(self, pre: _Prefill, valid: torch.Tensor) -> None:
        """A new batch: its prefix keys, padding and first ``(logits1, last)``; empty caches."""
        m = self.net.model
        for (k, v), (pk, pv) in zip(self.prefix, pre.prefix, strict=True):
            k.copy_(pk)
            v.copy_(pv)
        for buf, src in zip(self.dep_prefix, pre.dep_prefix, strict=True):
            buf.copy_(src)
        for k, v in (*self.new, self.dep_new):
            k.zero_()
            v.zero_()
        self.valid.copy_(valid)
        hn = pre.hidden
        self.state[0].copy_(hn[:, -1:].expand_as(self.state[0]))
        self.state[1].copy_(m.head.proj_s1(hn[:, -1])[:, None].expand_as(self.state[1]))

    def _step(self) -> None:
        m, a, i = self.net.model, self.a, self.i
        last, logits1 = self.state
        s1 = self.draw(logits1, self.u[..., 0])  # (B, S)
        seen = (*self.dep_prefix, self.valid, *self.dep_new, self.slots < i)  # earlier steps
        x2 = _cross(m.dep_layer, m.embedding.emb_s1(s1), last, seen, None)
        s2 = self.draw(m.head.proj_s2(x2), self.u[..., 1])
        self.s1.copy_(s1)
        self.s2.copy_(s2)
        e = m.inputs(s1[..., None], s2[..., None], self.stamp)  # (B, S, 1, D)
        p, written = i + self.T, self.slots <= i
        for block, prefix, new in zip(m.transformer, self.prefix, self.new, strict=True):
            e = block.step_static(e, p, prefix, self.valid, new, i, written)
        nxt = m.norm(e)[:, :, 0]  # (B, S, D)
        self.dep_new[0].index_copy_(3, i, a.split(a.k_proj(nxt)[:, :, None]))
        self.dep_new[1].index_copy_(3, i, a.split(a.v_proj(nxt)[:, :, None]))
        self.next[0].copy_(nxt)
        self.next[1].copy_(m.head.proj_s1(nxt))

    def __call__(
        self, i: int, u: torch.Tensor, stamp: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``i`` with uniforms ``u`` ``(B, S, 2)``: the ``(B, S)`` coarse and fine tokens."""
        self.i.fill_(i)
        self.u.copy_(u)
        if self.stamp is not None and stamp is not None:
            self.stamp.copy_(stamp.expand_as(self.stamp))
        if self.graph_mode == "graph" and self.graph is None:
            self.graph = GraphedStep(self._step, self.i.device)  # warm-ups: this very step
        if self.graph is not None:
            self.graph()
        else:
            self._step()
        for state, nxt in zip(self.state, self.next, strict=True):
            state.copy_(nxt)
        return self.s1.clone(), self.s2.clone()


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
