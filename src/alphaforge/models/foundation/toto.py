"""Toto through the ``toto-ts`` package (extra ``toto``).

Datadog, 2025, "This Time is Different: An Observability Perspective on Time Series Foundation
Models", arXiv:2505.14766.

- The network is ``toto.model.toto.Toto`` (patch embedding, causal time-wise and space-wise
  attention, a Student-t mixture head), built from a local checkpoint with
  ``Toto.load_from_checkpoint(dir)`` (``model.safetensors`` + ``config.json``), or from a tiny
  random config for tests. Nothing is downloaded.
- One context pass: the head gives, for every step of the next patch (``patch_size`` bars), a
  mixture of Student-t distributions, affinely rescaled by Toto's causal scaler. Every step of
  a patch is drawn independently from its marginal, so all samples of a horizon within one patch
  come from a single forward pass (the package's forecaster instead replicates the context once
  per sample and runs the network for each batch of samples; identical in distribution). Longer
  horizons would need autoregressive decoding and are refused.
- Draws are counter-based, like every adapter here: the mixture component by inverse CDF, the
  Student-t by Bailey's polar method (Bailey, 1994, Math. Comp. 62: ``T = U sqrt(df (W^(-2/df)
  - 1) / W)`` for ``(U, V)`` uniform in the unit disc, ``W = U^2 + V^2``), with a fixed number
  of candidate pairs so it vectorises (the chance that all ``n_candidates`` pairs miss the disc
  is ``0.215^n``; such a draw returns the component's location).
- ``compile=True`` compiles the backbone (``torch.compile``, inductor; ``mode="reduce-overhead"``
  (CUDA graphs) on CUDA). Fixed batch shapes keep it from recompiling.

Install: ``pip install 'alphaforge[toto]'`` then ``pip install --no-deps toto-ts gluonts``
(``scripts/setup.sh`` does both): toto-ts pins torch 2.7.0 and gluonts pins pandas < 3, so both
are installed without their pins and the extra lists what they really import.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from alphaforge.errors import ConfigError
from alphaforge.models.base import require
from alphaforge.models.foundation.aggregate import default_aggregations
from alphaforge.models.foundation.base import (
    Contexts,
    FoundationAdapter,
    FoundationParams,
    find_weights_dir,
    keyed_uniform,
    read_json,
)

try:
    with warnings.catch_warnings():  # gluonts: "Using `json`-module for json-handling"
        warnings.filterwarnings("ignore", message=".*json-handling.*", category=UserWarning)
        from toto.data.util.dataset import replace_extreme_values
        from toto.model.attention import XFORMERS_AVAILABLE
        from toto.model.toto import Toto
except ImportError as exc:  # the registry shows this instead of a bare ModuleNotFoundError
    raise ConfigError(
        f"model 'toto' needs the packages toto-ts and gluonts ({exc}); install them with: "
        "pip install 'alphaforge[toto]' && pip install --no-deps toto-ts==0.2.0 gluonts==0.17.0 "
        "(--no-deps: toto-ts pins torch==2.7.0 and gluonts pins pandas<3)"
    ) from exc

if TYPE_CHECKING:
    import optuna

__all__ = ["TOTO_ARCHS", "TotoAdapter", "TotoParams", "student_t_polar"]

_SCALER = "<class 'model.scaler.CausalPatchStdMeanScaler'>"
_MIXTURE = "<class 'model.distribution.MixtureOfStudentTsOutput'>"

TOTO_ARCHS: dict[str, dict[str, Any]] = {
    "tiny": {
        "patch_size": 8,
        "stride": 8,
        "embed_dim": 32,
        "num_layers": 2,
        "num_heads": 2,
        "mlp_hidden_dim": 64,
        "dropout": 0.0,
        "spacewise_every_n_layers": 2,
        "scaler_cls": _SCALER,
        "output_distribution_classes": [_MIXTURE],
        "output_distribution_kwargs": {"k_components": 3},
        "spacewise_first": True,
        "use_memory_efficient_attention": False,
        "stabilize_with_global": True,
        "scale_factor_exponent": 10.0,
    },
}


@dataclass(frozen=True)
class TotoParams(FoundationParams):
    """Toto adapter config."""

    max_context: int = 1024  # bars of context (rounded up to whole patches with padding)
    num_samples: int = 256
    n_candidates: int = 12  # polar-method candidate pairs per Student-t draw

    def __post_init__(self) -> None:
        super().__post_init__()
        require(1 <= self.n_candidates <= 32, self, "n_candidates", "an int in [1, 32]")


def student_t_polar(df: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Standard Student-t draws from uniforms by Bailey's polar method.

    Args:
        df: ``(...)`` degrees of freedom (> 0).
        u: ``(..., 2 * n)`` uniforms in (0, 1): ``n`` candidate points of the square.

    Returns:
        ``(...)`` draws; 0 where no candidate falls in the unit disc.
    """
    pts = u.unflatten(-1, (-1, 2)) * 2 - 1  # (..., n, 2) in (-1, 1)^2
    w = (pts**2).sum(-1)  # (..., n)
    inside = (w < 1) & (w > 0)
    first = torch.argmax(inside.to(torch.int8), dim=-1, keepdim=True)  # first accepted
    w1 = torch.gather(w, -1, first)[..., 0].clamp(1e-30, 1 - 1e-7)
    u1 = torch.gather(pts[..., 0], -1, first)[..., 0]
    t = u1 * torch.sqrt(df * (w1 ** (-2 / df) - 1) / w1)
    return torch.where(inside.any(-1), t, torch.zeros_like(t))


class TotoAdapter(FoundationAdapter):
    """Toto forecaster: samples of the next patch from one pass over each context."""

    Config = TotoParams
    bank_size = 4096  # the largest num_samples of search_space
    test_samples = 16

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "num_samples": trial.suggest_int("num_samples", 64, 4096, log=True),
            "aggregation": trial.suggest_categorical("aggregation", list(default_aggregations())),
        }

    # ------------------------------------------------------------------ modules
    @classmethod
    def _build_module(cls, module_config: dict[str, Any]) -> nn.Module:
        config = dict(module_config)
        if not XFORMERS_AVAILABLE:
            config["use_memory_efficient_attention"] = False
        module = Toto(**config)
        module.alphaforge_config = json.loads(json.dumps(module_config))  # for saving
        return module

    @classmethod
    def _arch_config(cls, arch: str) -> dict[str, Any]:
        if arch not in TOTO_ARCHS:
            raise ConfigError(
                f"TotoParams.arch must be one of {sorted(TOTO_ARCHS)}, got "
                f"{arch!r} (released weights: set weights)"
            )
        return dict(TOTO_ARCHS[arch])

    def _module_config_of(self, module: nn.Module) -> dict[str, Any]:
        config = getattr(module, "alphaforge_config", None)  # set by _build_module / loading
        if config is None:
            raise ConfigError(
                "TotoAdapter needs the network's config to save it: build the "
                "module with TotoAdapter.from_config(config) or from_path(dir)"
            )
        return dict(config)

    def _locate(self, c: Any) -> Any:
        return find_weights_dir(
            c.weights,
            ("config.json", "model.safetensors"),
            ("Toto-Open-Base-1.0",),
            accept=lambda p: "patch_size" in read_json(p / "config.json"),
        )

    def _load_weights(self, c: Any) -> tuple[nn.Module, dict[str, Any]]:
        folder = self._locate(c)
        module = Toto.load_from_checkpoint(str(folder), map_location="cpu")
        config = read_json(folder / "config.json")
        module.alphaforge_config = config
        return module, config

    def _prepare(self, module: nn.Module, device: torch.device) -> None:
        c = self._cfg()
        self.backbone_fn_ = module.model.backbone
        if c.compile:
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            self.backbone_fn_ = torch.compile(module.model.backbone, mode=mode)

    # ------------------------------------------------------------------ sampling
    def _sample_batch(self, ctx: Contexts, horizon: int, n_samples: int) -> torch.Tensor:
        c = self._cfg()
        inner = self.module_.model
        P = int(inner.patch_embed.patch_size)
        stride = int(inner.patch_embed.stride)
        if horizon > P:
            raise ConfigError(f"Toto draws one patch ahead: horizon {horizon} > patch size {P}")
        device = next(inner.parameters()).device
        B, T = ctx.prices.shape
        Tp = -(-T // stride) * stride  # left padding to whole patches
        series = np.zeros((B, 1, Tp))
        series[:, 0, Tp - T :] = np.where(ctx.valid, ctx.prices, 0.0)
        mask = np.zeros((B, 1, Tp), dtype=bool)
        mask[:, 0, Tp - T :] = ctx.valid
        inputs = torch.from_numpy(series).to(device, torch.float32)
        padding = torch.from_numpy(mask).to(device)
        flat, loc, scale = self.backbone_fn_(
            inputs, padding, torch.zeros_like(inputs, dtype=torch.int), scaling_prefix_length=Tp
        )
        dist = inner.output_distribution(flat[:, :, -P:][:, :, :horizon].float())
        if loc.shape[-1] > 1:  # causal scaler: per-step statistics of the last input patch
            loc, scale = loc[:, :, -P:][:, :, :horizon], scale[:, :, -P:][:, :, :horizon]
        if isinstance(dist, torch.distributions.MixtureSameFamily):
            probs = dist.mixture_distribution.probs[:, 0]  # (B, H, K)
            comp = dist.component_distribution
            df, mu, sigma = comp.df[:, 0], comp.loc[:, 0], comp.scale[:, 0]
        else:  # a single Student-t head
            df, mu, sigma = (p[:, 0, :, None] for p in (dist.df, dist.loc, dist.scale))
            probs = torch.ones_like(df)
        u = keyed_uniform(
            torch.from_numpy(ctx.keys),
            n_samples,
            horizon,
            1 + 2 * c.n_candidates,
            device=device if device.type == "cuda" else None,
        ).to(device)
        cdf = torch.cumsum(probs, -1)[:, None].expand(B, n_samples, horizon, -1)
        k = torch.searchsorted(
            cdf.contiguous(), (u[..., 0] * cdf[..., -1])[..., None], right=True
        ).clamp_max(probs.shape[-1] - 1)  # (B, S, H, 1)

        def pick(p: torch.Tensor) -> torch.Tensor:  # (B, H, K) -> (B, S, H) at component k
            return torch.gather(p[:, None].expand(B, n_samples, horizon, -1), -1, k)[..., 0]

        t = student_t_polar(pick(df), u[..., 1:])
        draw = pick(mu) + pick(sigma) * t  # (B, S, H) in scaled units
        draw = loc.float()[:, 0][:, None] + scale.float()[:, 0][:, None] * draw
        return replace_extreme_values(draw)
