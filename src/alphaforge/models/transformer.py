"""Transformer encoder over backward-only lookback windows (nanoGPT's block, a regression head).

- Input projection of each bar's F channels to ``d_model``, plus a learned (default) or
  sinusoidal positional encoding (Vaswani et al., 2017, arXiv:1706.03762). Position ``T - 1``
  is always the row's own bar: windows are left-padded, so positions mean "bars ago".
- Pre-LN blocks (Xiong et al., 2020, arXiv:2002.04745: stable at high learning rates without a
  long warm-up): ``x + Attn(LN(x))``, ``x + MLP(LN(x))``, GELU MLP of width ``ff_mult * d_model``.
- Attention through ``F.scaled_dot_product_attention`` (fused flash / memory-efficient kernels
  on GPU), the kernels chosen per call from ``attention_backend`` by
  :func:`~alphaforge.utils.device.sdpa_context` (``auto``: flash in bf16, never cuDNN's
  per-shape graphs; on CPU torch's own choice). Causal by default: the window already ends at
  bar t, so full attention would not leak either, but with a causal mask the state at every
  position is itself a backward-only summary (the same net can later be trained on every
  position, or run incrementally), at no extra cost.
- Head: final LayerNorm, then a linear head on the last token (the row's own bar); multi-task
  nets add a positive volatility output (softplus).
- nanoGPT init: N(0, 0.02) weights, residual projections scaled by ``1 / sqrt(2 n_layers)``.

Shapes: B batch, T lookback, F channels, D d_model, nh heads, hd = D / nh, K outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from alphaforge.errors import DataError
from alphaforge.models.base import Capabilities, require
from alphaforge.models.params import Part, compose_params
from alphaforge.models.torch_base import (
    MULTITASK_CAPS,
    MultiTaskFields,
    SequenceFields,
    TorchForecaster,
    check_window,
    positive,
    suggest_multitask,
    suggest_training,
)
from alphaforge.utils import device as dev

if TYPE_CHECKING:
    import optuna

AttentionBackend = Literal["auto", "flash", "efficient", "cudnn", "math"]

__all__ = [
    "AttentionBackend",
    "MultiTaskTransformerForecaster",
    "MultiTaskTransformerParams",
    "TransformerConfig",
    "TransformerForecaster",
    "TransformerNet",
    "TransformerParams",
]


# ============================================================================ network
@dataclass(frozen=True)
class TransformerConfig:
    """Size of a :class:`TransformerNet`; the transformer forecasters' params are composed from
    it (``n_outputs`` and ``multitask`` are fixed by the class)."""

    n_features: int  # F: input channels per bar
    d_model: int = 64  # D
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    ff_mult: int = 4  # MLP width = ff_mult * D
    max_len: int = 512  # longest window (learned positional table size); must cover lookback
    positional: Literal["learned", "sinusoidal"] = "learned"
    causal: bool = True
    n_outputs: int = 1  # K (2 when multitask)
    multitask: bool = False  # outputs (return, volatility > 0)
    attention_backend: AttentionBackend = "auto"  # SDPA kernels (utils.device.sdpa_context)

    def __post_init__(self) -> None:
        check_attention(self)
        require(self.max_len >= 1, self, "max_len", "an int >= 1")


def check_attention(c: Any) -> None:
    """Checks shared by the encoder configs here and in the ranker.

    Raises:
        ConfigError: ``d_model`` not a multiple of ``n_heads``, a bad depth, dropout or MLP
            width, or an unknown ``attention_backend``.
    """
    require(
        c.n_heads >= 1 and c.d_model % c.n_heads == 0,
        c,
        "d_model",
        f"a multiple of n_heads={c.n_heads}",
    )
    require(c.n_layers >= 1, c, "n_layers", "an int >= 1")
    require(0 <= c.dropout < 1, c, "dropout", "in [0, 1)")
    require(c.ff_mult >= 1, c, "ff_mult", "an int >= 1")
    require(
        c.attention_backend in dev.ATTENTION_BACKENDS,
        c,
        "attention_backend",
        f"one of {', '.join(dev.ATTENTION_BACKENDS)}",
    )


class SelfAttention(nn.Module):
    """Multi-head self-attention (SDPA) over ``(B, T, D)``: causal, or masked by ``keep``.

    Shared by the transformer (causal when ``c.causal``) and the ranker (no ``causal`` field:
    its whole window is already at or before the row's bar; ``keep`` masks padded assets).
    """

    def __init__(self, c: Any) -> None:
        super().__init__()
        self.n_heads, self.dropout = c.n_heads, c.dropout
        self.causal = bool(getattr(c, "causal", False))
        self.backend = c.attention_backend
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 x (B, T, D)
        q, k, v = (
            t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, T, hd)
        drop = self.dropout if self.training else 0.0
        with dev.sdpa_context(q, self.backend, masked=keep is not None):
            if keep is not None:  # (B, 1, 1 or T, T) bool: True where a key may be attended
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=drop)
            else:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, D)  # re-assemble heads
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(c.d_model, c.ff_mult * c.d_model)
        self.proj = nn.Linear(c.ff_mult * c.d_model, c.d_model)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(c.d_model), SelfAttention(c)
        self.ln2, self.mlp = nn.LayerNorm(c.d_model), MLP(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # pre-LN: the residual stream is never normalised
        return x + self.mlp(self.ln2(x))


def init_linear(module: nn.Module) -> None:
    """GPT-2 init for ``nn.Module.apply``: Linear weights N(0, 0.02), biases zero."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def sinusoidal(max_len: int, d: int) -> torch.Tensor:
    """``(max_len, d)`` fixed sin/cos table of Vaswani et al."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(max_len, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return table


class TransformerNet(nn.Module):
    """Pre-LN transformer encoder over a ``(B, T, F)`` window with a last-token head."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        c = self.config = config
        self.inp = nn.Linear(c.n_features, c.d_model)  # (B, T, F) -> (B, T, D)
        if c.positional == "learned":
            self.pos = nn.Parameter(torch.zeros(c.max_len, c.d_model))
        else:
            self.register_buffer("pos", sinusoidal(c.max_len, c.d_model), persistent=False)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, 2 if c.multitask else c.n_outputs)
        self.apply(init_linear)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual projections: GPT-2 scaled init
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))
        if c.positional == "learned":
            nn.init.normal_(self.pos, mean=0.0, std=0.02)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, F) -> (B, T, D)``: normalised states, causal: step t reads steps <= t."""
        T = x.shape[1]
        if T > self.config.max_len:
            raise DataError(f"window of {T} bars is longer than max_len={self.config.max_len}")
        h = self.drop(self.inp(x) + self.pos[:T])  # (B, T, D)
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, F) -> (B, K)``; multitask: ``[:, 0]`` return, ``[:, 1]`` volatility > 0."""
        out = self.head(self.encode(x)[:, -1])  # (B, K) from the row's own bar
        if self.config.multitask:
            out = torch.stack([out[:, 0], positive(out[:, 1])], dim=1)  # (B, 2)
        return out


# ============================================================================ forecasters
_NET = Part(TransformerConfig, "net", exclude=("n_features", "n_outputs", "multitask"))
TransformerParams = compose_params(
    "TransformerParams",
    module=__name__,
    net=_NET,
    extra=(SequenceFields,),
    check=check_window,
    doc="Params of the transformer forecaster: window, encoder, training.",
)
MultiTaskTransformerParams = compose_params(
    "MultiTaskTransformerParams",
    module=__name__,
    net=_NET,
    extra=(SequenceFields, MultiTaskFields),
    check=check_window,
    doc=":data:`TransformerParams` plus the multi-task fields (target, vol_loss, vol_weight).",
)


def _suggest_transformer(trial: optuna.Trial) -> dict[str, Any]:
    d_model = trial.suggest_categorical("d_model", [32, 64, 128])
    return {
        **suggest_training(trial),
        "d_model": d_model,
        "n_heads": trial.suggest_categorical("n_heads", [2, 4]),
        "n_layers": trial.suggest_int("n_layers", 1, 4),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "ff_mult": trial.suggest_categorical("ff_mult", [2, 4]),
    }


_TINY = {
    "lookback": 8,
    "d_model": 8,
    "n_heads": 2,
    "n_layers": 1,
    "ff_mult": 2,
    "max_epochs": 2,
    "batch_size": 64,
    "device": "cpu",
    "predict_batch_size": 1024,
}


class TransformerForecaster(TorchForecaster):
    """Pre-LN transformer encoder over each row's lookback window; last-token forecast."""

    Config = TransformerParams
    Net = TransformerNet

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return _suggest_transformer(trial)

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return dict(_TINY)


class MultiTaskTransformerForecaster(TransformerForecaster):
    """Transformer with a return head and a positive volatility head (see the LSTM twin)."""

    Config = MultiTaskTransformerParams
    multitask = True
    capabilities: ClassVar[Capabilities] = MULTITASK_CAPS

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {**_suggest_transformer(trial), **suggest_multitask(trial)}
