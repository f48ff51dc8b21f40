"""Walk-forward splits with purge and embargo, over the panel's timestamps.

Layout of one fold (time runs right; sizes in bars of the panel's timestamp grid)::

    |------ train ------|gap|-- valid --|gap|-- test --|
                         gap = purge + embargo bars, dropped

* **purge** (default: the label horizon ``h``): a label at bar ``t`` looks at bars ``t+1..t+h``, so
  the last ``h`` bars before a segment would see prices inside it; they are dropped.
* **embargo**: extra bars dropped after the purge, against serial correlation of features and
  labels (López de Prado, *Advances in Financial Machine Learning*, ch. 7).

Folds step forward by ``step`` bars (default: the test length) so test blocks tile the data
without overlap; the last test block ends on the last bar. With ``expanding=True`` the train window
starts at the first bar and grows; with ``expanding=False`` it keeps ``train`` bars. Every fit
window is derived here, never typed as dates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: sorted timestamp arrays for each segment."""

    index: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def rows(self, frame: pd.DataFrame | pd.Series, part: str) -> np.ndarray:
        """Boolean mask of ``frame``'s rows whose timestamp lies in segment ``part``.

        Args:
            frame: Frame or Series indexed by (timestamp, symbol).
            part: ``"train"``, ``"valid"`` or ``"test"``.

        Returns:
            Boolean array of length ``len(frame)``.
        """
        stamps = getattr(self, part)
        return frame.index.get_level_values("timestamp").isin(stamps)

    def describe(self) -> dict[str, object]:
        """First/last timestamp and size of each segment (for logs and metrics.json)."""
        out: dict[str, object] = {"fold": self.index}
        for part in ("train", "valid", "test"):
            ts = getattr(self, part)
            first, last = (
                (str(pd.Timestamp(ts[0])), str(pd.Timestamp(ts[-1]))) if len(ts) else (None, None)
            )
            out[part] = {"start": first, "end": last, "n_bars": int(len(ts))}
        return out


@dataclass(frozen=True)
class WalkForward:
    """Walk-forward splitter over a timestamp grid.

    Args:
        train: Train window length in bars (the minimum length when ``expanding``).
        valid: Validation window in bars (early stopping, tuning); 0 disables it.
        test: Test window in bars.
        step: Bars between consecutive test starts; default ``test``.
        purge: Bars dropped before each valid/test segment; default ``horizon``.
        embargo: Extra bars dropped after the purge.
        horizon: Label horizon ``h`` (sets the default purge).
        expanding: Grow the train window from the first bar instead of rolling it.
        n_folds: Keep only the last ``n_folds`` folds (most recent data); ``None`` keeps all.
    """

    train: int
    valid: int
    test: int
    step: int | None = None
    purge: int | None = None
    embargo: int = 0
    horizon: int = 1
    expanding: bool = True
    n_folds: int | None = None

    def __post_init__(self) -> None:
        for name in ("train", "test", "horizon"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"split.{name}: must be an integer >= 1, got {v!r}")
        for name in ("valid", "embargo"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"split.{name}: must be an integer >= 0, got {v!r}")
        if self.purge is not None and self.purge < self.horizon:
            raise ConfigError(
                f"split.purge: {self.purge} is smaller than the label horizon {self.horizon}; "
                "train labels would overlap the next segment"
            )
        if self.step is not None and self.step < 1:
            raise ConfigError(f"split.step: must be >= 1, got {self.step!r}")
        if self.horizon > self.test:
            raise ConfigError(
                f"label.horizon: {self.horizon} bars is larger than split.test = {self.test} "
                "bars; choose a test window of at least the horizon"
            )
        if self.n_folds is not None and self.n_folds < 1:
            raise ConfigError(f"split.n_folds: must be >= 1, got {self.n_folds!r}")

    @property
    def gap(self) -> int:
        """Bars dropped between consecutive segments (purge + embargo)."""
        return (self.horizon if self.purge is None else self.purge) + self.embargo

    def min_bars(self) -> int:
        """Fewest timestamps that give one fold."""
        valid_part = self.valid + self.gap if self.valid else 0
        return self.train + self.gap + valid_part + self.test

    def split(self, timestamps: pd.Index | np.ndarray | pd.DataFrame) -> list[Fold]:
        """Cut the timestamp grid into folds.

        Args:
            timestamps: Timestamps (duplicates allowed: a long panel's timestamp level), or a
                frame indexed by (timestamp, symbol).

        Returns:
            Folds in time order.

        Raises:
            ConfigError: if the data is shorter than one fold, naming the sizes.
        """
        grid = _grid(timestamps)
        return list(self._iter(grid))

    def _iter(self, grid: np.ndarray) -> Iterator[Fold]:
        n = len(grid)
        if n < self.min_bars():
            raise ConfigError(
                f"split: one fold needs {self.min_bars()} bars (train {self.train} + valid "
                f"{self.valid} + test {self.test} + gaps of {self.gap}), but the data has {n} "
                "timestamps; shorten split.train/valid/test"
            )
        step = self.step or self.test
        first_test = self.min_bars() - self.test
        # anchor the last test block on the last bar, so the most recent data is always tested
        starts = np.arange(n - self.test, first_test - 1, -step)[::-1]
        if self.n_folds is not None:
            starts = starts[-self.n_folds :]
        for k, t0 in enumerate(starts):
            # valid ends `gap` bars before the test; train ends `gap` bars before valid
            v1 = t0 - self.gap if self.valid else t0
            v0 = v1 - self.valid
            tr1 = v0 - self.gap if self.valid else t0 - self.gap
            tr0 = 0 if self.expanding else tr1 - self.train
            yield Fold(
                k, grid[tr0:tr1], grid[v0:v1] if self.valid else grid[:0], grid[t0 : t0 + self.test]
            )


def _grid(timestamps: pd.Index | np.ndarray | pd.DataFrame | pd.Series) -> np.ndarray:
    if isinstance(timestamps, (pd.DataFrame, pd.Series)):
        timestamps = timestamps.index.get_level_values("timestamp")
    return np.asarray(pd.Index(timestamps).unique().sort_values())
