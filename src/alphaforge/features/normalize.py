"""Feature normalisation, a per-fold step like PCA: ``features.normalize`` in an experiment.

- ``cs_rank``: per timestamp, each column's centred percentile rank across the symbols present,
  ``((rank - 0.5) / n_t - 0.5) * sqrt(12)`` (unit variance; ties share their average rank).
- ``cs_zscore``: per timestamp, ``(x - mean_t) / std_t`` across symbols (ddof 1; 0 where the
  column is constant at that timestamp).
- ``robust_zscore``: ``(x - median) / (1.4826 * MAD)`` with the median and MAD of each column
  fitted on the fold's *training rows only*, then clipped to ``[-3, 3]`` (Qlib's
  RobustZScoreNorm); a column with zero MAD is centred only.

The two cross-sectional ones read one timestamp at a time, so they need no fit and cannot leak
across time; the robust z-score learns its statistics from training rows and applies them
row-wise to later rows. NaN stays NaN (the models handle missing values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Self

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigError, NotFittedError

Normalize = Literal["none", "cs_rank", "cs_zscore", "robust_zscore"]
NORMALIZERS: tuple[str, ...] = ("none", "cs_rank", "cs_zscore", "robust_zscore")
MAD_SCALE = 1.4826  # MAD of a normal distribution times this is its standard deviation
CLIP = 3.0

__all__ = ["CLIP", "NORMALIZERS", "FeatureNormalizer", "cs_rank", "cs_zscore"]


def cs_rank(X: pd.DataFrame) -> pd.DataFrame:
    """Centred percentile rank of every column across the symbols of each timestamp.

    Args:
        X: Features indexed by ``(timestamp, symbol)``.

    Returns:
        Same shape and index; NaN where ``X`` is NaN or fewer than 2 symbols have a value.
    """
    g = X.groupby(level="timestamp", sort=False)
    n = g.transform("count")
    out = ((g.rank(method="average") - 0.5) / n - 0.5) * np.sqrt(12.0)
    return out.where(n >= 2)


def cs_zscore(X: pd.DataFrame) -> pd.DataFrame:
    """``(x - mean_t) / std_t`` of every column across the symbols of each timestamp.

    Returns:
        Same shape and index; 0 where the column is constant at ``t``, NaN where ``X`` is NaN
        or fewer than 2 symbols have a value.
    """
    g = X.groupby(level="timestamp", sort=False)
    std = g.transform("std")
    z = (X - g.transform("mean")) / std.where(std > 0)
    return z.where(std != 0, 0.0).where(X.notna() & (g.transform("count") >= 2))


@dataclass
class FeatureNormalizer:
    """One of :data:`NORMALIZERS`, fitted on a fold's training rows.

    Attributes:
        method: The normalisation.
        median_, scale_: ``robust_zscore`` only: per-column median and ``1.4826 * MAD`` of
            the training rows (scale 1 where the MAD is 0).
    """

    method: str = "none"
    median_: pd.Series | None = field(default=None, repr=False)
    scale_: pd.Series | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.method not in NORMALIZERS:
            raise ConfigError(
                f"features.normalize: unknown method {self.method!r}; valid: {NORMALIZERS}"
            )

    def fit(self, X_train: pd.DataFrame) -> Self:
        """Learn the robust statistics from the training rows (no-op for the others)."""
        if self.method == "robust_zscore":
            median = X_train.median()
            mad = (X_train - median).abs().median() * MAD_SCALE
            self.median_, self.scale_ = median, mad.where(mad > 0, 1.0).fillna(1.0)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Normalise ``X`` (any rows: each is transformed from its own timestamp or the fit).

        Raises:
            NotFittedError: ``robust_zscore`` before :meth:`fit`.
        """
        if self.method == "none":
            return X
        if self.method == "cs_rank":
            return cs_rank(X)
        if self.method == "cs_zscore":
            return cs_zscore(X)
        if self.median_ is None or self.scale_ is None:
            raise NotFittedError("FeatureNormalizer(robust_zscore): call fit() first")
        return ((X - self.median_) / self.scale_).clip(-CLIP, CLIP)
