"""Chronos-Bolt through ``chronos-forecasting`` (extra ``chronos``).

Ansari et al., 2024, "Chronos: Learning the Language of Time Series", arXiv:2403.07815; the
Bolt variant (Amazon, 2024) predicts quantiles directly.

- The network is ``chronos.chronos_bolt.ChronosBoltModelForForecasting`` (a T5 encoder over
  patches of the mean/std-normalised context, one decoder step emitting quantiles of the next
  ``prediction_length`` bars), loaded from a local checkpoint (``config.json`` +
  ``model.safetensors``, ``local_files_only``) or built from a tiny random T5 config for tests.
- Quantiles as samples: the model predicts fixed levels (0.1, ..., 0.9), one forecast pass per
  context, no randomness. ``quantile_mode="levels"`` treats the predicted quantiles of each step
  as the sample set (``num_samples`` is then the number of levels); ``"interpolate"`` reads
  ``num_samples`` evenly spaced levels ``(i + 0.5) / S`` off the piecewise-linear quantile
  function, flat beyond the outer levels (what ``ChronosBoltPipeline.predict_quantiles`` does
  for levels it was not trained on). Crossing quantiles are sorted first (monotone
  rearrangement, Chernozhukov et al., 2010, Econometrica 78). A "sample path" takes the same
  level at every step, so only per-step quantities are exact: the ``h``-bar return (a monotone
  function of the price at ``t+h``) is; realised volatility over a path is not, and is not
  offered.
- Missing bars and left padding are NaN, which the model masks itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from alphaforge.errors import ConfigError
from alphaforge.models.base import Capabilities
from alphaforge.models.foundation.base import (
    Contexts,
    FoundationAdapter,
    FoundationParams,
    find_weights_dir,
    read_json,
)

try:
    from chronos.chronos_bolt import ChronosBoltModelForForecasting
    from transformers import T5Config
except ImportError as exc:  # the registry shows this instead of a bare ModuleNotFoundError
    raise ConfigError(
        f"model 'chronos' needs the package chronos-forecasting ({exc}); install "
        "it with: pip install 'alphaforge[chronos]'"
    ) from exc

if TYPE_CHECKING:
    import optuna

__all__ = ["CHRONOS_ARCHS", "ChronosAdapter", "ChronosParams", "interpolate_quantiles"]

_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

CHRONOS_ARCHS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model_type": "t5",
        "architectures": ["ChronosBoltModelForForecasting"],
        "d_model": 32,
        "d_ff": 64,
        "d_kv": 16,
        "num_heads": 2,
        "num_layers": 1,
        "num_decoder_layers": 1,
        "dropout_rate": 0.0,
        "feed_forward_proj": "relu",
        "vocab_size": 2,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "is_encoder_decoder": True,
        "chronos_config": {
            "context_length": 64,
            "prediction_length": 8,
            "input_patch_size": 8,
            "input_patch_stride": 8,
            "quantiles": _LEVELS,
            "use_reg_token": True,
        },
    },
}

QUANTILE_AGGREGATIONS = (
    "median",
    "mean",
    "trimmed_mean_10",
    "trimmed_mean_25",
    "winsorized_mean_10",
    "q40",
    "q45",
    "q55",
    "q60",
)


@dataclass(frozen=True)
class ChronosParams(FoundationParams):
    """Chronos-Bolt adapter config."""

    max_context: int = 2048
    num_samples: int = 99  # interpolated levels per row ("interpolate" mode)
    quantile_mode: Literal["levels", "interpolate"] = "interpolate"


def interpolate_quantiles(q: torch.Tensor, levels: torch.Tensor, n: int) -> torch.Tensor:
    """Read ``n`` evenly spaced levels off a piecewise-linear quantile function.

    Args:
        q: ``(B, Q, H)`` predicted quantiles at ``levels`` (ascending, in (0, 1)).
        levels: ``(Q,)``.
        n: Samples S; level ``i`` is ``(i + 0.5) / n``.

    Returns:
        ``(B, S, H)``; flat below the lowest and above the highest level.
    """
    grid = torch.cat([levels.new_zeros(1), levels, levels.new_ones(1)])  # (Q + 2,)
    vals = torch.cat([q[:, :1], q, q[:, -1:]], dim=1)  # (B, Q + 2, H)
    want = (torch.arange(n, device=q.device, dtype=levels.dtype) + 0.5) / n
    hi = torch.searchsorted(grid, want, right=True).clamp(1, len(grid) - 1)  # (S,)
    lo = hi - 1
    frac = ((want - grid[lo]) / (grid[hi] - grid[lo]))[None, :, None]
    return vals[:, lo] + frac.to(q.dtype) * (vals[:, hi] - vals[:, lo])


class ChronosAdapter(FoundationAdapter):
    """Chronos-Bolt forecaster: quantiles of the ``h``-bar return, as a sample set."""

    Config = ChronosParams
    bank_params = ("aggregation",)  # interpolated levels are not a prefix-stable sample set
    test_samples = len(_LEVELS)  # one sample per predicted quantile level
    capabilities: ClassVar[Capabilities] = Capabilities(
        family="foundation", needs_sequence=True, label_kinds=("return",)
    )

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "max_context": trial.suggest_categorical(
                "max_context", [64, 128, 256, 512, 1024, 2048]
            ),
            "quantile_mode": trial.suggest_categorical("quantile_mode", ["levels", "interpolate"]),
            "aggregation": trial.suggest_categorical("aggregation", list(QUANTILE_AGGREGATIONS)),
        }

    # ------------------------------------------------------------------ modules
    @classmethod
    def _build_module(cls, module_config: dict[str, Any]) -> nn.Module:
        return ChronosBoltModelForForecasting(T5Config.from_dict(dict(module_config)))

    @classmethod
    def _arch_config(cls, arch: str) -> dict[str, Any]:
        if arch not in CHRONOS_ARCHS:
            raise ConfigError(
                f"ChronosParams.arch must be one of {sorted(CHRONOS_ARCHS)}, got "
                f"{arch!r} (released weights: set weights)"
            )
        return json.loads(json.dumps(CHRONOS_ARCHS[arch]))

    def _module_config_of(self, module: nn.Module) -> dict[str, Any]:
        return json.loads(module.config.to_json_string())

    def _locate(self, c: Any) -> Any:
        return find_weights_dir(
            c.weights,
            ("config.json", "model.safetensors"),
            ("chronos-bolt-tiny", "chronos-bolt-mini", "chronos-bolt-small", "chronos-bolt-base"),
            accept=lambda p: "chronos_config" in read_json(p / "config.json"),
        )

    def _load_weights(self, c: Any) -> tuple[nn.Module, dict[str, Any]]:
        folder = self._locate(c)
        module = ChronosBoltModelForForecasting.from_pretrained(str(folder), local_files_only=True)
        return module, self._module_config_of(module)

    def _prepare(self, module: nn.Module, device: torch.device) -> None:
        if self._cfg().compile and "forward" not in vars(module):
            module.forward = torch.compile(module.forward)  # fixed shapes: one graph

    def _levels(self) -> list[float]:
        return list(self.module_.chronos_config.quantiles)

    # ------------------------------------------------------------------ sampling
    def _n_samples(self, requested: int) -> int:
        if self._cfg().quantile_mode == "levels":
            self._ensure_module()
            return len(self._levels())
        return requested

    def _sample_batch(self, ctx: Contexts, horizon: int, n_samples: int) -> torch.Tensor:
        c = self._cfg()
        model = self.module_
        limit = model.chronos_config.prediction_length
        if horizon > limit:
            raise ConfigError(
                f"Chronos-Bolt forecasts {limit} bars in one pass; horizon {horizon} is longer"
            )
        device = next(model.parameters()).device
        context = torch.from_numpy(np.where(ctx.valid, ctx.prices, np.nan)).to(
            device, torch.float32
        )
        q = model(context=context).quantile_preds[:, :, :horizon].float()  # (B, Q, H)
        q = torch.sort(q, dim=1).values  # monotone rearrangement of crossing quantiles
        if c.quantile_mode == "levels":
            if n_samples != q.shape[1]:
                raise ConfigError(
                    f"quantile_mode='levels' gives {q.shape[1]} samples per row, "
                    f"got num_samples {n_samples}"
                )
            return q
        levels = torch.tensor(self._levels(), device=device, dtype=torch.float32)
        return interpolate_quantiles(q, levels, n_samples)
