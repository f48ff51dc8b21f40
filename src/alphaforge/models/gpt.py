"""Tokenized market GPT: a nanochat-style decoder over return tokens, with a KV cache.

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
- Fixed-shape decoding (as in gpt-fast): a preallocated :class:`StaticKVCache` written at a
  position held in a tensor, attention over the whole cache with a mask, so every one-token step
  has the same shapes; on CUDA each step is replayed from a captured CUDA graph
  (:mod:`~alphaforge.models.decoding`). ``generate(decode=...)`` picks it; in fp32 it gives the
  growing cache's tokens.
- Attention kernels per call from ``attention_backend`` (:func:`~alphaforge.utils.device.
  sdpa_context`): decoding never uses cuDNN's per-shape graphs.
- Training, evaluation, save/load and the forecaster live in
  :mod:`~alphaforge.models.gpt_forecaster` (as nanochat keeps its engine apart from ``gpt.py``).

Shapes: B batch, T tokens, V return tokens, C embedding (n_embd), H heads, Hk kv heads,
D head dim, S samples per prompt.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from alphaforge.errors import DataError
from alphaforge.models.base import require
from alphaforge.models.decoding import DecoderCache, GraphedStep, bucket, resolve_decode
from alphaforge.utils import device as dev

__all__ = ["GPT", "GPTConfig", "KVCache", "StaticKVCache", "prefix_tokens", "sample_next"]

AttentionBackend = Literal["auto", "flash", "efficient", "cudnn", "math"]


# ============================================================================ network
@dataclass(frozen=True)
class GPTConfig:
    """Size of a :class:`GPT`: the one declaration of the market GPT's network defaults.

    The defaults are a small model for daily return tokens (4 layers, width 128, 128-token
    windows); :class:`~alphaforge.models.gpt_forecaster.TokenGPTForecaster`'s params and the
    ``alphaforge gpt train`` options take theirs from here.

    Raises:
        ConfigError: a head dim that is odd (rotary) or does not divide ``n_embd``, ``n_kv_head``
            not dividing ``n_head``, or another field out of range.
    """

    sequence_len: int = 128  # longest context in tokens, prefix included (rotary table size)
    vocab_size: int = 128  # V: return tokens (the head's outputs)
    n_layer: int = 4
    n_head: int = 4  # query heads
    n_kv_head: int = 4  # key/value heads (GQA when < n_head)
    n_embd: int = 128
    n_symbols: int = 0  # symbol-conditioning tokens after BOS; 0: every window starts with BOS
    tie_embeddings: bool = False  # output head reuses the first V rows of the input embedding
    dropout: float = 0.0  # on each residual branch, training only
    attention_backend: AttentionBackend = "auto"  # SDPA kernels (utils.device.sdpa_context)

    def __post_init__(self) -> None:
        for name in ("sequence_len", "vocab_size", "n_layer", "n_head"):
            require(getattr(self, name) >= 1, self, name, "an int >= 1")
        require(
            self.n_embd % self.n_head == 0 and (self.n_embd // self.n_head) % 2 == 0,
            self,
            "n_embd",
            f"a multiple of n_head={self.n_head} with an even head dim (rotary)",
        )
        require(
            self.n_kv_head >= 1 and self.n_head % self.n_kv_head == 0,
            self,
            "n_kv_head",
            f"a divisor of n_head={self.n_head}",
        )
        require(self.n_symbols >= 0, self, "n_symbols", "an int >= 0")
        require(0 <= self.dropout < 1, self, "dropout", "in [0, 1)")
        require(
            self.attention_backend in dev.ATTENTION_BACKENDS,
            self,
            "attention_backend",
            f"one of {', '.join(dev.ATTENTION_BACKENDS)}",
        )

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


def rotary_tables(
    seq_len: int, head_dim: int, base: float = 10000.0
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

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``(B, Hk, T, D)`` keys/values at ``[pos, pos + T)``; return all up to there."""
        B, Hk, T, D = k.shape
        if self.k is None:
            shape = (self.n_layer, B, Hk, self.max_len, D)
            self.k, self.v = k.new_zeros(shape), v.new_zeros(shape)
        assert self.v is not None
        if self.pos + T > self.max_len:
            raise DataError(
                f"KV cache of {self.max_len} positions holds {self.pos}; {T} more do not fit"
            )
        self.k[layer, :, :, self.pos : self.pos + T] = k
        self.v[layer, :, :, self.pos : self.pos + T] = v
        return self.k[layer, :, :, : self.pos + T], self.v[layer, :, :, : self.pos + T]

    def repeat_interleave(self, n: int) -> None:
        """Copy every batch row ``n`` times in place (one prefill, ``n`` sampled futures)."""
        if self.k is not None and self.v is not None and n > 1:
            self.k = self.k.repeat_interleave(n, dim=1)
            self.v = self.v.repeat_interleave(n, dim=1)


class StaticKVCache:
    """Preallocated keys and values of every layer for N rows and ``max_len`` positions.

    One decode step writes position ``pos`` (a ``(1,)`` tensor, so the step's kernels never see
    a Python integer change) and attends over all ``max_len`` keys with a mask of the written
    ones: every step has the same shapes and addresses, which a CUDA graph needs.

    Args:
        n_layer, n_rows, n_kv_head, max_len, head_dim: Buffer shape
            ``(n_layer, N, Hk, max_len, D)``.
        dtype: dtype of the keys (that of the prefill's keys, bf16 under bf16 autocast).
        device: Where the buffers live.
    """

    def __init__(
        self,
        n_layer: int,
        n_rows: int,
        n_kv_head: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (n_layer, n_rows, n_kv_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)  # position being written
        self.positions = torch.arange(max_len, device=device)[None]  # (1, max_len)
        self.mask = self.positions <= self.pos  # (1, max_len) keys written so far

    def load(self, prefix: KVCache, repeats: int) -> None:
        """Copy a prefill's ``(B, ...)`` keys as ``(B * repeats, ...)`` rows; zero the rest."""
        T = prefix.pos
        assert prefix.k is not None and prefix.v is not None
        for mine, theirs in ((self.k, prefix.k), (self.v, prefix.v)):
            mine[:, :, :, :T] = theirs[:, :, :, :T].repeat_interleave(repeats, dim=1)
            mine[:, :, :, T:] = 0  # no stale keys of an earlier call behind the mask

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str
    ) -> torch.Tensor:
        """Write one position's ``(N, Hk, 1, D)`` keys/values; ``(N, H, 1, D)`` queries attend to
        every written position. Returns ``(N, H, 1, D)``."""
        self.k[layer].index_copy_(2, self.pos, k.to(self.k.dtype))
        self.v[layer].index_copy_(2, self.pos, v.to(self.v.dtype))
        N, H, _, D = q.shape
        Hk = self.k.shape[2]
        # grouped queries: head h = hk * G + g reads kv head hk, as enable_gqa's repeat does
        qg = q.reshape(N, Hk, H // Hk, D)  # (N, Hk, G, D): G queries per kv head
        with dev.sdpa_context(qg, backend, masked=True, varying_keys=True):
            k_all, v_all = self.k[layer], self.v[layer]  # (N, Hk, max_len, D)
            y = F.scaled_dot_product_attention(qg, k_all, v_all, attn_mask=self.mask)
        return y.reshape(N, H, 1, D)


AnyCache = KVCache | StaticKVCache | None  # growing, preallocated, or none (training)


class CausalSelfAttention(nn.Module):
    def __init__(self, c: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer, self.n_head, self.n_kv_head = layer, c.n_head, c.n_kv_head
        self.backend = c.attention_backend
        self.head_dim = c.n_embd // c.n_head
        self.c_q = nn.Linear(c.n_embd, c.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(c.n_embd, c.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(c.n_embd, c.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: AnyCache
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))  # QK-norm
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H|Hk, T, D)
        if isinstance(cache, StaticKVCache):  # fixed-shape one-token step
            y = cache.attend(self.layer, q, k, v, self.backend)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, Hk, Tk, D), Tk = cached + T
        Tk, gqa = k.size(2), self.n_kv_head != self.n_head
        # cached calls change key length call by call: no per-shape kernel builds (cuDNN)
        ctx = dev.sdpa_context(
            q, self.backend, masked=T not in (1, Tk), varying_keys=cache is not None
        )
        with ctx:
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

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: AnyCache
    ) -> torch.Tensor:
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
        self._decoders = DecoderCache()  # fixed-shape decoders by shape (decode static/graph)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Unit-variance projections, zero output projections (each block starts as identity)."""
        c = self.config
        nn.init.normal_(self.wte.weight, std=0.02 if c.tie_embeddings else 1.0)
        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.normal_(lin.weight, std=lin.in_features**-0.5)
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

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, V)`` logits, or the mean cross-entropy on ``targets``.

        Args:
            idx: Token ids in ``[0, n_input_tokens)``.
            targets: ``(B, T)`` next-token ids, -1 where ignored; then returns the scalar loss.
            cache: Continue after the cached positions (generation).
            last_only: Logits of the last position only, ``(B, 1, V)``.
        """
        B, T = idx.shape
        t0 = cache.pos if cache is not None else 0
        if t0 + T > self.config.sequence_len:
            raise DataError(
                f"{t0 + T} positions exceed the rotary table of sequence_len "
                f"{self.config.sequence_len}; pass a shorter context"
            )
        cos, sin = self.cos[:, t0 : t0 + T], self.sin[:, t0 : t0 + T]
        x = norm(self.wte(idx))  # (B, T, C)
        for block in self.blocks:
            x = block(x, cos, sin, cache)
        if cache is not None:
            cache.pos += T
        x = norm(x[:, -1:] if last_only else x)
        logits = F.linear(x, self._head())  # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1)

    def _head(self) -> torch.Tensor:
        """``(V, C)`` output weights: the head's, or the first V input embeddings when tied."""
        if self.lm_head is None:
            return self.wte.weight[: self.config.vocab_size]
        return self.lm_head.weight

    def decode_step(self, tok: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        """One token per row at position ``cache.pos``: ``(N,)`` ids -> ``(N, V)`` logits.

        Fixed shapes throughout (the position is a tensor); writes the token's keys and values
        into ``cache``. The caller advances ``cache.pos``.
        """
        cos, sin = self.cos.index_select(1, cache.pos), self.sin.index_select(1, cache.pos)
        cache.mask = cache.positions <= cache.pos  # (1, max_len) keys written, this one included
        x = norm(self.wte(tok[:, None]))  # (N, 1, C)
        for block in self.blocks:
            x = block(x, cos, sin, cache)
        return F.linear(norm(x[:, -1]), self._head())  # (N, V)

    @torch.inference_mode()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        *,
        num_samples: int = 1,
        uniforms: torch.Tensor | None = None,
        use_cache: bool = True,
        keep: int = 1,
        decode: str = "auto",
    ) -> torch.Tensor:
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
            decode: With the cache: ``eager`` (a cache growing by one position per step),
                ``static`` (a preallocated :class:`StaticKVCache`, fixed-shape steps),
                ``graph`` (``static`` replayed from a CUDA graph, CUDA only) or ``auto``
                (``graph`` on CUDA, else ``eager``). In fp32 all give the same tokens.

        Returns:
            ``(B * S, max_new_tokens)`` new tokens; rows ``b * S .. b * S + S - 1`` continue
            prompt ``b``.

        Raises:
            ConfigError: unknown ``decode``, or ``graph`` off CUDA.
        """
        B, T = idx.shape
        S, L = num_samples, self.config.sequence_len
        if uniforms is None:
            uniforms = torch.rand((B * S, max_new_tokens), generator=generator, dtype=torch.float64)
        uniforms = uniforms.to(idx.device)
        out = idx.new_empty((B * S, max_new_tokens))
        if max_new_tokens == 0:
            return out
        if use_cache and T + max_new_tokens - 1 <= L:
            mode = resolve_decode(decode, idx.device)
            cache = KVCache(self.config.n_layer, T + max_new_tokens - 1 if mode == "eager" else T)
            logits = self(idx, cache=cache, last_only=True)[:, -1].repeat_interleave(S, 0)
            if mode != "eager":
                graph, sampling = mode == "graph", (temperature, top_k)
                return self._generate_static(cache, logits, uniforms, out, sampling, graph)
            cache.repeat_interleave(S)  # (B, ...) -> (B * S, ...)
            for i in range(max_new_tokens):
                out[:, i] = tok = sample_next(logits, temperature, top_k, uniforms[:, i])
                if i + 1 < max_new_tokens:
                    logits = self(tok[:, None], cache=cache, last_only=True)[:, -1]
            return out
        seq = idx.repeat_interleave(S, 0)
        for i in range(max_new_tokens):
            ctx = (
                seq
                if seq.size(1) <= L
                else torch.cat([seq[:, :keep], seq[:, seq.size(1) - (L - keep) :]], dim=1)
            )
            logits = self(ctx, last_only=True)[:, -1]
            out[:, i] = tok = sample_next(logits, temperature, top_k, uniforms[:, i])
            seq = torch.cat([seq, tok[:, None]], dim=1)
        return out

    def _generate_static(
        self,
        prefix: KVCache,
        logits: torch.Tensor,
        uniforms: torch.Tensor,
        out: torch.Tensor,
        sampling: tuple[float, int | None],
        graph: bool,
    ) -> torch.Tensor:
        """Decode ``out.shape[1]`` tokens per row after a prefill, with fixed-shape steps.

        The static cache (and on CUDA the captured step) is kept per (rows, cache length,
        dtype, sampling settings) and reused by the next call of the same shape; its length is
        the prompt plus new tokens rounded up to 64 positions.
        """
        (N, n_new), T, device, c = out.shape, prefix.pos, out.device, self.config
        assert prefix.k is not None
        max_len = bucket(T + n_new - 1, 64, c.sequence_len)
        key = (N, max_len, prefix.k.dtype, dev.autocast_dtype(device), *sampling, graph)
        sample = functools.partial(sample_next, temperature=sampling[0], top_k=sampling[1])

        def build() -> _StaticDecoder:
            shape = (c.n_layer, N, c.n_kv_head, max_len, c.n_embd // c.n_head)
            cache = StaticKVCache(*shape, prefix.k.dtype, device)
            return _StaticDecoder(self, cache, sample, graph)

        out[:, 0] = tok = sample(logits, u=uniforms[:, 0])
        if n_new == 1:
            return out
        decoder = self._decoders.get(self, key, build)
        decoder.cache.load(prefix, N // prefix.k.shape[1])
        for i in range(1, n_new):
            out[:, i] = tok = decoder(tok, T + i - 1, uniforms[:, i])
        return out


class _StaticDecoder:
    """A :class:`StaticKVCache` and the step over it: token in, sampled token out."""

    def __init__(
        self, model: GPT, cache: StaticKVCache, sample: Callable[..., torch.Tensor], graph: bool
    ) -> None:
        N, device = cache.k.shape[1], cache.k.device
        self.model, self.cache, self.sample = model, cache, sample
        self.tok = torch.zeros(N, dtype=torch.long, device=device)  # static inputs and output
        self.u = torch.zeros(N, dtype=torch.float64, device=device)
        self.next = torch.zeros(N, dtype=torch.long, device=device)
        self.want_graph = graph
        self.graph: GraphedStep | None = None

    def _step(self) -> None:
        logits = self.model.decode_step(self.tok, self.cache)  # (N, V)
        self.next.copy_(self.sample(logits, u=self.u))

    def __call__(self, tok: torch.Tensor, pos: int, u: torch.Tensor) -> torch.Tensor:
        """The tokens after ``tok`` ``(N,)`` at position ``pos``, drawn with uniforms ``u``."""
        self.tok.copy_(tok)
        self.u.copy_(u)
        self.cache.pos.fill_(pos)
        if self.want_graph and self.graph is None:
            # capture now: the warm-up runs compute this very step (same inputs and position)
            self.graph = GraphedStep(self._step, self.tok.device)
        if self.graph is not None:
            self.graph()
        else:
            self._step()
        return self.next.clone()


def sample_next(
    logits: torch.Tensor, temperature: float, top_k: int | None, u: torch.Tensor
) -> torch.Tensor:
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


def prefix_tokens(
    symbols: Sequence[str], config: GPTConfig, vocabulary: Sequence[str] = ()
) -> npt.NDArray[np.int64]:
    """Prefix id per document: its symbol token when conditioning and known, else BOS."""
    ids = {s: i for i, s in enumerate(vocabulary)} if config.n_symbols else {}
    return np.asarray(
        [config.bos + 1 + ids[s] if s in ids else config.bos for s in symbols], dtype=np.int64
    )
