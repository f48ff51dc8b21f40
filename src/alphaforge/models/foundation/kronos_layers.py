"""Kronos building blocks: RMSNorm, rotary attention with a shared-prefix KV cache, SwiGLU.

Shi et al., 2025, "Kronos: A Foundation Model for the Language of Financial Markets",
arXiv:2508.02739. Parameter names and shapes follow the released checkpoints (see
:mod:`~alphaforge.models.foundation.kronos_net`, which assembles the tokenizer and predictor).

- :class:`Block`: pre-RMSNorm causal self-attention with rotary positions (Su et al., 2021,
  arXiv:2104.09864) and a SwiGLU MLP; ``forward`` over a whole window, ``step`` for k new
  positions per sample after a prefix shared by all samples (a cache that grows), and
  ``step_static`` for one position written into preallocated per-sample caches (fixed shapes,
  for CUDA-graph decoding).
- :func:`shared_attention`: per-sample queries over one copy of the prefix keys per series
  plus per-sample keys, without repeating the prefix S times.

Shapes: B series, S samples, L prefix length, k new positions, m per-sample keys, nh heads, hd
head dim, D d_model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "Block", "RMSNorm", "Rotary", "SwiGLU", "causal_mask", "shared_attention"]


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
    new_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention of per-sample queries over a shared prefix plus per-sample keys.

    Args:
        q: ``(B, S, nh, k, hd)`` the k newest positions of every sample.
        kp, vp: ``(B, nh, L, hd)`` prefix keys/values, one copy per series.
        prefix_valid: ``(B, L)`` bool, false on left padding.
        kn, vn: ``(B, S, nh, m, hd)`` per-sample keys/values, the last ``k`` being the queries'
            own positions (causal among them).
        new_valid: ``(m,)`` bool: the per-sample keys every query may see (a preallocated cache
            of which only the written slots count), instead of the causal rule above.

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
    if new_valid is not None:
        allowed = new_valid[None, :]  # (1, m) the written slots
    else:
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

    def _qkv(
        self, x: torch.Tensor, pos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # (..., L, D) -> rotated queries and keys, values, each (..., nh, L, hd)
        a = self.self_attn
        h = self.norm1(x)
        q, k, v = a.split(a.q_proj(h)), a.split(a.k_proj(h)), a.split(a.v_proj(h))
        return a.rotary(q, pos), a.rotary(k, pos), v

    def _rest(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        # residual attention output, then the residual MLP
        x = x + self.self_attn.merge(attended)
        return x + self.ffn(self.norm2(x))

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        mask: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        # full window: x (N, L, D), mask (N, 1, L, L); appends (k, v) (N, nh, L, hd) to cache
        q, k, v = self._qkv(x, pos)
        if cache is not None:
            cache.append((k, v))
        return self._rest(x, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

    def step(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        prefix: tuple[torch.Tensor, torch.Tensor],
        prefix_valid: torch.Tensor,
        new: list[torch.Tensor | None],
    ) -> torch.Tensor:
        # k new positions per sample: x (B, S, k, D); new = [k, v] per-sample cache, updated
        q, k, v = self._qkv(x, pos)  # (B, S, nh, k, hd)
        new[0] = k if new[0] is None else torch.cat([new[0], k], dim=3)
        new[1] = v if new[1] is None else torch.cat([new[1], v], dim=3)
        return self._rest(x, shared_attention(q, *prefix, prefix_valid, new[0], new[1]))

    def step_static(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        prefix: tuple[torch.Tensor, torch.Tensor],
        prefix_valid: torch.Tensor,
        new: tuple[torch.Tensor, torch.Tensor],
        slot: torch.Tensor,
        written: torch.Tensor,
    ) -> torch.Tensor:
        # one position per sample, x (B, S, 1, D), its keys written into slot ``slot`` ((1,)
        # long) of the preallocated per-sample cache ``new`` ((B, S, nh, m, hd) each); the
        # queries see the slots marked in ``written`` ((m,) bool): fixed shapes at every step
        q, k, v = self._qkv(x, pos)  # (B, S, nh, 1, hd)
        new[0].index_copy_(3, slot, k)
        new[1].index_copy_(3, slot, v)
        return self._rest(x, shared_attention(q, *prefix, prefix_valid, *new, written))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, ff_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))
