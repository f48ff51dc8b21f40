"""Tokenized market GPT: a nanochat-style decoder over return tokens, and its forecaster.

- Tokens: bars (or patches of bars) of each symbol's returns mapped to K codes by a
  :mod:`~alphaforge.models.tokenizer` (VQ-VAE or quantile bins). Each symbol is one document;
  a training window never crosses documents and starts with a prefix token: BOS, or one token
  per symbol when ``n_symbols > 0`` (symbol conditioning). The head predicts return tokens only.
- Rotary position embeddings (Su et al., 2021, arXiv:2104.09864), no learned positions.
- RMSNorm without learnable parameters (``F.rms_norm``), pre-norm blocks, and a norm after the
  embedding; QK-norm (Dehghani et al., 2023, arXiv:2302.05442) keeps attention logits bounded.
- No bias terms; ReLU^2 MLP (So et al., 2021, Primer, arXiv:2109.08668).
- Grouped-query attention (Ainslie et al., 2023, arXiv:2305.13245): ``n_kv_head`` key/value
  heads shared by ``n_head`` query heads, through ``F.scaled_dot_product_attention`` (causal).
- Tied or untied input/output embeddings; zero-initialised output projections (nanochat).
- Generation with a KV cache, batched, several samples per prompt from one prefill; sampling by
  inverse CDF of caller-supplied uniforms, so a forecast's randomness is keyed to its own row
  (symbol, timestamp, seed), not to the batch it was computed in.
- Training through ``fit_torch`` (AdamW, warmup + cosine, clipping, AMP, checkpoints);
  evaluation: cross-entropy, perplexity, top-1 / top-5 accuracy (compare with the unigram and
  bigram baselines of :mod:`~alphaforge.models.tokenizer`).

Shapes: B batch, T tokens, V return tokens, C embedding (n_embd), H heads, Hk kv heads,
D head dim, S samples per prompt, R rows of X, L context tokens, P bars per token.
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
from torch import nn

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, require
from alphaforge.models.tokenizer import (
    TOKENIZERS,
    ReturnTokenizer,
    TokenizerConfig,
    TokenStreams,
    _sortable,
    _symbol_major,
    first_valid,
    load_tokenizer,
    panel_patches,
)
from alphaforge.utils.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import optuna

    from alphaforge.models.training import History, TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["GPT", "GPTConfig", "KVCache", "TokenGPTForecaster", "TokenGPTParams",
           "TokenWindows", "evaluate_tokens", "load_gpt", "save_gpt", "train_gpt"]

GPT_META, GPT_WEIGHTS = "gpt.json", "gpt.pt"


# ============================================================================ network
@dataclass(frozen=True)
class GPTConfig:
    sequence_len: int = 256  # longest context in tokens, prefix included (rotary table size)
    vocab_size: int = 128  # V: return tokens (the head's outputs)
    n_layer: int = 6
    n_head: int = 8  # query heads
    n_kv_head: int = 8  # key/value heads (GQA when < n_head)
    n_embd: int = 512
    n_symbols: int = 0  # symbol-conditioning tokens after BOS; 0: every window starts with BOS
    tie_embeddings: bool = False  # output head reuses the first V rows of the input embedding
    dropout: float = 0.0  # on each residual branch, training only

    def __post_init__(self) -> None:
        assert self.n_embd % self.n_head == 0 and (self.n_embd // self.n_head) % 2 == 0, \
            "head dim must be even for rotary"
        assert self.n_kv_head >= 1 and self.n_head % self.n_kv_head == 0, \
            (self.n_head, self.n_kv_head)

    @property
    def bos(self) -> int:
        """Id of the BOS prefix token (right after the return tokens)."""
        return self.vocab_size

    @property
    def n_input_tokens(self) -> int:
        """Rows of the input embedding: V return tokens, BOS, one per symbol."""
        return self.vocab_size + 1 + self.n_symbols


def norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm over the last axis, no learnable gain."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each ``(1, seq_len, 1, head_dim / 2)``."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, D/2)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (i, i + D/2) of ``x`` ``(B, T, H, D)`` by position-dependent angles."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).to(x.dtype)


class KVCache:
    """Keys and values of every layer for positions ``[0, pos)``, allocated on first use.

    Args:
        n_layer: Layers of the model.
        max_len: Most positions the cache will hold.
    """

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.n_layer, self.max_len, self.pos = n_layer, max_len, 0
        self.k: torch.Tensor | None = None  # (n_layer, B, Hk, max_len, D)
        self.v: torch.Tensor | None = None

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``(B, Hk, T, D)`` keys/values at ``[pos, pos + T)``; return all up to there."""
        B, Hk, T, D = k.shape
        if self.k is None:
            shape = (self.n_layer, B, Hk, self.max_len, D)
            self.k, self.v = k.new_zeros(shape), v.new_zeros(shape)
        assert self.v is not None and self.pos + T <= self.max_len, (self.pos, T, self.max_len)
        self.k[layer, :, :, self.pos:self.pos + T] = k
        self.v[layer, :, :, self.pos:self.pos + T] = v
        return self.k[layer, :, :, :self.pos + T], self.v[layer, :, :, :self.pos + T]

    def repeat_interleave(self, n: int) -> None:
        """Copy every batch row ``n`` times in place (one prefill, ``n`` sampled futures)."""
        if self.k is not None and self.v is not None and n > 1:
            self.k = self.k.repeat_interleave(n, dim=1)
            self.v = self.v.repeat_interleave(n, dim=1)


class CausalSelfAttention(nn.Module):
    def __init__(self, c: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer, self.n_head, self.n_kv_head = layer, c.n_head, c.n_kv_head
        self.head_dim = c.n_embd // c.n_head
        self.c_q = nn.Linear(c.n_embd, c.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(c.n_embd, c.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(c.n_embd, c.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None) -> torch.Tensor:
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))  # QK-norm
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H|Hk, T, D)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, Hk, Tk, D), Tk = cached + T
        Tk, gqa = k.size(2), self.n_kv_head != self.n_head
        if Tk == T:  # training, or prefill of an empty cache
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        elif T == 1:  # one new token attends to everything cached
            y = F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
        else:  # a chunk after a cached prefix: query i sees keys <= Tk - T + i
            mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(Tk - T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, c: GPTConfig, layer: int) -> None:
        super().__init__()
        self.attn, self.mlp = CausalSelfAttention(c, layer), MLP(c)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None) -> torch.Tensor:
        x = x + self.drop(self.attn(norm(x), cos, sin, cache))  # pre-norm residual
        return x + self.drop(self.mlp(norm(x)))


class GPT(nn.Module):
    """Decoder-only transformer over ``(B, T)`` token ids; see the module notes."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.n_input_tokens, c.n_embd)
        self.blocks = nn.ModuleList(Block(c, i) for i in range(c.n_layer))
        self.lm_head = None if c.tie_embeddings else nn.Linear(c.n_embd, c.vocab_size, bias=False)
        cos, sin = rotary_tables(c.sequence_len, c.n_embd // c.n_head)
        self.register_buffer("cos", cos, persistent=False)  # derived: not in the state dict
        self.register_buffer("sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Unit-variance projections, zero output projections (each block starts as identity)."""
        c = self.config
        nn.init.normal_(self.wte.weight, std=0.02 if c.tie_embeddings else 1.0)
        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.normal_(lin.weight, std=lin.in_features ** -0.5)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
        if self.lm_head is not None:
            nn.init.zeros_(self.lm_head.weight)  # uniform first guess: loss starts at log V

    def num_params(self) -> int:
        """Number of parameters (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> float:
        """Training FLOPs per token: ``6 N`` (matmuls, embedding excluded) + attention
        ``12 n_layer C T`` (Kaplan et al., 2020; the PaLM appendix)."""
        c = self.config
        n = self.num_params() - self.wte.weight.numel() * (not c.tie_embeddings)
        return 6.0 * n + 12.0 * c.n_layer * c.n_embd * c.sequence_len

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, V)`` logits, or the mean cross-entropy on ``targets``.

        Args:
            idx: Token ids in ``[0, n_input_tokens)``.
            targets: ``(B, T)`` next-token ids, -1 where ignored; then returns the scalar loss.
            cache: Continue after the cached positions (generation).
            last_only: Logits of the last position only, ``(B, 1, V)``.
        """
        B, T = idx.shape
        t0 = cache.pos if cache is not None else 0
        assert t0 + T <= self.config.sequence_len, \
            f"{t0 + T} positions > rotary table of sequence_len {self.config.sequence_len}"
        cos, sin = self.cos[:, t0:t0 + T], self.sin[:, t0:t0 + T]
        x = norm(self.wte(idx))  # (B, T, C)
        for block in self.blocks:
            x = block(x, cos, sin, cache)
        if cache is not None:
            cache.pos += T
        x = norm(x[:, -1:] if last_only else x)
        head = self.wte.weight[: self.config.vocab_size] if self.lm_head is None \
            else self.lm_head.weight
        logits = F.linear(x, head)  # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1)

    @torch.inference_mode()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None, *,
                 num_samples: int = 1, uniforms: torch.Tensor | None = None,
                 use_cache: bool = True, keep: int = 1) -> torch.Tensor:
        """Sample continuations of a batch of equally long prompts.

        Args:
            idx: ``(B, T)`` prompts (prefix token first).
            max_new_tokens: Tokens to sample per continuation.
            temperature: Softmax temperature; 0 means greedy (argmax).
            top_k: Sample among the ``top_k`` most likely tokens only; ``None``: all.
            generator: CPU generator drawing the uniforms when ``uniforms`` is not given.
            num_samples: S continuations per prompt (one prefill, then S cached futures).
            uniforms: ``(B * S, max_new_tokens)`` in (0, 1), one per draw (inverse-CDF).
            use_cache: Use the KV cache; ``False`` recomputes the whole context every step.
            keep: When prompt + new tokens exceed ``sequence_len`` the context slides, keeping
                the first ``keep`` tokens (the prefix) and the latest others; each step is then
                recomputed.

        Returns:
            ``(B * S, max_new_tokens)`` new tokens; rows ``b * S .. b * S + S - 1`` continue
            prompt ``b``.
        """
        B, T = idx.shape
        S, L = num_samples, self.config.sequence_len
        if uniforms is None:
            uniforms = torch.rand((B * S, max_new_tokens), generator=generator,
                                  dtype=torch.float64)
        uniforms = uniforms.to(idx.device)
        out = idx.new_empty((B * S, max_new_tokens))
        if max_new_tokens == 0:
            return out
        if use_cache and T + max_new_tokens - 1 <= L:
            cache = KVCache(self.config.n_layer, T + max_new_tokens - 1)
            logits = self(idx, cache=cache, last_only=True)[:, -1].repeat_interleave(S, 0)
            cache.repeat_interleave(S)  # (B, ...) -> (B * S, ...)
            for i in range(max_new_tokens):
                out[:, i] = tok = sample_next(logits, temperature, top_k, uniforms[:, i])
                if i + 1 < max_new_tokens:
                    logits = self(tok[:, None], cache=cache, last_only=True)[:, -1]
            return out
        seq = idx.repeat_interleave(S, 0)
        for i in range(max_new_tokens):
            ctx = seq if seq.size(1) <= L else torch.cat(
                [seq[:, :keep], seq[:, seq.size(1) - (L - keep):]], dim=1)
            logits = self(ctx, last_only=True)[:, -1]
            out[:, i] = tok = sample_next(logits, temperature, top_k, uniforms[:, i])
            seq = torch.cat([seq, tok[:, None]], dim=1)
        return out

    def generate_recompute(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                           top_k: int | None = None, generator: torch.Generator | None = None,
                           **kwargs: Any) -> torch.Tensor:
        """:meth:`generate` without the KV cache (the reference the cache must match)."""
        return self.generate(idx, max_new_tokens, temperature, top_k, generator,
                             use_cache=False, **kwargs)


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None,
                u: torch.Tensor) -> torch.Tensor:
    """``(B, V)`` logits -> ``(B,)`` tokens by inverse CDF of uniforms ``u`` ``(B,)``."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    cdf = F.softmax(logits, dim=-1).cumsum(-1)  # (B, V)
    target = u.to(cdf.dtype)[:, None] * cdf[:, -1:]
    # first token whose cdf reaches the target: zero-probability tokens are never chosen
    return torch.searchsorted(cdf, target).squeeze(1).clamp_(max=logits.size(-1) - 1)


# ============================================================================ data + training
def prefix_tokens(symbols: Sequence[str], config: GPTConfig,
                  vocabulary: Sequence[str] = ()) -> npt.NDArray[np.int64]:
    """Prefix id per document: its symbol token when conditioning and known, else BOS."""
    ids = {s: i for i, s in enumerate(vocabulary)} if config.n_symbols else {}
    return np.asarray([config.bos + 1 + ids[s] if s in ids else config.bos for s in symbols],
                      dtype=np.int64)


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

    def __init__(self, streams: TokenStreams, seq_len: int, prefix: npt.ArrayLike, *,
                 stride: int = 0, device: str | torch.device = "cpu") -> None:
        T = seq_len
        starts, los, his, docs = [], [], [], []
        tf = streams.target_from if streams.target_from is not None else np.zeros(
            len(streams.symbols), dtype=np.int64)
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
            raise DataError(f"no token windows: {len(streams.tokens)} tokens in "
                            f"{len(streams.symbols)} documents, none a target")
        dev = torch.device(device)

        def as_tensor(parts: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.concatenate(parts).astype(np.int64)).to(dev)

        self.start, self.t_lo, self.t_hi = as_tensor(starts), as_tensor(los), as_tensor(his)
        self.prefix = torch.from_numpy(np.asarray(prefix, dtype=np.int64)[np.concatenate(docs)]
                                       ).to(dev)
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


def train_gpt(model: GPT, train: TokenStreams, valid: TokenStreams | None,
              config: TrainConfig, *, symbols: Sequence[str] = (), stride: int = 0,
              seed: int = 0, checkpoint_dir: str | os.PathLike[str] | None = None,
              resume: bool = False, on_epoch: Callable[[int, float], None] | None = None
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
    from alphaforge.models.training import fit_torch
    from alphaforge.utils.device import resolve_device

    c, device = model.config, resolve_device(config.device)
    stride = stride or max(1, c.sequence_len // 2)
    src = TokenWindows(train, c.sequence_len, prefix_tokens(train.symbols, c, symbols),
                       stride=stride, device=device)
    val = None if valid is None else TokenWindows(
        valid, c.sequence_len, prefix_tokens(valid.symbols, c, symbols), device=device)
    return fit_torch(model, src, lambda net, b: net(b["x"], b["y"]), config, valid=val,
                     seed=seed, checkpoint_dir=checkpoint_dir, resume=resume, on_epoch=on_epoch)


@torch.inference_mode()
def evaluate_tokens(model: GPT, streams: TokenStreams, *, symbols: Sequence[str] = (),
                    batch_size: int = 64) -> dict[str, float]:
    """Next-token metrics of ``model`` on the targets of ``streams`` (evaluation windows).

    Returns:
        ``cross_entropy`` (nats/token), ``perplexity``, ``accuracy`` (top-1), ``top5_accuracy``,
        ``n_tokens``: the same keys as the unigram/bigram baselines, on the same targets.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    src = TokenWindows(streams, model.config.sequence_len,
                       prefix_tokens(streams.symbols, model.config, symbols), device=device)
    total = torch.zeros(4, dtype=torch.float64, device=device)  # ce sum, top1, top5, count
    for lo in range(0, len(src), batch_size):
        b = src.batch(torch.arange(lo, min(lo + batch_size, len(src)), device=device))
        logits = model(b["x"]).float()  # (B, T, V)
        ok = b["y"] >= 0
        lg, y = logits[ok], b["y"][ok]  # (m, V), (m,)
        ce = F.cross_entropy(lg, y, reduction="sum")
        rank = (lg > lg.gather(1, y[:, None])).sum(1)  # tokens strictly more likely
        total += torch.stack([ce.double(), (rank == 0).sum().double(), (rank < 5).sum().double(),
                              torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
    model.train(was_training)
    ce, top1, top5, n = total.tolist()
    return {"cross_entropy": ce / n, "perplexity": math.exp(ce / n), "accuracy": top1 / n,
            "top5_accuracy": top5 / n, "n_tokens": int(n)}


def save_gpt(path: str | os.PathLike[str], model: GPT, tokenizer: ReturnTokenizer | None = None,
             *, symbols: Sequence[str] = (), info: dict[str, Any] | None = None) -> Path:
    """Write ``gpt.json``, ``gpt.pt`` (state dict) and ``tokenizer/`` into directory ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None:
        tokenizer.save(path / "tokenizer")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(path / GPT_WEIGHTS, buf.getvalue())
    meta = {"format": "alphaforge.gpt", "config": dataclasses.asdict(model.config),
            "symbols": list(symbols), "n_params": model.num_params(), **(info or {})}
    atomic_write_text(path / GPT_META, json.dumps(meta, indent=1, default=str) + "\n")
    return path


def load_gpt(path: str | os.PathLike[str], device: str = "cpu"
             ) -> tuple[GPT, ReturnTokenizer | None, dict[str, Any]]:
    """Load a directory written by :func:`save_gpt`: ``(model in eval mode, tokenizer, meta)``.

    Raises:
        DataError: missing or malformed files.
    """
    from alphaforge.utils.device import resolve_device

    path = Path(path)
    try:
        meta = json.loads((path / GPT_META).read_text(encoding="utf-8"))
        model = GPT(GPTConfig(**meta["config"]))
        model.load_state_dict(torch.load(path / GPT_WEIGHTS, map_location="cpu",
                                         weights_only=True))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise DataError(f"not a saved GPT ({type(exc).__name__}: {exc})", path=str(path)) from None
    tok = load_tokenizer(path / "tokenizer") if (path / "tokenizer").is_dir() else None
    return model.to(resolve_device(device)).eval(), tok, meta


# ============================================================================ forecaster
@dataclass(frozen=True)
class TokenGPTParams:
    """Config of :class:`TokenGPTForecaster`: tokenizer, GPT, training and sampling fields."""

    return_column: str = "ret_1"  # feature holding the bar's own one-bar return
    extra_columns: tuple[str, ...] = ()  # more per-bar channels for the tokenizer (hl_range ...)
    tokenizer: Literal["vqvae", "quantile"] = "vqvae"
    codebook_size: int = 128  # V
    patch: int = 1  # P: bars per token
    vq_epochs: int = 20
    vq_min_steps: int = 200  # tokenizer training steps at least (small training windows)
    vq_hidden: int = 64
    vq_code_dim: int = 8
    horizon: int = 1  # h: forecast = sum of the next h decoded one-bar returns
    lookback: int = 64  # L: history tokens per forecast (lookback * patch bars)
    n_samples: int = 64  # S: sampled paths per row
    aggregate: Literal["mean", "median"] = "mean"
    temperature: float = 1.0
    top_k: int = 0  # 0: sample from the full distribution
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # predict_distribution columns
    sequence_len: int = 128  # training window (prefix included)
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int = 4
    n_embd: int = 128
    tie_embeddings: bool = False
    symbol_tokens: bool = False  # condition on a per-symbol prefix token (unknown symbols: BOS)
    dropout: float = 0.0
    stride: int = 0  # training window stride; 0: sequence_len // 2
    max_epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    patience: int = 3
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    predict_batch_size: int = 4096  # sequences (rows x samples) per generation batch

    def __post_init__(self) -> None:
        n_new = -(-self.horizon // max(1, self.patch))
        require(self.codebook_size >= 2, self, "codebook_size", "an int >= 2")
        require(self.patch >= 1, self, "patch", "an int >= 1")
        require(self.horizon >= 1, self, "horizon", "an int >= 1")
        require(self.lookback >= 1, self, "lookback", "an int >= 1")
        require(self.lookback + n_new <= self.sequence_len, self, "sequence_len",
                f">= lookback + ceil(horizon / patch) = {self.lookback + n_new}")
        require(self.n_samples >= 1, self, "n_samples", "an int >= 1")
        require(self.temperature > 0, self, "temperature", "> 0")
        require(self.top_k >= 0, self, "top_k", "an int >= 0")
        require(all(0 < q < 1 for q in self.quantiles), self, "quantiles", "values in (0, 1)")
        require(self.n_embd % self.n_head == 0 and (self.n_embd // self.n_head) % 2 == 0, self,
                "n_embd", f"a multiple of n_head={self.n_head} with an even head dim")
        require(self.n_kv_head >= 1 and self.n_head % self.n_kv_head == 0, self, "n_kv_head",
                f"a divisor of n_head={self.n_head}")
        for name in ("vq_epochs", "vq_hidden", "vq_code_dim", "n_layer", "max_epochs",
                     "batch_size", "predict_batch_size"):
            require(getattr(self, name) >= 1, self, name, "an int >= 1")
        require(0 <= self.dropout < 1, self, "dropout", "in [0, 1)")
        require(self.lr > 0, self, "lr", "> 0")


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
        family="neural", supports_valid=True, early_stopping=True, needs_sequence=True,
        label_kinds=("return",), checkpointable=True)
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
        return {"codebook_size": 16, "vq_epochs": 2, "vq_min_steps": 20, "vq_hidden": 16,
                "vq_code_dim": 4, "lookback": 8, "n_samples": 8, "sequence_len": 16,
                "n_layer": 1, "n_head": 2, "n_kv_head": 1, "n_embd": 16, "max_epochs": 2,
                "batch_size": 32, "device": "cpu", "predict_batch_size": 4096}

    # ------------------------------------------------------------------ fit
    def _columns(self, X: pd.DataFrame) -> list[str]:
        c = self.config_
        cols = [c.return_column, *c.extra_columns]
        missing = [col for col in cols if col not in X.columns]
        if missing:
            raise ConfigError(f"{type(self).__name__}: column(s) {missing} not in X; it needs "
                              f"the bar's return in return_column (available: "
                              f"{list(X.columns)[:20]})")
        return cols

    def _streams(self, X: pd.DataFrame) -> TokenStreams:
        patches, where = panel_patches(X[self._columns(X)], self.config_.patch)
        return TokenStreams.from_frame(where.assign(token=self.tokenizer_.encode(patches)))

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        from alphaforge.models.training import TrainConfig
        from alphaforge.models.torch_base import _rng_devices
        from alphaforge.utils.device import resolve_device

        c = self.config_
        cols = self._columns(X)
        patches, _ = panel_patches(X[cols], c.patch)
        tok_config = TokenizerConfig(codebook_size=c.codebook_size, patch=c.patch,
                                     hidden=c.vq_hidden, code_dim=c.vq_code_dim,
                                     max_epochs=c.vq_epochs, min_steps=c.vq_min_steps,
                                     device=c.device)
        self.tokenizer_ = TOKENIZERS[c.tokenizer](tok_config, random_state=self.seed_).fit(
            patches, fields=cols)
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
        self.net_config_ = GPTConfig(
            sequence_len=c.sequence_len, vocab_size=c.codebook_size, n_layer=c.n_layer,
            n_head=c.n_head, n_kv_head=c.n_kv_head, n_embd=c.n_embd,
            n_symbols=len(self.symbols_), tie_embeddings=c.tie_embeddings, dropout=c.dropout)
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        train_config = TrainConfig(**{k: v for k, v in dataclasses.asdict(c).items()
                                      if k in names})
        device = resolve_device(c.device)
        with torch.random.fork_rng(devices=_rng_devices(device)):
            torch.manual_seed(self.seed_)  # weight init; the global RNG is restored on exit
            net = GPT(self.net_config_)
            history = train_gpt(
                net, train, valid_streams, train_config, symbols=self.symbols_,
                stride=c.stride, seed=self.seed_, checkpoint_dir=self.checkpoint_dir,
                resume=self.resume and self.checkpoint_dir is not None,
                on_epoch=self.iteration_callback if valid_streams is not None else None)
        self.net_ = net.eval()
        self.history_ = history.to_frame()
        logger.info("%s: %d epochs, %d parameters, %d training tokens", type(self).__name__,
                    len(self.history_), net.num_params(), len(train.tokens))

    # ------------------------------------------------------------------ predict
    def _histories(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Index]:
        """Per row in symbol-major order: ``order``, history ``(R, L)`` (-1 = none, latest
        last), symbol names and timestamps."""
        c = self.config_
        frame = X[self._columns(X)]
        order, sym, ts = _symbol_major(frame)
        values = frame.to_numpy(np.float64)[order]  # (R, F) symbol-major
        start = first_valid(values, sym) + c.patch - 1  # first row that ends a patch
        R, rows = len(values), np.arange(len(values))
        ends = np.flatnonzero(rows >= start)
        # encode in (timestamp, symbol) order in fixed chunks: later rows never shift earlier ones
        tmaj = np.lexsort((sym[ends], _sortable(ts[ends])))
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
        from alphaforge.utils.device import autocast, resolve_precision

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
        tmaj = np.lexsort((names, _sortable(ts)))  # (timestamp, symbol) order
        with torch.inference_mode(), autocast(device, precision):
            for n in np.unique(n_hist):  # one prompt length per batch: no padding inside it
                group = tmaj[n_hist[tmaj] == n]
                for lo in range(0, len(group), rows_per):
                    rows = group[lo:lo + rows_per]
                    take = np.r_[rows, np.full(rows_per - len(rows), rows[0])]  # fixed shape
                    idx = np.concatenate([prefix[take, None], hist[take, L - n:]], axis=1)
                    new = self.net_.generate(
                        torch.from_numpy(idx).to(device), n_new, c.temperature,
                        c.top_k or None, num_samples=S,
                        uniforms=torch.from_numpy(u[take].reshape(-1, n_new)))
                    bars = table[new.cpu()].reshape(len(take), S, n_new * c.patch)
                    paths[rows] = bars[:len(rows), :, :c.horizon].sum(-1).numpy()
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
        return {"net_config": dataclasses.asdict(self.net_config_), "symbols": self.symbols_,
                "history": self.history_.to_dict(orient="list")}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        from alphaforge.utils.device import resolve_device

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


def _row_uniforms(seed: int, symbols: np.ndarray, timestamps: pd.Index, n_samples: int,
                  n_steps: int) -> npt.NDArray[np.float64]:
    """``(R, S, n)`` uniforms in (0, 1), a pure function of (seed, symbol, timestamp, s, i)."""
    ts = timestamps.asi8 if isinstance(timestamps, pd.DatetimeIndex) else np.asarray(timestamps)
    key = pd.util.hash_array(np.asarray(symbols, dtype=object)) ^ _splitmix64(
        pd.util.hash_array(np.asarray(ts)) ^ np.uint64(seed))
    key = _splitmix64(key)  # (R,)
    ctr = _splitmix64(np.arange(n_samples * n_steps, dtype=np.uint64)).reshape(n_samples, n_steps)
    bits = _splitmix64(key[:, None, None] ^ ctr[None])  # (R, S, n)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
