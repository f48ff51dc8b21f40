"""Kronos adapter: Kronos (:mod:`~alphaforge.models.foundation.kronos_net`) behind the forecaster
contract, from local checkpoints or a tiny random initialisation.

Shi et al., 2025, "Kronos: A Foundation Model for the Language of Financial Markets",
arXiv:2508.02739. The network, its sampling and the KV cache live in ``kronos_net.py``; this
module builds candles from the feature panel, normalises each context window, loads the released
``NeoQuasar/Kronos-*`` safetensors (never downloaded) and turns sampled candles into forecasts.

On CUDA the samples are drawn by default (``decode="auto"``) with preallocated per-sample caches
and each step replayed from a CUDA graph, kept per batch shape across prediction batches;
``compile`` (``default``, ``reduce-overhead``, ``max-autotune``) compiles the window passes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import require
from alphaforge.models.decoding import DECODE_MODES
from alphaforge.models.foundation.aggregate import default_aggregations
from alphaforge.models.foundation.base import (
    Contexts,
    FoundationAdapter,
    FoundationParams,
    calendar,
    dataclass_from,
    find_weights_dir,
    keyed_uniform,
    read_json,
)
from alphaforge.models.foundation.kronos_net import (
    KRONOS_ARCHS,
    Block,
    KronosModelConfig,
    KronosNet,
    KronosTokenizerConfig,
    kronos_generate,
)
from alphaforge.utils import device as dev

if TYPE_CHECKING:
    import optuna

__all__ = ["CHECKPOINT_FILES", "KronosAdapter", "KronosParams"]

CHECKPOINT_FILES = ("config.json", "model.safetensors")


# ============================================================================ the adapter
@dataclass(frozen=True)
class KronosParams(FoundationParams):
    """Kronos adapter config: sampling, normalisation and how candles are built from X."""

    tokenizer_weights: str | None = None  # tokenizer checkpoint dir (default: next to weights)
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 0.9  # 1.0: off
    clip: float = 5.0  # normalised candles are clipped to [-clip, clip]
    use_cache: bool = True  # shared-prefix KV cache (False: recompute, as the reference)
    gap_column: str | None = None  # open_t / close_(t-1) - 1 (e.g. "gap"); None: open = prev close
    range_column: str | None = None  # ln(high / low) (e.g. "hl_range"); None: no wicks
    close_loc_column: str | None = None  # (close - low) / (high - low) (e.g. "close_loc")
    volume_column: str | None = None  # raw volume levels; None: zeros (as the reference)
    decode: Literal["auto", "eager", "static", "graph"] = "auto"  # see kronos_generate
    attention_backend: Literal["auto", "flash", "efficient", "cudnn", "math"] = "auto"
    # torch.compile of the window passes: none|default|reduce-overhead|max-autotune (or a bool)
    compile: bool | Literal["none", "default", "reduce-overhead", "max-autotune"] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.temperature > 0, self, "temperature", "> 0")
        require(self.top_k >= 0, self, "top_k", "an int >= 0 (0: off)")
        require(0 < self.top_p <= 1, self, "top_p", "in (0, 1]")
        require(self.clip > 0, self, "clip", "> 0")
        require(self.decode in DECODE_MODES, self, "decode", f"one of {', '.join(DECODE_MODES)}")
        require(
            self.attention_backend in dev.ATTENTION_BACKENDS,
            self,
            "attention_backend",
            f"one of {', '.join(dev.ATTENTION_BACKENDS)}",
        )
        require(
            isinstance(self.compile, bool) or self.compile in dev.COMPILE_MODES,
            self,
            "compile",
            f"true, false or one of {', '.join(dev.COMPILE_MODES)}",
        )


class KronosAdapter(FoundationAdapter):
    """Kronos forecaster: samples candle paths from local weights (or a tiny random init).

    Example::

        model = KronosAdapter.from_path("/models/kronos", {"num_samples": 128})
        model.fit(X_train, y_train).predict(X_test)   # fit records columns; nothing is trained
    """

    Config = KronosParams
    extra_columns = ("gap_column", "range_column", "close_loc_column", "volume_column")
    bank_size = 320  # the largest num_samples of search_space

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "temperature": trial.suggest_float("temperature", 0.05, 0.40),
            "top_p": trial.suggest_float("top_p", 0.65, 0.95),
            "top_k": trial.suggest_categorical("top_k", [0, 12, 18, 24, 30, 36, 42, 48]),
            "num_samples": trial.suggest_int("num_samples", 96, 320, step=32),
            "max_context": trial.suggest_int("max_context", 128, 320, step=64),
            "clip": trial.suggest_float("clip", 1.0, 3.0),
            "aggregation": trial.suggest_categorical("aggregation", list(default_aggregations())),
        }

    # ------------------------------------------------------------------ modules
    @classmethod
    def _build_module(cls, module_config: dict[str, Any]) -> nn.Module:
        return KronosNet(
            dataclass_from(KronosTokenizerConfig, module_config["tokenizer"], "Kronos tokenizer"),
            dataclass_from(KronosModelConfig, module_config["model"], "Kronos"),
        )

    @classmethod
    def _arch_config(cls, arch: str) -> dict[str, Any]:
        if arch not in KRONOS_ARCHS:
            raise ConfigError(
                f"KronosParams.arch must be one of {sorted(KRONOS_ARCHS)}, got {arch!r}"
            )
        return KRONOS_ARCHS[arch]

    def _module_config_of(self, module: nn.Module) -> dict[str, Any]:
        return {
            "tokenizer": dataclasses.asdict(module.tokenizer.config),
            "model": dataclasses.asdict(module.model.config),
        }

    def _prepare(self, module: nn.Module, device: torch.device) -> None:
        # compile the full-window blocks (prefill, encoder, decoder prefill: fixed shapes in
        # fixed-size batches); the one-position steps run eager or from a CUDA graph
        mode = dev.resolve_compile_mode(self._cfg().compile)
        if mode is not None:
            for block in module.modules():
                if isinstance(block, Block) and "forward" not in vars(block):
                    block.forward = dev.compile_module(block.forward, mode)

    def _locate(self, c: Any) -> tuple[Path, Path]:
        model_dir = find_weights_dir(
            c.weights,
            CHECKPOINT_FILES,
            ("Kronos-small", "Kronos-base", "Kronos-mini", "model"),
            accept=lambda p: "learn_te" in read_json(p / "config.json"),
        )
        roots = (
            [c.tokenizer_weights]
            if c.tokenizer_weights
            else [c.weights, str(Path(c.weights).parent)]
        )
        errors = []
        for root in roots:
            try:
                tok_dir = find_weights_dir(
                    root,
                    CHECKPOINT_FILES,
                    ("Kronos-Tokenizer-base", "Kronos-Tokenizer-2k", "tokenizer"),
                    accept=lambda p: "d_in" in read_json(p / "config.json"),
                )
                return model_dir, tok_dir
            except DataError as exc:
                errors.append(str(exc))
        raise DataError(
            "Kronos tokenizer checkpoint not found (set tokenizer_weights): " + "; ".join(errors)
        )

    def _load_weights(self, c: Any) -> tuple[nn.Module, dict[str, Any]]:
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(
                "loading Kronos weights needs the package 'safetensors'; install "
                "it with: pip install 'alphaforge[kronos]'"
            ) from None
        model_dir, tok_dir = self._locate(c)
        config = {
            "tokenizer": read_json(tok_dir / "config.json"),
            "model": read_json(model_dir / "config.json"),
        }
        net = self._build_module(config)
        for part, folder in (("tokenizer", tok_dir), ("model", model_dir)):
            _load_strict(getattr(net, part), load_file(str(folder / "model.safetensors")), folder)
        return net, self._module_config_of(net)

    # ------------------------------------------------------------------ sampling
    def _close_channel(self, values: np.ndarray) -> int:
        if values.shape[2] not in (4, 5, 6):
            raise DataError(
                f"Kronos candles must be (N, T, 4|5|6) open, high, low, close"
                f"[, volume[, amount]], got shape {values.shape}"
            )
        return 3

    def _candles(self, ctx: Contexts) -> np.ndarray:
        """``(B, T, 6)`` open, high, low, close, volume, amount (NaN outside ``valid``)."""
        if ctx.candles is not None:
            cand = np.zeros(ctx.candles.shape[:2] + (6,))
            cand[..., : ctx.candles.shape[2]] = np.nan_to_num(ctx.candles, nan=0.0)
            if ctx.candles.shape[2] < 6:  # amount = volume x mean price, as the reference
                cand[..., 5] = cand[..., 4] * cand[..., :4].mean(-1)
            return cand
        c = self._cfg()
        named = [f for f in self.extra_columns if getattr(c, f) is not None]
        cols = {} if ctx.extra is None else {f: ctx.extra[..., i] for i, f in enumerate(named)}
        close = ctx.prices
        prev = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
        prev = np.where(np.isnan(prev), close, prev)
        gap = cols.get("gap_column")
        opn = prev if gap is None else prev * (1 + np.nan_to_num(gap, nan=0.0))
        high, low = np.maximum(opn, close), np.minimum(opn, close)
        rng, loc = cols.get("range_column"), cols.get("close_loc_column")
        if rng is not None and loc is not None:  # invert ln(h/l) and (c - l) / (h - l)
            wide = np.exp(np.nan_to_num(rng, nan=0.0))
            lo = close / (1 + np.nan_to_num(loc, nan=0.5) * (wide - 1))
            high, low = np.maximum(high, lo * wide), np.minimum(low, lo)
        vol = cols.get("volume_column")
        volume = np.zeros_like(close) if vol is None else np.nan_to_num(vol, nan=0.0)
        amount = volume * (opn + high + low + close) / 4
        return np.stack([opn, high, low, close, volume, amount], axis=-1)

    def _sample_batch(self, ctx: Contexts, horizon: int, n_samples: int) -> torch.Tensor:
        c = self._cfg()
        net = self.module_
        device = next(net.parameters()).device
        dtype = next(net.parameters()).dtype
        cand = self._candles(ctx)
        valid = ctx.valid[..., None]
        n = np.maximum(ctx.valid.sum(1), 1)[:, None]  # (B, 1)
        mean = np.where(valid, cand, 0.0).sum(1) / n  # (B, 6) over the context window only
        std = np.sqrt(np.where(valid, (cand - mean[:, None]) ** 2, 0.0).sum(1) / n) + 1e-5
        x = np.clip((cand - mean[:, None]) / std[:, None], -c.clip, c.clip)
        x = np.where(valid, x, 0.0)
        stamps = None
        if ctx.stamps is not None and ctx.future is not None:
            stamps = torch.from_numpy(calendar(np.concatenate([ctx.stamps, ctx.future], 1)))
            stamps = stamps.to(device)
        keys = torch.from_numpy(ctx.keys)
        u = keyed_uniform(
            keys,
            n_samples,
            horizon,
            2,
            device=device if device.type == "cuda" else torch.device("cpu"),
        )
        out = kronos_generate(
            net,
            torch.from_numpy(x).to(device, dtype),
            torch.from_numpy(ctx.valid).to(device),
            stamps,
            u.to(device),
            temperature=c.temperature,
            top_k=c.top_k,
            top_p=c.top_p,
            window=x.shape[1] + horizon,
            use_cache=c.use_cache,
            decode=c.decode,
            attention_backend=c.attention_backend,
        )  # (B, S, H, 6)
        close = out[..., 3].double() * torch.from_numpy(std[:, 3]).to(device)[:, None, None]
        return close + torch.from_numpy(mean[:, 3]).to(device)[:, None, None]


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], folder: Path) -> None:
    """Load a released state dict; only our recomputable buffers may be absent from it."""
    own = module.state_dict()
    buffers = {k for k, _ in module.named_buffers()}
    missing = sorted(set(own) - set(state) - buffers)
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        raise DataError(
            f"checkpoint does not match the config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}",
            path=str(folder),
        )
    module.load_state_dict({k: state.get(k, v) for k, v in own.items()})
