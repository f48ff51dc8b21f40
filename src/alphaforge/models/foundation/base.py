"""Shared base of the zero-shot foundation-model adapters (Kronos, Toto, Chronos-Bolt).

- Zero-shot: ``fit`` learns nothing. It records the feature names, resolves the label's horizon
  and kind (the ``LabelSpec`` passed to ``fit``), loads the network (local weights, or a seeded
  random init of a named architecture for tests) and keeps the last ``max_context`` bars of
  each symbol's context columns as history, so a later ``predict`` on a short window (a tuning
  fold) still has context.
- Context convention: the series a model reads is a *price path*. By default it is rebuilt from
  a one-bar return column (``return_column="ret_1"``, simple or log returns; NaN counts as a flat
  bar) by cumulating returns; with ``price_column`` set, that column's levels are used. Every
  window is rescaled so the row's own bar is 1.0, so a sampled path ``p`` is directly the
  gross return ``p[t+k] / p[t]``. Models normalise the window themselves (scale-free).
- Backward only: row ``(t, s)`` reads the last ``max_context`` bars of symbol ``s`` at or before
  ``t``, from X and the stored history (history bars only where X has none of that symbol yet).
- Samples -> label: the ``h``-bar simple return ``p[t+h] - 1``, log return ``log p[t+h]`` or
  realised volatility ``sqrt(sum_k log(p[t+k] / p[t+k-1])^2)`` per sample, then one of the named
  aggregations (:mod:`alphaforge.models.foundation.aggregate`) over the samples axis.
- Randomness is counter-based (SplitMix64, Steele et al., 2014): sample ``s`` of row ``(t, sym)``
  reads uniforms keyed by ``(seed, sym, t, s, step, stream)``, never a global generator. A
  row's samples therefore do not depend on which other rows are predicted with it, and the
  first ``n`` of ``S`` samples equal a run with ``num_samples = n`` (tuning scores several
  ``num_samples`` on one bank).
- Batching: rows are processed ``samples_per_batch // num_samples`` at a time in fixed-shape
  batches (the last one padded), on the device from :mod:`alphaforge.utils.device`.
- Saving: ``module.pt`` (a plain ``state_dict``, ``torch.load(weights_only=True)``), the module's
  JSON config and ``history.npz`` (no object arrays), next to ``meta.json``.

Shapes: R rows, N series, T context bars, S samples, H horizon, C columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, _resolve_seed, require
from alphaforge.models.foundation.aggregate import aggregate, check_aggregation
from alphaforge.utils.device import autocast, resolve_device, resolve_precision, seeded
from alphaforge.utils.io import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "Contexts",
    "FoundationAdapter",
    "FoundationParams",
    "find_weights_dir",
    "keyed_uniform",
    "row_keys",
]

MODULE_FILE = "module.pt"
MODULE_CONFIG_FILE = "module_config.json"
HISTORY_FILE = "history.npz"
NS_PER_DAY = 86_400 * 10**9


# ============================================================================ config
@dataclass(frozen=True)
class FoundationParams:
    """Config fields every foundation adapter shares (subclasses add model-specific ones)."""

    weights: str | None = None  # local weights directory or HF cache folder; None: random init
    arch: str = "tiny"  # architecture of the random init (weights=None only); tests use "tiny"
    horizon: int = 0  # H bars ahead; 0: the horizon of the LabelSpec passed to fit
    target: Literal["auto", "return", "log_return", "volatility"] = "auto"  # auto: from the label
    num_samples: int = 100  # S sampled futures per row
    aggregation: str = "median"  # see alphaforge.models.foundation.aggregate.AGGREGATIONS
    max_context: int = 512  # T: bars of context per row (also the normalisation window)
    return_column: str = "ret_1"  # one-bar return the price path is cumulated from
    return_kind: Literal["simple", "log"] = "simple"  # units of return_column
    price_column: str | None = None  # price levels to use instead of cumulated returns
    context_from_fit: bool = True  # keep each symbol's last max_context bars seen in fit
    samples_per_batch: int = 8192  # sampled paths (rows x samples) per forward batch
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    precision: str = "fp32"  # "fp32", "bf16", "fp16" (CUDA), "auto"
    compile: bool = False  # torch.compile the network (worth it on CUDA only)

    def __post_init__(self) -> None:
        require(self.horizon >= 0, self, "horizon", "an int >= 0 (0: from the label)")
        require(self.num_samples >= 1, self, "num_samples", "an int >= 1")
        require(self.max_context >= 2, self, "max_context", "an int >= 2")
        require(self.samples_per_batch >= 1, self, "samples_per_batch", "an int >= 1")
        check_aggregation(self.aggregation)


# ============================================================================ randomness
_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685  # 0x94D049BB133111EB


def _srl(x: torch.Tensor, s: int) -> torch.Tensor:
    return (x >> s) & ((1 << (64 - s)) - 1)  # logical shift of int64 (>> is arithmetic)


def _mix64(x: torch.Tensor) -> torch.Tensor:
    # SplitMix64 finaliser; int64 products wrap modulo 2^64 like the uint64 reference
    x = (x ^ _srl(x, 30)) * _M1
    x = (x ^ _srl(x, 27)) * _M2
    return x ^ _srl(x, 31)


def keyed_uniform(
    keys: torch.Tensor,
    n_samples: int,
    n_steps: int,
    n_streams: int,
    *,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Uniforms in (0, 1) from per-row keys: ``(N,) -> (N, S, n_steps, n_streams)`` float32.

    Value ``[i, s, k, j]`` depends only on ``keys[i]`` and ``(s, k, j)``, so it does not change
    with the batch it is drawn in, and the first ``n`` samples do not depend on ``S``.

    Args:
        keys: ``(N,)`` int64 row keys (:func:`row_keys`).
        n_samples, n_steps, n_streams: S, steps (horizon) and draws per step.
        device: Where to compute (default: the keys' device).

    Returns:
        ``(N, S, n_steps, n_streams)`` float32, values ``(m + 0.5) / 2**24``.
    """
    keys = keys.to(device or keys.device, torch.int64)
    counter = torch.arange(
        n_samples * n_steps * n_streams, device=keys.device, dtype=torch.int64
    )  # sample-major: a prefix of samples is a prefix
    x = _mix64(keys[:, None] + (counter[None, :] + 1) * _GOLDEN)
    u = (_srl(x, 40).to(torch.float32) + 0.5) * 2.0**-24  # top 24 bits, exact in float32
    return u.view(-1, n_samples, n_steps, n_streams)


def row_keys(seed: int, symbols: npt.ArrayLike, stamps_ns: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """One 64-bit key per row from the seed, the symbol name and the timestamp (ns).

    Args:
        seed: The model's resolved seed.
        symbols: ``(R,)`` symbol names.
        stamps_ns: ``(R,)`` int64 nanoseconds since the epoch.

    Returns:
        ``(R,)`` int64 keys; stable across processes and machines (no Python ``hash``).
    """
    codes, names = pd.factorize(np.asarray(symbols, dtype=object))
    sym = np.array(
        [int.from_bytes(hashlib.sha256(str(n).encode()).digest()[:8], "little") for n in names],
        dtype=np.uint64,
    )  # one digest per distinct symbol
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) ^ sym[codes]
        x = x + np.asarray(stamps_ns, dtype=np.int64).view(np.uint64) * np.uint64(_M1 % 2**64)
    key = torch.from_numpy(x.view(np.int64).copy())
    return _mix64(key).numpy()


# ============================================================================ calendar
def calendar(stamps_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Calendar fields of nanosecond timestamps, ``(...) -> (..., 5)`` (Kronos' time features).

    The fields are minute, hour, weekday (Monday 0), day of month and month.
    """
    ns = np.asarray(stamps_ns, dtype=np.int64)
    days = np.floor_divide(ns, NS_PER_DAY)
    d = days.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    return np.stack(
        [
            np.floor_divide(ns, 60 * 10**9) % 60,
            np.floor_divide(ns, 3600 * 10**9) % 24,
            (days + 3) % 7,  # 1970-01-01 was a Thursday
            (d - month_start).astype(np.int64) + 1,
            month_start.astype(np.int64) % 12 + 1,
        ],
        axis=-1,
    )


def future_stamps(
    last_ns: npt.NDArray[np.int64],
    prev_ns: npt.NDArray[np.int64],
    prev_valid: npt.NDArray[np.bool_],
    horizon: int,
) -> npt.NDArray[np.int64]:
    """Timestamps of the next ``horizon`` bars, from the row's own bar and the one before.

    Midnight stamps (daily bars) step in business days from a weekday (calendar days from a
    weekend day); intraday stamps step by the row's last bar spacing (a minute without one).
    Uses only bars at or before the row.

    Returns:
        ``(N, horizon)`` int64 nanoseconds.
    """
    k = np.arange(1, horizon + 1)
    daily = last_ns % NS_PER_DAY == 0
    day = np.floor_divide(last_ns, NS_PER_DAY).astype("datetime64[D]")
    weekday = (np.floor_divide(last_ns, NS_PER_DAY) + 3) % 7 < 5
    bus = np.busday_offset(np.where(weekday, day, np.datetime64("1970-01-01")), 0, roll="forward")
    bus = np.busday_offset(bus[:, None], k[None, :]).astype("datetime64[ns]").astype(np.int64)
    cal = last_ns[:, None] + k[None, :] * NS_PER_DAY
    step = np.where(prev_valid & (last_ns > prev_ns), last_ns - prev_ns, 60 * 10**9)
    intraday = last_ns[:, None] + k[None, :] * step[:, None]
    return np.where(daily[:, None], np.where(weekday[:, None], bus, cal), intraday)


# ============================================================================ weights on disk
def find_weights_dir(
    path: str | os.PathLike[str],
    files: Sequence[str],
    names: Sequence[str] = (),
    accept: Callable[[Path], bool] | None = None,
) -> Path:
    """Locate a checkpoint directory holding ``files``.

    Looks in ``path`` itself, then ``path/<name>`` for each of ``names``, then in a Hugging Face
    cache layout: ``path/snapshots/<rev>/`` (a repo folder) or
    ``path/models--<org>--<name>/snapshots/<rev>/`` (a cache root). Never downloads.

    Args:
        path: Directory given by the user.
        files: File names the checkpoint must contain, e.g. ``("config.json",
            "model.safetensors")``.
        names: Repository or folder names to look for, e.g. ``("Kronos-small",)``.
        accept: Extra test a candidate directory must pass (e.g. its ``config.json`` keys).

    Returns:
        The first directory that holds every file.

    Raises:
        DataError: Nothing matched; the message lists the expected files and places.
    """
    root = Path(path).expanduser()
    candidates = [root] + [root / n for n in names]

    def snapshots(repo: Path) -> list[Path]:
        snap = repo / "snapshots"
        ref = repo / "refs" / "main"
        found = (
            sorted(
                (p for p in snap.glob("*") if p.is_dir()),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            if snap.is_dir()
            else []
        )
        if ref.is_file():  # the revision "main" points to first
            head = snap / ref.read_text(encoding="utf-8").strip()
            found = [head] + [p for p in found if p != head]
        return found

    candidates += snapshots(root)
    for name in names:
        for repo in sorted(root.glob(f"models--*--{name}")):
            candidates += snapshots(repo)
    for cand in candidates:
        if (
            cand.is_dir()
            and all((cand / f).is_file() for f in files)
            and (accept is None or accept(cand))
        ):
            return cand
    where = [str(root)] + [str(root / n) for n in names]
    raise DataError(
        f"no checkpoint found: expected files {list(files)} in one of {where}, or in a Hugging "
        f"Face cache folder (models--<org>--<name>/snapshots/<revision>/) for "
        f"{list(names) or ['<name>']}",
        path=str(root),
    )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``DataError`` saying what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read checkpoint config: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object, got {type(data).__name__}", path=str(path))
    return data


# ============================================================================ contexts
@dataclass
class Contexts:
    """A batch of backward-only context windows (numpy, left-padded), plus what sampling needs.

    Attributes:
        prices: ``(N, T)`` float64 price path, NaN where ``valid`` is false.
        valid: ``(N, T)`` bool, true on bars of the series (padding on the left is false).
        keys: ``(N,)`` int64 row keys for :func:`keyed_uniform`.
        extra: ``(N, T, C)`` float64 extra columns (model-specific), or ``None``.
        stamps: ``(N, T)`` int64 ns timestamps (0 on padding), or ``None``.
        future: ``(N, H)`` int64 ns timestamps of the forecast bars, or ``None``.
        candles: ``(N, T, C)`` raw candles given to :meth:`FoundationAdapter.sample`, or
            ``None`` (Kronos only).
    """

    prices: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    keys: npt.NDArray[np.int64]
    extra: npt.NDArray[np.float64] | None = None
    stamps: npt.NDArray[np.int64] | None = None
    future: npt.NDArray[np.int64] | None = None
    candles: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return int(self.prices.shape[0])

    def take(self, idx: npt.NDArray[np.int64]) -> Contexts:
        pick = [
            None if a is None else a[idx]
            for a in (self.extra, self.stamps, self.future, self.candles)
        ]
        return Contexts(self.prices[idx], self.valid[idx], self.keys[idx], *pick)


class _Layout:
    """The context columns of a panel regrouped per symbol in time order (numpy, host memory).

    ``take(rows)`` gathers ``(B, T)`` windows ending at ``rows`` (indices into the rows being
    predicted), like :class:`alphaforge.models.windows.SequenceLayout` but unstandardised and
    with the price path rescaled to the row's own bar.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        c: FoundationParams,
        extra: Sequence[str],
        seed: int,
        horizon: int,
    ) -> None:
        t_ns = _stamps_ns(frame.index.get_level_values("timestamp"))
        s_code, _ = pd.factorize(frame.index.get_level_values("symbol"), sort=True)
        order = np.lexsort((t_ns, s_code))  # grouped by symbol, then time
        self.pos = np.empty(len(frame), dtype=np.int64)
        self.pos[order] = np.arange(len(frame))
        first = np.full(s_code.max() + 1, len(frame), dtype=np.int64)
        np.minimum.at(first, s_code, self.pos)
        self.start = first[s_code]  # (R,) first position of the row's symbol
        sym_sorted = s_code[order]
        self.stamps = t_ns[order]
        if c.price_column is not None:  # levels, carried forward; leading NaN stay NaN
            p = frame[c.price_column].to_numpy(np.float64, na_value=np.nan)[order]
            p = pd.Series(p).groupby(sym_sorted).ffill().to_numpy()
            self.logp = np.log(np.where(p > 0, p, np.nan))
        else:  # cumulated one-bar returns; NaN is a flat bar
            r = frame[c.return_column].to_numpy(np.float64, na_value=np.nan)[order]
            lr = np.nan_to_num(np.log1p(r) if c.return_kind == "simple" else r, nan=0.0)
            self.logp = pd.Series(lr).groupby(sym_sorted).cumsum().to_numpy()
        self.extra = (
            frame[list(extra)].to_numpy(np.float64, na_value=np.nan)[order] if extra else None
        )
        symbols = frame.index.get_level_values("symbol").to_numpy()
        self.keys = row_keys(seed, symbols, t_ns)  # (R,) in frame order
        self.lookback, self.horizon = c.max_context, horizon

    def take(self, rows: npt.NDArray[np.int64]) -> Contexts:
        offsets = np.arange(self.lookback - 1, -1, -1)  # (T,) T-1 .. 0
        at = self.pos[rows, None] - offsets  # (B, T) positions, oldest first
        valid = at >= self.start[rows, None]
        at = np.where(valid, at, self.pos[rows, None])  # any in-range index; masked below
        logp = self.logp[at]
        prices = np.exp(logp - logp[:, -1:])  # the row's own bar is 1.0
        prices[~valid | np.isnan(prices)] = np.nan
        valid &= ~np.isnan(prices)
        stamps = np.where(valid, self.stamps[at], 0)
        prev_ok = valid[:, -2] if self.lookback > 1 else np.zeros(len(rows), dtype=bool)
        future = future_stamps(stamps[:, -1], stamps[:, -2], prev_ok, self.horizon)
        extra = None if self.extra is None else self.extra[at]
        return Contexts(prices, valid, self.keys[rows], extra, stamps, future)


def _stamps_ns(index: pd.Index) -> npt.NDArray[np.int64]:
    """Wall-clock nanoseconds of a timestamp index (tz-aware stamps keep their local time)."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    return idx.as_unit("ns").asi8.copy()


# ============================================================================ the adapter
class FoundationAdapter(BaseForecaster):
    """Base estimator of zero-shot foundation models: sampled futures, aggregated per row.

    Subclasses set ``Config`` and implement :meth:`_build_module` (architecture from a JSON
    config), :meth:`_arch_config` (named random-init architectures), :meth:`_load_weights`
    (released checkpoint -> module and its JSON config) and :meth:`_sample_batch`.

    Args:
        config: ``cls.Config``, a mapping of overrides, or ``None``.
        random_state: Seed of the random init (``weights=None``) and of the sampling streams.
        module: An already built network (``from_config``); it is used as is by ``fit``.

    Learned state: ``module_`` (on the device, eval mode), ``module_config_`` (JSON-able),
    ``horizon_``, ``target_``, ``history_`` (arrays ``timestamp`` (ns), ``symbol``, ``values``
    of each symbol's last ``max_context`` context bars seen in ``fit``, or ``None``).
    """

    Config: ClassVar[type] = FoundationParams
    capabilities: ClassVar[Capabilities] = Capabilities(
        family="foundation", needs_sequence=True, label_kinds=("return", "volatility")
    )
    extra_columns: ClassVar[tuple[str, ...]] = ()  # config fields naming extra context columns
    # tuning: params a cached bank of samples can be rescored for without drawing again
    # (alphaforge.models.foundation.aggregate.score_sample_bank), and the bank's size
    bank_params: ClassVar[tuple[str, ...]] = ("num_samples", "aggregation")
    bank_size: ClassVar[int | None] = None  # None: the trial's own num_samples
    test_samples: ClassVar[int] = 8  # num_samples of test_params (1024 rows per batch)
    _keep_unlabelled_rows = True  # unlabelled rows are still context for later rows

    def __init__(
        self, config: Any = None, *, random_state: int | None = 0, module: nn.Module | None = None
    ) -> None:
        super().__init__(config, random_state=random_state)
        self.module = module

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """A tiny random-init network on CPU, ``test_samples`` samples per row."""
        return {
            "arch": "tiny",
            "max_context": 32,
            "num_samples": cls.test_samples,
            "samples_per_batch": 1024 * cls.test_samples,
            "device": "cpu",
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        params: dict[str, Any] | None = None,
        *,
        random_state: int | None = 0,
    ) -> Self:
        """An adapter that loads released weights from a local directory when fitted.

        Args:
            path: Checkpoint directory, a folder holding it, or a Hugging Face cache folder
                (see :func:`find_weights_dir`); nothing is downloaded.
            params: Other config overrides.
            random_state: Seed of the sampling streams.

        Raises:
            DataError: No checkpoint under ``path`` (names the expected files).
        """
        model = cls.from_params(
            {**(params or {}), "weights": os.fspath(path)}, random_state=random_state
        )
        model._locate(model.config)  # fail now, not at fit, when the files are missing
        return model

    @classmethod
    def from_config(
        cls,
        module_config: dict[str, Any],
        params: dict[str, Any] | None = None,
        *,
        random_state: int | None = 0,
    ) -> Self:
        """An adapter over a randomly initialised network of a given architecture (tests).

        Args:
            module_config: The network's JSON config (as in the released ``config.json``).
            params: Other config overrides.
            random_state: Seeds the initial weights and the sampling streams.
        """
        with seeded(_resolve_seed(random_state)):  # CPU init: the same weights on any device
            module = cls._build_module(dict(module_config))
        return cls(cls._make_config(params), random_state=random_state, module=module)

    def _cfg(self) -> Any:
        """The resolved config: ``config_`` after ``fit``, else resolved from ``config``."""
        return self.config_ if hasattr(self, "config_") else self._resolve_config()

    def _locate(self, c: Any) -> Any:
        """Where the weights of config ``c`` are (subclass-specific); raises ``DataError``."""
        return None

    # ------------------------------------------------------------------ subclass hooks
    @classmethod
    def _build_module(cls, module_config: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def _arch_config(cls, arch: str) -> dict[str, Any]:
        raise NotImplementedError

    def _load_weights(self, c: Any) -> tuple[nn.Module, dict[str, Any]]:
        raise NotImplementedError

    def _module_config_of(self, module: nn.Module) -> dict[str, Any]:
        raise NotImplementedError

    def _sample_batch(self, ctx: Contexts, horizon: int, n_samples: int) -> torch.Tensor:
        """``ctx`` of B series -> ``(B, S, H)`` sampled future prices, in the context's units."""
        raise NotImplementedError

    def _prepare(self, module: nn.Module, device: torch.device) -> None:
        """Called after the module is on ``device`` (compile, caches)."""

    def _n_samples(self, requested: int) -> int:
        """Samples per row actually drawn for a request (quantile models fix their own)."""
        return requested

    # ------------------------------------------------------------------ fit
    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        self._check_columns(c)
        self.horizon_ = int(c.horizon or self.label_.horizon)
        self.target_ = self._resolve_target(c, y)
        self._ensure_module()
        self.history_ = None
        if c.context_from_fit:
            frames = [X] + ([valid[0]] if valid is not None else [])
            self.history_ = self._tail(pd.concat(frames) if len(frames) > 1 else X)

    def _check_columns(self, c: Any) -> None:
        needed = self._context_columns(c)
        missing = [col for col in needed if col not in self.feature_names_in_]
        if missing:
            raise DataError(
                f"{type(self).__name__}: context column(s) {missing} not in X; "
                f"columns: {self.feature_names_in_[:20]} (set return_column / "
                f"price_column to one of them)"
            )

    def _context_columns(self, c: Any) -> list[str]:
        base = [c.price_column] if c.price_column is not None else [c.return_column]
        return base + [getattr(c, f) for f in self.extra_columns if getattr(c, f) is not None]

    def _extra_names(self, c: Any) -> list[str]:
        return [getattr(c, f) for f in self.extra_columns if getattr(c, f) is not None]

    def _resolve_target(self, c: Any, y: pd.Series) -> str:
        target = c.target
        if target == "auto":
            if self.label_.label_kind == "volatility":
                target = "volatility"
            else:
                target = "log_return" if self.label_.kind == "forward_log_return" else "return"
        kinds = self.capabilities.label_kinds
        if ("volatility" if target == "volatility" else "return") not in kinds:
            raise ConfigError(
                f"{type(self).__name__} cannot forecast a {target!r} label; "
                f"it supports {list(kinds)}"
            )
        return target

    def _ensure_module(self) -> nn.Module:
        """The network on its device (built or loaded once per fit, or on first ``sample``)."""
        if getattr(self, "module_", None) is not None:
            return self.module_
        c = self._cfg()
        if self.module is not None:
            module, config = self.module, self._module_config_of(self.module)
        elif c.weights is not None:
            module, config = self._load_weights(c)
        else:
            config = self._arch_config(c.arch)
            if c.arch != "tiny":
                logger.warning(
                    "%s: no weights given, using a random %r network: its forecasts "
                    "are noise (set weights to a local checkpoint)",
                    type(self).__name__,
                    c.arch,
                )
            with seeded(_resolve_seed(self.random_state)):
                module = self._build_module(config)
        device = resolve_device(c.device)
        self.module_ = module.to(device).eval()
        self.module_config_ = config
        self._prepare(self.module_, device)
        return self.module_

    def _tail(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        cols = self._context_columns(self.config_)
        frame = X[cols]
        frame = frame[~frame.index.duplicated(keep="last")].sort_index(level="timestamp")
        # the last max_context bars of each symbol, in time order
        keep = frame.groupby(level="symbol", sort=False).cumcount(ascending=False)
        frame = frame[(keep < self.config_.max_context).to_numpy()]
        return {
            "timestamp": _stamps_ns(frame.index.get_level_values("timestamp")),
            "symbol": frame.index.get_level_values("symbol").astype(str).to_numpy(dtype=str),
            "values": frame.to_numpy(np.float64, na_value=np.nan),
        }

    # ------------------------------------------------------------------ predict
    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return aggregate(self.sample_targets(X), self.config_.aggregation, axis=1)

    def sample_targets(
        self, X: pd.DataFrame, num_samples: int | None = None
    ) -> npt.NDArray[np.float64]:
        """Per-sample forecasts of the label for every row of ``X`` (the bank tuning scores).

        Args:
            X: Features with the columns seen in ``fit``; row ``(t, s)`` reads symbol ``s``'s
                context at or before ``t`` only (X's rows and the history kept by ``fit``).
            num_samples: Samples per row (default: the config's ``num_samples``). The first
                ``n`` samples do not depend on this number.

        Returns:
            ``(len(X), S)`` float64: the label (``target_``) of each sampled future.
        """
        X = self._checked_X(X)
        c = self.config_
        cols = self._context_columns(c)
        frame, n_rows = self._with_history(X[cols])
        layout = _Layout(frame, c, cols[1:], self.seed_, self.horizon_)
        S = self._n_samples(num_samples or c.num_samples)
        paths = self._draw(layout.take, n_rows, S, self.horizon_)  # (R, S, H) p[t+k] / p[t]
        return self._to_target(paths)

    def _with_history(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """``frame`` (X's rows first) plus stored history bars older than X's for each symbol."""
        hist = getattr(self, "history_", None)
        if not hist or len(hist["timestamp"]) == 0:
            return frame, len(frame)
        stamps = _stamps_ns(frame.index.get_level_values("timestamp"))
        first = pd.Series(stamps).groupby(frame.index.get_level_values("symbol").to_numpy()).min()
        at = first.index.get_indexer(pd.Index(hist["symbol"]))
        limit = np.where(
            at >= 0, first.to_numpy(np.int64)[np.maximum(at, 0)], np.iinfo(np.int64).max
        )
        older = hist["timestamp"] < limit  # only bars before X's first bar of that symbol
        if not older.any():
            return frame, len(frame)
        tz = pd.DatetimeIndex(frame.index.get_level_values("timestamp")).tz
        ts = pd.DatetimeIndex(hist["timestamp"][older].astype("datetime64[ns]"))
        if tz is not None:
            ts = ts.tz_localize(tz)
        index = pd.MultiIndex.from_arrays(
            [ts, hist["symbol"][older].astype(object)], names=["timestamp", "symbol"]
        )
        extra = pd.DataFrame(hist["values"][older], index=index, columns=frame.columns)
        return pd.concat([frame, extra]), len(frame)

    def _draw(self, take: Any, n_rows: int, n_samples: int, H: int) -> npt.NDArray[np.float64]:
        """Sample every row in fixed-shape batches: ``take(rows) -> Contexts`` -> (R, S, H).

        Every batch has the same number of series (the last one is padded with copies of its
        first row, dropped afterwards), so a row's result does not depend on how many rows are
        predicted with it. Rows without a valid bar of their own get NaN.
        """
        c = self._cfg()
        module = self._ensure_module()
        device = next(module.parameters()).device
        precision = resolve_precision(device, c.precision)
        size = max(1, c.samples_per_batch // n_samples)
        out = np.empty((n_rows, n_samples, H), dtype=np.float64)
        with torch.inference_mode(), autocast(device, precision):
            for lo in range(0, n_rows, size):
                n = min(size, n_rows - lo)
                rows = lo + np.minimum(np.arange(size), n - 1)
                ctx = take(rows)
                paths = self._sample_batch(ctx, H, n_samples)  # (size, S, H)
                out[lo : lo + n] = paths[:n].double().cpu().numpy()
                out[lo : lo + n][~ctx.valid[:n, -1]] = np.nan
        return out

    def _to_target(self, paths: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``(R, S, H)`` gross returns ``p[t+k] / p[t]`` -> ``(R, S)`` label per sample."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.target_ == "return":
                return paths[:, :, -1] - 1.0
            logp = np.log(np.where(paths > 0, paths, np.nan))
            if self.target_ == "log_return":
                return logp[:, :, -1]
            steps = np.diff(logp, axis=2, prepend=0.0)  # (R, S, H) one-bar log returns
            return np.sqrt((steps**2).sum(axis=2))

    # ------------------------------------------------------------------ standalone sampling
    def sample(
        self,
        context: npt.ArrayLike,
        *,
        horizon: int | None = None,
        num_samples: int | None = None,
        timestamps: npt.ArrayLike | None = None,
        keys: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float64]:
        """Sample futures of raw series, outside the estimator (works before ``fit`` too).

        Args:
            context: ``(N, T)`` price levels, oldest first; NaN marks missing bars (pad short
                series on the left with NaN). Kronos also takes ``(N, T, 6)`` OHLCV+amount.
            horizon: H steps to sample (default: the fitted or configured horizon, else 1).
            num_samples: S (default: the config's ``num_samples``).
            timestamps: ``(N, T)`` datetime64 stamps of the context bars (Kronos' calendar
                features); ``None``: no calendar features.
            keys: ``(N,)`` int64 stream keys (default ``seed + arange(N)``).

        Returns:
            ``(N, S, H)`` float64 sampled future levels, in the context's units.
        """
        values = np.asarray(context, dtype=np.float64)
        if values.ndim not in (2, 3) or values.shape[1] < 1:
            raise DataError(f"context must be (N, T) or (N, T, C), got shape {values.shape}")
        c = self._cfg()
        H = horizon or getattr(self, "horizon_", None) or c.horizon or 1
        S = self._n_samples(num_samples or c.num_samples)
        N = values.shape[0]
        prices = values if values.ndim == 2 else values[:, :, self._close_channel(values)]
        valid = np.isfinite(prices)
        if keys is None:
            keys = row_keys(
                _resolve_seed(self.random_state), np.zeros(N, dtype=np.int64), np.arange(N)
            )
        stamps = future = None
        if timestamps is not None:
            stamps = np.asarray(timestamps, dtype="datetime64[ns]").astype(np.int64)
            stamps = np.where(valid, stamps, 0)
            prev_ok = valid[:, -2] if values.shape[1] > 1 else np.zeros(N, dtype=bool)
            future = future_stamps(
                stamps[:, -1], stamps[:, -2] if values.shape[1] > 1 else stamps[:, -1], prev_ok, H
            )
        ctx = Contexts(
            np.where(valid, prices, np.nan),
            valid,
            np.asarray(keys, dtype=np.int64),
            None,
            stamps,
            future,
            values if values.ndim == 3 else None,
        )
        return self._draw(ctx.take, N, S, H)

    def _close_channel(self, values: npt.NDArray[np.float64]) -> int:
        raise DataError(
            f"{type(self).__name__}.sample takes (N, T) price levels, got shape {values.shape}"
        )

    # ------------------------------------------------------------------ save / load
    def _save_state(self, path: Path) -> dict[str, Any]:
        buf = io.BytesIO()
        module = getattr(self.module_, "_orig_mod", self.module_)
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buf)
        atomic_write_bytes(path / MODULE_FILE, buf.getvalue())
        atomic_write_text(path / MODULE_CONFIG_FILE, json.dumps(self.module_config_, indent=1))
        if self.history_ is not None:
            buf = io.BytesIO()
            np.savez(buf, **self.history_)
            atomic_write_bytes(path / HISTORY_FILE, buf.getvalue())
        return {
            "horizon": self.horizon_,
            "target": self.target_,
            "history": self.history_ is not None,
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.horizon_ = int(state["horizon"])
        self.target_ = str(state["target"])
        self.module_config_ = json.loads((path / MODULE_CONFIG_FILE).read_text("utf-8"))
        module = self._build_module(dict(self.module_config_))
        weights = torch.load(path / MODULE_FILE, map_location="cpu", weights_only=True)
        module.load_state_dict(weights)
        device = resolve_device(self.config_.device)
        self.module_ = module.to(device).eval()
        self._prepare(self.module_, device)
        self.history_ = None
        if state["history"]:
            with np.load(path / HISTORY_FILE, allow_pickle=False) as f:
                self.history_ = {k: f[k] for k in ("timestamp", "symbol", "values")}


def dataclass_from(cls: type, data: dict[str, Any], what: str) -> Any:
    """Build the frozen config ``cls`` from a checkpoint's JSON, ignoring unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        logger.debug("%s: ignoring config keys %s", what, unknown)
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise DataError(f"{what}: config does not fit {cls.__name__}: {exc}") from exc
