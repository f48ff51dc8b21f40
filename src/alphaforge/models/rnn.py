"""Recurrent sequence models over backward-only lookback windows, in one file (shared code).

- LSTM (Hochreiter & Schmidhuber, 1997, "Long Short-Term Memory", Neural Computation 9) and
  GRU (Cho et al., 2014, arXiv:1406.1078) stacks read a ``(B, T, F)`` window and a linear head
  reads the last step: the state after the row's own bar.
- Residual LSTM: single-layer LSTMs with pre-LayerNorm skip connections between stacked layers
  (``h = h + LSTM(LN(h))``, Kim et al., 2017, arXiv:1701.03360), so deeper stacks train.
- Attention LSTM: additive attention pooling over the LSTM's outputs (Bahdanau et al., 2015,
  arXiv:1409.0473), concatenated with the last step: the head can read any bar of the window.
- CNN-LSTM: a causal Conv1d feature extractor (left zero padding only: step t reads bars
  t-k+1..t, never a later bar) in front of the LSTM (Livieris et al., 2020, Neural Computing and
  Applications 32).
- Multi-task: a return head and a volatility head (softplus, so positive); trained with
  MSE(return) + QLIKE(volatility) by :class:`~alphaforge.models.torch_base.TorchForecaster`.
- The window is already backward-only (it ends at the row's bar), so every part may read the
  whole window; causality of the conv stack still matters for the steps inside it.
- Mixed precision: under bf16/fp16 autocast the LSTM/GRU layers still run in fp32 by default
  (``recurrent_precision="fp32"``: cuDNN's fp32 RNN kernels, casts around them): a fallback,
  because LSTM training with the recurrent layers in bf16 measured slower than fp32 at these
  widths (0.92x for h64 x 2, T64 on an H200); the linear, conv and attention parts follow
  autocast.
  ``recurrent_precision="autocast"`` lets the recurrent layers run in the autocast dtype too.

Shapes: B batch, T lookback, F channels, H hidden, C conv channels, K outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from alphaforge.models.base import Capabilities, require
from alphaforge.models.params import Part, compose_params
from alphaforge.models.torch_base import (
    MULTITASK_CAPS,
    MultiTaskFields,
    SequenceFields,
    TorchForecaster,
    positive,
    suggest_multitask,
    suggest_training,
)
from alphaforge.utils import device as dev

if TYPE_CHECKING:
    import optuna

__all__ = [
    "AttentionLSTMForecaster",
    "CNNLSTMForecaster",
    "CNNLSTMParams",
    "GRUForecaster",
    "LSTMForecaster",
    "MultiTaskLSTMForecaster",
    "MultiTaskRNNParams",
    "RNNConfig",
    "RNNNet",
    "RNNParams",
    "ResidualLSTMForecaster",
]


# ============================================================================ network
@dataclass(frozen=True)
class RNNConfig:
    """Size and variant of an :class:`RNNNet`; the recurrent forecasters' params are composed
    from it (``cell``, ``variant``, ``n_outputs``, ``multitask`` are fixed by the class)."""

    n_features: int  # F: input channels per bar
    hidden: int = 64  # H: units per recurrent layer
    n_layers: int = 2
    dropout: float = 0.1  # between layers and before the head
    cell: Literal["lstm", "gru"] = "lstm"
    variant: Literal["plain", "residual", "attention", "cnn"] = "plain"
    conv_channels: int = 32  # C: causal conv filters, cnn variant only
    conv_kernel: int = 3  # bars each filter reads (the bar and k-1 before it), cnn variant only
    n_outputs: int = 1  # K (2 when multitask)
    multitask: bool = False  # outputs (return, volatility > 0)
    # LSTM/GRU layers under mixed precision: fp32 (autocast off around them) or autocast
    recurrent_precision: Literal["fp32", "autocast"] = "fp32"

    def __post_init__(self) -> None:
        require(self.hidden >= 1, self, "hidden", "an int >= 1")
        require(
            self.recurrent_precision in ("fp32", "autocast"),
            self,
            "recurrent_precision",
            "'fp32' or 'autocast'",
        )
        require(self.n_layers >= 1, self, "n_layers", "an int >= 1")
        require(0 <= self.dropout < 1, self, "dropout", "in [0, 1)")
        require(self.conv_channels >= 1, self, "conv_channels", "an int >= 1")
        require(self.conv_kernel >= 1, self, "conv_kernel", "an int >= 1")


class CausalConv1d(nn.Module):
    """``(B, T, F) -> (B, T, C)`` convolution over time whose step t reads steps t-k+1..t only."""

    def __init__(self, n_in: int, n_out: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(n_in, n_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))  # (B, F, k-1+T): left padding only
        return self.conv(x).transpose(1, 2)  # (B, T, C)


class RNNNet(nn.Module):
    """LSTM/GRU stack (plain, residual, attention or CNN front end) with a last-step head."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        c = self.config = config
        cell = nn.LSTM if c.cell == "lstm" else nn.GRU
        n_in = c.n_features
        if c.variant == "cnn":  # causal feature extractor in front of the recurrent stack
            self.conv = nn.Sequential(CausalConv1d(n_in, c.conv_channels, c.conv_kernel), nn.GELU())
            n_in = c.conv_channels
        if c.variant == "residual":
            self.proj = nn.Linear(n_in, c.hidden)  # (B, T, F) -> (B, T, H): width of the skips
            self.layers = nn.ModuleList(
                cell(c.hidden, c.hidden, batch_first=True) for _ in range(c.n_layers)
            )
            self.norms = nn.ModuleList(nn.LayerNorm(c.hidden) for _ in range(c.n_layers))
            self.norm_out = nn.LayerNorm(c.hidden)
        else:  # dropout between stacked layers (torch ignores it on the last one)
            self.rnn = cell(
                n_in,
                c.hidden,
                c.n_layers,
                batch_first=True,
                dropout=c.dropout if c.n_layers > 1 else 0.0,
            )
        width = c.hidden
        if c.variant == "attention":  # additive score per step: v^T tanh(W o_t)
            self.score = nn.Sequential(
                nn.Linear(c.hidden, c.hidden), nn.Tanh(), nn.Linear(c.hidden, 1, bias=False)
            )
            width = 2 * c.hidden  # pooled context + last step
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(width, 2 if c.multitask else c.n_outputs)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, F) -> (B, T, H)``: the recurrent state after each bar of the window."""
        if self.config.variant == "cnn":
            x = self.conv(x)  # (B, T, C)
        if self.config.variant != "residual":
            return self._recurrent(self.rnn, x)  # (B, T, H)
        h = self.proj(x)  # (B, T, H)
        for norm, rnn in zip(self.norms, self.layers, strict=True):
            h = h + self.drop(self._recurrent(rnn, norm(h)))  # pre-LN skip: gradients flow
        return self.norm_out(h)

    def _recurrent(self, rnn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``rnn``'s ``(B, T, H)`` outputs, in fp32 outside autocast unless configured not to."""
        if self.config.recurrent_precision == "autocast":
            return rnn(x)[0]
        with dev.full_precision(x.device):  # a no-op change for fp32 inputs without autocast
            return rnn(x.float())[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, F) -> (B, K)``; multitask: ``[:, 0]`` return, ``[:, 1]`` volatility > 0."""
        o = self.encode(x)  # (B, T, H)
        z = o[:, -1]  # (B, H) state after the row's own bar
        if self.config.variant == "attention":
            alpha = torch.softmax(self.score(o), dim=1)  # (B, T, 1) weights over the window
            z = torch.cat([(alpha * o).sum(dim=1), z], dim=-1)  # (B, 2H)
        out = self.head(self.drop(z))  # (B, K)
        if self.config.multitask:
            out = torch.stack([out[:, 0], positive(out[:, 1])], dim=1)  # (B, 2)
        return out


# ============================================================================ forecasters
_FIXED = ("n_features", "cell", "variant", "n_outputs", "multitask")  # set by the class
_PLAIN = Part(RNNConfig, "net", exclude=(*_FIXED, "conv_channels", "conv_kernel"))
RNNParams = compose_params(
    "RNNParams",
    module=__name__,
    net=_PLAIN,
    extra=(SequenceFields,),
    doc="Params of the LSTM/GRU forecasters: window, recurrent stack, training.",
)
CNNLSTMParams = compose_params(
    "CNNLSTMParams",
    module=__name__,
    net=Part(RNNConfig, "net", exclude=_FIXED),
    extra=(SequenceFields,),
    doc=":data:`RNNParams` plus the causal conv front end.",
)
MultiTaskRNNParams = compose_params(
    "MultiTaskRNNParams",
    module=__name__,
    net=_PLAIN,
    extra=(SequenceFields, MultiTaskFields),
    doc=":data:`RNNParams` plus the multi-task fields (target, vol_loss, vol_weight).",
)


def _suggest_rnn(trial: optuna.Trial, max_layers: int = 3) -> dict[str, Any]:
    return {
        **suggest_training(trial),
        "hidden": trial.suggest_categorical("hidden", [32, 64, 128, 256]),
        "n_layers": trial.suggest_int("n_layers", 1, max_layers),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }


_TINY = {
    "lookback": 8,
    "hidden": 8,
    "n_layers": 2,
    "max_epochs": 2,
    "batch_size": 64,
    "device": "cpu",
    "predict_batch_size": 1024,
}


class _RNNForecaster(TorchForecaster):
    """Shared wiring of the recurrent forecasters; each subclass only fixes cell and variant."""

    Config = RNNParams
    Net = RNNNet
    max_layers: ClassVar[int] = 3

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return _suggest_rnn(trial, max_layers=cls.max_layers)

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return dict(_TINY)


class LSTMForecaster(_RNNForecaster):
    """Stacked LSTM over each row's lookback window; forecast from the last step."""

    net_fixed: ClassVar[dict[str, Any]] = {"cell": "lstm", "variant": "plain"}


class GRUForecaster(_RNNForecaster):
    """Stacked GRU over each row's lookback window; forecast from the last step."""

    net_fixed: ClassVar[dict[str, Any]] = {"cell": "gru", "variant": "plain"}


class ResidualLSTMForecaster(_RNNForecaster):
    """LSTM layers joined by pre-LayerNorm residual connections."""

    net_fixed: ClassVar[dict[str, Any]] = {"cell": "lstm", "variant": "residual"}
    max_layers: ClassVar[int] = 4  # skips make deeper stacks trainable


class AttentionLSTMForecaster(_RNNForecaster):
    """LSTM with attention pooling over the window, concatenated with the last step."""

    net_fixed: ClassVar[dict[str, Any]] = {"cell": "lstm", "variant": "attention"}


class CNNLSTMForecaster(_RNNForecaster):
    """Causal Conv1d feature extractor, then an LSTM stack."""

    Config = CNNLSTMParams
    net_fixed: ClassVar[dict[str, Any]] = {"cell": "lstm", "variant": "cnn"}

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            **_suggest_rnn(trial),
            "conv_channels": trial.suggest_categorical("conv_channels", [16, 32, 64]),
            "conv_kernel": trial.suggest_int("conv_kernel", 2, 7),
        }

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {**_TINY, "conv_channels": 8}


class MultiTaskLSTMForecaster(LSTMForecaster):
    """LSTM with a return head and a positive volatility head.

    Predicts returns (or, on a volatility label, the volatility head);
    :meth:`predict_volatility` gives the volatility head in either case.
    """

    Config = MultiTaskRNNParams
    multitask = True
    capabilities: ClassVar[Capabilities] = MULTITASK_CAPS

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {**_suggest_rnn(trial), **suggest_multitask(trial)}
