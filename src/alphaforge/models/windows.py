"""Backward-only lookback windows over a (timestamp, symbol) panel, gathered on the device.

- One contiguous per-symbol layout instead of a list of windows: the rows of X are regrouped by
  symbol in time order into a float32 tensor ``values`` of shape ``(1 + R, C)`` whose row 0 is
  all zeros (the padding row); row ``i`` of X lives at ``pos[i]`` and its symbol's first bar at
  ``start[i]``.
- A window is one strided gather, ``values[pos[idx, None] - arange(T - 1, -1, -1)]``, done on
  the device for a whole batch: no Python loop over samples, no (R, T, F) copy in memory.
  Positions before the symbol's first bar are sent to the zero row, so a window is left-padded
  with zeros and never reads another symbol's bars or a later bar.
- Features are standardised with a :class:`Standardizer` fitted on training rows only; NaN
  (warm-up) becomes 0 after standardising. Optional channels: ``observed`` (1 on real bars, 0 on
  padding: tells a padded zero from a feature at its training mean) and per-feature missing
  flags (1 where the raw feature was NaN).
- :class:`WindowSource` serves ``{"x": (B, T, C), "y": (B,) or (B, K), "weight": (B,)}`` batches
  to :func:`alphaforge.models.training.fit_torch` (its ``BatchSource`` protocol).

A symbol's rows in X are taken as its consecutive bars (gaps in the panel are not filled).
The layout is per symbol; :class:`CrossSectionSource` reuses it for ranking models: one sample
is one timestamp, a ``(N,)`` row of a ``(D, N)`` member table gathered into ``(N, T, C)``
windows, so a batch of B timestamps is ``(B, N, T, C)`` with a ``(B, N)`` mask for the symbols
missing at a timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from alphaforge.errors import ConfigError, DataError

__all__ = ["CrossSectionSource", "SequenceLayout", "Standardizer", "WindowSource"]


# ---------------------------------------------------------------------------- standardiser
@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature mean and standard deviation, fitted on training rows only.

    Attributes:
        mean: ``(F,)`` float64 nan-mean per feature (0 for an all-NaN feature).
        std: ``(F,)`` float64 nan-std per feature (1 where it is 0 or undefined).
        clip: Standardised values are clipped to ``[-clip, clip]`` (fat tails); ``None``: no clip.
    """

    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    clip: float | None = 10.0

    @classmethod
    def fit(
        cls, X: pd.DataFrame | npt.NDArray[np.float64], clip: float | None = 10.0
    ) -> Standardizer:
        """Fit on ``X`` (the training rows), NaN ignored.

        Args:
            X: ``(n_rows, F)`` training features.
            clip: See the class attributes.

        Returns:
            The fitted standardiser.
        """
        values = _as_array(X)
        count = (~np.isnan(values)).sum(axis=0)  # (F,)
        total = np.nansum(values, axis=0)
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        centred = np.where(np.isnan(values), 0.0, values - mean)
        var = np.divide((centred**2).sum(axis=0), count, out=np.zeros_like(total), where=count > 0)
        std = np.sqrt(var)
        std = np.where(std > 1e-12, std, 1.0)  # constant or empty feature: leave it centred
        return cls(mean=mean, std=std, clip=clip)

    def transform(self, X: pd.DataFrame | npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """``(n_rows, F) -> (n_rows, F)`` float32 ``(x - mean) / std``, NaN -> 0, clipped."""
        values = _as_array(X)
        if values.shape[1] != len(self.mean):
            raise DataError(
                f"standardiser fitted on {len(self.mean)} features, got {values.shape[1]}"
            )
        z = values - self.mean  # one float64 temporary, then in place
        z /= self.std
        if self.clip is not None:
            np.clip(z, -self.clip, self.clip, out=z)  # NaN stays NaN
        np.nan_to_num(z, copy=False, nan=0.0)
        return z.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clip": self.clip}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Standardizer:
        return cls(
            mean=np.asarray(state["mean"], dtype=np.float64),
            std=np.asarray(state["std"], dtype=np.float64),
            clip=state["clip"],
        )


def _as_array(X: pd.DataFrame | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(X, dtype=np.float64)


# ---------------------------------------------------------------------------- layout
@dataclass(frozen=True, eq=False)
class SequenceLayout:
    """Rows of a panel regrouped per symbol in time order, on one device.

    Attributes:
        values: ``(1 + R, C)`` float32; row 0 is the zero padding row, rows ``1..R`` the panel's
            rows grouped by symbol, each symbol's rows in time order.
        pos: ``(R,)`` int64, position in ``values`` of X's row ``i`` (X's own order).
        start: ``(R,)`` int64, position of the first row of row ``i``'s symbol.
        n_features: F, the raw feature count; ``C = F + observed + F * missing``.
    """

    values: torch.Tensor
    pos: torch.Tensor
    start: torch.Tensor
    n_features: int

    @classmethod
    def build(
        cls,
        X: pd.DataFrame,
        standardizer: Standardizer,
        *,
        device: torch.device | str = "cpu",
        observed: bool = True,
        missing: bool = False,
    ) -> SequenceLayout:
        """Standardise ``X`` and regroup its rows per symbol.

        Args:
            X: Features on a ``(timestamp, symbol)`` MultiIndex, any row order, no duplicates.
            standardizer: Fitted on training rows.
            device: Where ``values``, ``pos`` and ``start`` live (windows are gathered there).
            observed: Append a channel that is 1 on every real bar (0 on padding).
            missing: Append F channels that are 1 where the raw feature is NaN.

        Returns:
            The layout; ``C = F + observed + F * missing`` channels.
        """
        raw = _as_array(X)  # (R, F)
        n_rows, n_features = raw.shape
        t_code = pd.factorize(X.index.get_level_values("timestamp"), sort=True)[0]
        s_code, symbols = pd.factorize(X.index.get_level_values("symbol"), sort=True)
        order = np.lexsort((t_code, s_code))  # grouped by symbol, then time
        pos = np.empty(n_rows, dtype=np.int64)
        pos[order] = np.arange(1, n_rows + 1)  # +1: row 0 is padding
        first = np.full(len(symbols), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, s_code, pos)  # (N,) first position of each symbol
        # (1 + R, C) written in place: [standardised F | observed | F missing flags]
        values = np.zeros(
            (n_rows + 1, n_features + observed + n_features * missing), dtype=np.float32
        )
        values[1:, :n_features] = standardizer.transform(raw)[order]
        if observed:
            values[1:, n_features] = 1.0
        if missing:
            values[1:, n_features + observed :] = np.isnan(raw[order])
        dev = torch.device(device)
        return cls(
            values=torch.from_numpy(values).to(dev),
            pos=torch.from_numpy(pos).to(dev),
            start=torch.from_numpy(first[s_code]).to(dev),
            n_features=n_features,
        )

    @property
    def n_channels(self) -> int:
        return int(self.values.shape[1])

    @property
    def device(self) -> torch.device:
        return self.values.device

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    def windows(self, rows: torch.Tensor, lookback: int) -> torch.Tensor:
        """Gather the lookback windows ending at ``rows`` (indices into X's rows).

        Args:
            rows: ``(B,)`` int64 on ``self.device``.
            lookback: T, bars per window, the last one being the row's own bar.

        Returns:
            ``(B, T, C)`` float32; step ``T - 1`` is the row itself, step ``T - 1 - k`` the
            symbol's bar k rows earlier, zeros before the symbol's first bar. Looks only backward.
        """
        offsets = torch.arange(lookback - 1, -1, -1, device=rows.device)  # (T,) T-1 .. 0
        at = self.pos[rows, None] - offsets  # (B, T) positions, oldest first
        at = torch.where(at >= self.start[rows, None], at, 0)  # before the symbol: zero row
        return self.values[at]  # (B, T, C)


# ---------------------------------------------------------------------------- batch source
class _LayoutSamples:
    """What the batch sources over a :class:`SequenceLayout` share: lookback and device."""

    def __init__(self, layout: SequenceLayout, lookback: int) -> None:
        if lookback < 1:
            raise ConfigError(f"lookback must be an int >= 1, got {lookback}")
        self.layout, self.lookback = layout, int(lookback)

    @property
    def device(self) -> torch.device:
        """Where the layout lives: batch indices and batches are on it too."""
        return self.layout.device

    def _per_sample(
        self, values: npt.ArrayLike | torch.Tensor | None, name: str, n: int
    ) -> torch.Tensor | None:
        """``values`` as float32 on the device, checked to have ``n`` rows (``None`` kept)."""
        if values is None:
            return None
        t = torch.as_tensor(values, dtype=torch.float32).to(self.device)
        if t.shape[0] != n:
            raise DataError(f"{name} has {t.shape[0]} rows, expected {n}")
        return t


class WindowSource(_LayoutSamples):
    """Windowed samples for ``fit_torch`` (its ``BatchSource`` protocol) or for inference.

    Args:
        layout: The per-symbol layout the windows are gathered from.
        lookback: T, bars per window.
        rows: ``(n,)`` indices of the layout rows that are samples (e.g. the valid rows of a
            train+valid layout); ``None``: every row.
        y: ``(n,)`` or ``(n, K)`` float targets aligned with ``rows``, or ``None`` (inference).
        weights: ``(n,)`` non-negative sample weights aligned with ``rows``, or ``None``.

    ``batch(idx)`` returns ``{"x": (B, T, C)}`` plus ``"y"`` and ``"weight"`` when given; ``idx``
    indexes samples (``0 .. n - 1``) and lives on :attr:`device`.

    Raises:
        ConfigError: ``lookback < 1``.
        DataError: ``y`` or ``weights`` not aligned with ``rows``.
    """

    def __init__(
        self,
        layout: SequenceLayout,
        lookback: int,
        *,
        rows: npt.ArrayLike | torch.Tensor | None = None,
        y: npt.ArrayLike | torch.Tensor | None = None,
        weights: npt.ArrayLike | torch.Tensor | None = None,
    ) -> None:
        super().__init__(layout, lookback)
        dev = layout.device
        self.rows = (
            torch.arange(len(layout), device=dev)
            if rows is None
            else torch.as_tensor(rows, dtype=torch.int64).to(dev)
        )
        n = int(self.rows.shape[0])
        self.y = self._per_sample(y, "y", n)
        self.weights = self._per_sample(weights, "weights", n)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"x": self.layout.windows(self.rows[idx], self.lookback)}  # (B, T, C)
        if self.y is not None:
            out["y"] = self.y[idx]  # (B,) or (B, K)
        if self.weights is not None:
            out["weight"] = self.weights[idx]  # (B,)
        return out


class CrossSectionSource(_LayoutSamples):
    """Samples grouped by timestamp for cross-sectional (ranking) losses: one sample = one date.

    Args:
        layout: The per-symbol layout the windows are gathered from.
        lookback: T, bars per window.
        rows: ``(n,)`` indices of the layout rows that take part (e.g. the labelled training
            rows).
        dates: ``(n,)`` timestamps (or any sortable codes) of ``rows``; rows sharing a value form
            one cross-section.
        y: ``(n,)`` or ``(n, ...)`` float targets aligned with ``rows``, or ``None``.
        pad_to: Pad every cross-section to a multiple of this many assets (fixed batch shapes
            across folds and splits, for ``torch.compile``); 0: to the largest cross-section.

    Attributes:
        members: ``(D, N)`` int64 on the layout's device: row ``d`` lists the samples (indices
            into ``rows``) of the d-th date in sorted order, padded with -1; N is the largest
            cross-section (rounded up to a multiple of ``pad_to``).
        dates: ``(D,)`` the sorted distinct dates.

    ``batch(idx)`` (``idx`` indexes dates, ``0 .. D - 1``) returns ``{"x": (B, N, T, C), "mask":
    (B, N) bool}`` plus ``"y": (B, N, ...)`` when given; padded entries hold the windows of
    sample 0 and NaN targets, and are False in ``mask``. Windows look only backward.

    Raises:
        ConfigError: ``lookback < 1``.
        DataError: ``dates`` or ``y`` not aligned with ``rows``.
    """

    def __init__(
        self,
        layout: SequenceLayout,
        lookback: int,
        *,
        rows: npt.ArrayLike,
        dates: npt.ArrayLike,
        y: npt.ArrayLike | torch.Tensor | None = None,
        pad_to: int = 0,
    ) -> None:
        super().__init__(layout, lookback)
        rows_np = np.asarray(rows, dtype=np.int64)
        codes, uniques = pd.factorize(np.asarray(dates), sort=True)
        if len(codes) != len(rows_np):
            raise DataError(f"dates has {len(codes)} rows, expected {len(rows_np)}")
        order = np.argsort(codes, kind="stable")  # samples grouped by date, stable within
        counts = np.bincount(codes, minlength=len(uniques))  # (D,)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # (D,) offset of each date
        slot = np.arange(len(order)) - first[codes[order]]  # place within its date
        width = int(counts.max(initial=0))
        if pad_to > 0:
            width = -(-width // pad_to) * pad_to  # padded slots are -1: masked like any other
        members = np.full((len(uniques), width), -1, dtype=np.int64)
        members[codes[order], slot] = order  # (D, N), -1 = no symbol in that slot
        self.dates = uniques
        self.rows = torch.from_numpy(rows_np).to(self.device)
        self.members = torch.from_numpy(members).to(self.device)
        self.y = self._per_sample(y, "y", len(rows_np))

    def __len__(self) -> int:
        return int(self.members.shape[0])

    @property
    def n_assets(self) -> int:
        """N, the width of every batch (the largest cross-section)."""
        return int(self.members.shape[1])

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        members = self.members[idx]  # (B, N)
        mask = members >= 0
        sample = members.clamp(min=0)  # padding reads sample 0, masked out below
        B, N = sample.shape
        x = self.layout.windows(self.rows[sample.reshape(-1)], self.lookback)  # (B * N, T, C)
        out = {"x": x.view(B, N, *x.shape[1:]), "mask": mask}
        if self.y is not None:
            y = self.y[sample]  # (B, N, ...)
            keep = mask.view(B, N, *([1] * (y.ndim - 2)))
            out["y"] = torch.where(keep, y, torch.full_like(y, float("nan")))
        return out
