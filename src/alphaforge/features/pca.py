"""PCA factors of a feature matrix, fitted per fold on training rows only.

- standardise each column with the mean and std of the training rows (NaNs ignored);
- NaN (and inf) -> 0 AFTER standardising, i.e. a missing value sits at the training mean. We impute
  rather than drop rows because whole families are NaN by design on some panels (volume features
  of a close-only panel) and every feature is NaN in its warm-up: dropping incomplete rows would
  leave nothing to fit on. Rows with no finite value at all are left out of the fit and get NaN
  factors in ``transform``;
- scikit-learn's PCA on the standardised training rows.

``transform`` maps each row on its own, so it never mixes information across rows or time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from alphaforge.errors import NotFittedError

__all__ = ["PCAFactors"]

logger = logging.getLogger(__name__)


class PCAFactors:
    """Principal-component factors of standardised features (scikit-learn estimator contract).

    Args:
        n_components: Number of factors, capped at the number of columns and training rows.
        columns: Feature columns to use; None = every numeric column of the training frame.
        random_state: Seed handed to scikit-learn's PCA (used by its randomised solver only).

    Attributes:
        columns_: Columns used, in order.
        mean_: (F,) training means of those columns.
        scale_: (F,) training stds (ddof=0); 1.0 where a column is constant or all NaN.
        pca_: The fitted ``sklearn.decomposition.PCA``.
        n_components_: Factors actually produced.
        explained_variance_ratio_: (n_components_,) share of standardised variance per factor.
    """

    def __init__(
        self,
        n_components: int = 8,
        columns: Sequence[str] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.n_components = n_components
        self.columns = columns
        self.random_state = random_state

    def _standardise(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(n, F) standardised values with NaN/inf -> 0, and (n,) mask of rows with any value."""
        values = X.loc[:, list(self.columns_)].to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        z = (values - self.mean_) / self.scale_
        z[~finite] = 0.0
        return z, finite.any(axis=1)

    def fit(self, X: pd.DataFrame, y: object = None) -> PCAFactors:
        """Learn standardisation and components from the training rows X.

        Args:
            X: Training features, (n_rows, F) DataFrame. Only these rows are looked at.
            y: Ignored; present for the estimator contract.

        Returns:
            self.

        Raises:
            ValueError: If X has no usable column or row.
        """
        columns = (
            list(self.columns)
            if self.columns is not None
            else list(X.select_dtypes(include="number").columns)
        )
        if not columns:
            raise ValueError("PCAFactors.fit: X has no numeric column")
        values = X.loc[:, columns].to_numpy(dtype=np.float64)
        values = np.where(np.isfinite(values), values, np.nan)
        present = ~np.isnan(values)
        n_present = present.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(present, values, 0.0).sum(axis=0) / n_present
            var = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0) / n_present
        scale = np.sqrt(var)
        self.columns_ = columns
        self.mean_ = np.where(n_present > 0, mean, 0.0)
        self.scale_ = np.where((n_present > 0) & (scale > 0), scale, 1.0)
        z, usable = self._standardise(X)
        z = z[usable]
        n_components = min(self.n_components, z.shape[0], z.shape[1])
        if n_components < 1:
            raise ValueError("PCAFactors.fit: no training row has a finite value")
        self.pca_ = PCA(n_components=n_components, random_state=self.random_state).fit(z)
        self.n_components_ = n_components
        self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_
        logger.debug(
            "PCAFactors: %d rows x %d columns -> %d factors (%.1f%% of variance)",
            z.shape[0],
            z.shape[1],
            n_components,
            100 * self.explained_variance_ratio_.sum(),
        )
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Project rows of X on the fitted components.

        Args:
            X: Features with at least the fitted columns; any index.

        Returns:
            DataFrame on X's index with float64 columns ``pca_0 .. pca_{k-1}``; NaN for rows
            with no finite value among the fitted columns.

        Raises:
            NotFittedError: If called before ``fit``.
        """
        if not hasattr(self, "pca_"):
            raise NotFittedError("PCAFactors.transform called before fit")
        z, usable = self._standardise(X)
        scores = self.pca_.transform(z)
        scores[~usable] = np.nan
        names = [f"pca_{i}" for i in range(self.n_components_)]
        return pd.DataFrame(scores, index=X.index, columns=names)

    def fit_transform(self, X: pd.DataFrame, y: object = None) -> pd.DataFrame:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X, y).transform(X)
