"""Lookback windows streamed from a partitioned feature dataset: each DDP rank reads only its
own shards, so a ``torchrun`` job never holds the whole panel in one process.

- The dataset is one :func:`~alphaforge.engines.dask_features.build_feature_dataset` wrote (with
  a ``label`` for training): every part file holds whole symbols with their full history, so
  the windows of a rank's samples never need another rank's rows.
- Parts are dealt to ranks by size (largest first, each to the rank holding the fewest rows);
  under ``torch.distributed`` the rank and world size come from the process group.
- Windows are gathered by the in-memory code (:class:`~alphaforge.models.windows.SequenceLayout`
  and :class:`~alphaforge.models.windows.WindowSource`) from the rank's rows.
- The standardiser is fitted on the training samples of every rank together (sums all-reduced
  over the group): the same on every rank, as the one of an in-memory fit (up to the order of
  the float sums).
- :func:`~alphaforge.models.training.fit_torch` needs the same number of steps on every rank:
  each rank keeps the same number of samples, the smallest rank's count (a seeded draw of its
  own samples; the parts are balanced, so few are left out). The source says it is
  ``rank_local``: ``fit_torch`` then draws every epoch's order from the rank's own samples and
  scores all of a rank-local valid source on each rank, all-reducing the sums.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from alphaforge.engines.dask_features import LABEL, MANIFEST
from alphaforge.errors import DataError
from alphaforge.models.windows import SequenceLayout, Standardizer, WindowSource
from alphaforge.utils import device as dev

logger = logging.getLogger(__name__)

__all__ = ["ShardWindowSource", "assign_parts", "read_manifest"]


def read_manifest(dataset: str | Path) -> dict[str, Any]:
    """The manifest of a feature dataset.

    Raises:
        DataError: no readable ``_dataset.json`` in ``dataset``.
    """
    path = Path(dataset) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"not a feature dataset: {exc}", path=str(dataset)) from None


def assign_parts(rows: Sequence[int], world_size: int) -> list[list[int]]:
    """Deal parts to ranks by size: largest first, each to the rank with the fewest rows.

    Args:
        rows: Rows of each part.
        world_size: Number of ranks.

    Returns:
        Part positions per rank, each list sorted; deterministic.

    Raises:
        DataError: fewer parts than ranks (a rank would have no rows).
    """
    if len(rows) < world_size:
        raise DataError(
            f"{len(rows)} dataset parts for {world_size} ranks: build the dataset with more "
            "parts (smaller partition_rows) or run fewer ranks"
        )
    load = [0] * world_size
    out: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(rows)), key=lambda i: (-rows[i], i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        out[r].append(i)
        load[r] += rows[i]
    return [sorted(parts) for parts in out]


def _global_standardizer(values: npt.NDArray[np.float64], clip: float | None) -> Standardizer:
    """:meth:`Standardizer.fit` over the rows of every rank (two all-reduced passes)."""
    if not dev.is_distributed():
        return Standardizer.fit(values, clip=clip)
    finite = ~np.isnan(values)
    sums = torch.from_numpy(np.stack([finite.sum(axis=0), np.nansum(values, axis=0)]))
    count, total = dev.all_reduce_sum(sums.double()).numpy()
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    centred = np.where(finite, values - mean, 0.0)
    squares = dev.all_reduce_sum(torch.from_numpy((centred**2).sum(axis=0))).numpy()
    var = np.divide(squares, count, out=np.zeros_like(total), where=count > 0)
    std = np.sqrt(var)
    return Standardizer(mean=mean, std=np.where(std > 1e-12, std, 1.0), clip=clip)


class ShardWindowSource:
    """``fit_torch`` samples (its ``BatchSource`` protocol) from this rank's dataset parts.

    Args:
        dataset: Feature dataset directory.
        lookback: T, bars per window.
        span: ``(first, last)`` timestamps of the samples, inclusive (the windows also read the
            bars before ``first``); ``None``: every bar.
        features: Feature columns (default: all of the dataset's).
        label: Target column; ``None`` for inference samples (no ``"y"``).
        standardizer: Fitted on training samples (pass the training source's to a valid
            source); ``None``: fitted here, on this source's samples of every rank.
        clip: Clip of a standardiser fitted here.
        rank, world_size: This process's place (default: the ``torch.distributed`` group's).
        device: Where the windows are gathered.
        observed, missing: Extra channels (see :meth:`SequenceLayout.build`).
        seed: Seeds which samples a rank leaves out to match the smallest rank.

    Attributes:
        rank_local: ``True``: every rank holds its own samples (read by ``fit_torch``).
        parts: The part files this rank read.
        symbols: Symbols of this rank.
        index: ``(timestamp, symbol)`` of each of this rank's samples, in sample order (where
            predictions of ``batch(idx)`` belong).
        standardizer: The standardiser used.

    Raises:
        DataError: not a feature dataset, unknown columns, no label, or no sample on a rank.
    """

    rank_local = True

    def __init__(
        self,
        dataset: str | Path,
        lookback: int,
        *,
        span: tuple[Any, Any] | None = None,
        features: Sequence[str] | None = None,
        label: str | None = LABEL,
        standardizer: Standardizer | None = None,
        clip: float | None = 10.0,
        rank: int | None = None,
        world_size: int | None = None,
        device: torch.device | str = "cpu",
        observed: bool = True,
        missing: bool = False,
        seed: int = 0,
    ) -> None:
        root = Path(dataset)
        manifest = read_manifest(root)
        columns = list(features) if features is not None else list(manifest["columns"])
        known = set(manifest["columns"]) | ({LABEL} if manifest.get("label") else set())
        unknown = [c for c in [*columns, *([label] if label else [])] if c not in known]
        if unknown:
            raise DataError(f"columns {unknown[:10]} are not in the dataset", path=str(root))
        rank = dev.rank() if rank is None else rank
        world_size = dev.world_size() if world_size is None else world_size
        mine = assign_parts([p["rows"] for p in manifest["parts"]], world_size)[rank]
        self.parts = [manifest["parts"][i]["file"] for i in mine]
        frame = self._read(root, columns, label, span)
        X = frame.set_index(["timestamp", "symbol"])[columns]
        self.symbols = sorted(frame["symbol"].unique())
        samples = self._samples(frame, label, span)
        if len(samples) == 0:
            raise DataError(f"rank {rank}: no sample in {self.parts}", path=str(root))
        values = X.to_numpy(dtype=np.float64, na_value=np.nan)
        self.standardizer = standardizer or _global_standardizer(values[samples], clip)
        layout = SequenceLayout.build(
            X, self.standardizer, device=device, observed=observed, missing=missing
        )
        n = int(dev.all_reduce_min(torch.tensor([len(samples)])).item())
        if n < len(samples):  # the same count on every rank: as many steps per epoch
            keep = np.random.default_rng(seed + rank).choice(len(samples), n, replace=False)
            samples = samples[np.sort(keep)]
        self.index = X.index[samples]
        y = None if label is None else frame[label].to_numpy(dtype=np.float64)[samples]
        self._windows = WindowSource(layout, lookback, rows=samples, y=y)
        logger.info(
            "rank %d/%d: %d parts, %d symbols, %d samples",
            rank,
            world_size,
            len(mine),
            len(self.symbols),
            n,
        )

    def _read(
        self, root: Path, columns: list[str], label: str | None, span: tuple[Any, Any] | None
    ) -> pd.DataFrame:
        """This rank's rows up to the span's end (the windows need nothing later)."""
        wanted = ["timestamp", "symbol", *columns, *([label] if label else [])]
        filters = None if span is None else [("timestamp", "<=", pd.Timestamp(span[1]))]
        frames = [pd.read_parquet(root / f, columns=wanted, filters=filters) for f in self.parts]
        return pd.concat(frames, ignore_index=True)

    @staticmethod
    def _samples(
        frame: pd.DataFrame, label: str | None, span: tuple[Any, Any] | None
    ) -> npt.NDArray[np.int64]:
        """Rows that are samples: in the span, with a label when training."""
        keep = np.ones(len(frame), dtype=bool)
        if span is not None:
            keep &= (frame["timestamp"] >= pd.Timestamp(span[0])).to_numpy()
        if label is not None:
            keep &= frame[label].notna().to_numpy()
        return np.flatnonzero(keep)

    def __len__(self) -> int:
        return len(self._windows)

    @property
    def device(self) -> torch.device:
        """Where the windows (and the batch indices) live."""
        return self._windows.device

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"x": (B, T, C)}`` and ``"y": (B,)`` for samples ``idx`` of this rank."""
        return self._windows.batch(idx)
