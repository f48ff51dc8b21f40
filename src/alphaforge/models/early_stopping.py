"""What iterative models early-stop on: the valid loss, or the valid window's Rank IC.

- ``early_stopping_metric`` is a param of every early-stopping model (LightGBM, XGBoost and every
  torch sequence network, through :class:`~alphaforge.models.training.TrainConfig`): ``"loss"``
  (the model's own valid loss, lower is better; the default) or ``"rank_ic"`` (the mean over
  the valid window's timestamps of the cross-sectional Spearman correlation between predictions
  and labels, higher is better).
- :class:`RankIC` scores one prediction vector per boosting round or epoch, so it does every
  piece of work that does not depend on the predictions once: the timestamp groups, a padded
  ``(D, N)`` member table and the labels' centred average ranks. A call is one row-wise argsort
  of a ``(D, N)`` matrix plus O(D N) numpy: no pandas, no per-timestamp Python.
- Semantics are those of :func:`alphaforge.metrics.rank_ic` (average ranks for ties; timestamps
  with fewer than two symbols or with constant labels are skipped; the mean over the rest) with
  one difference: a timestamp whose predictions are all equal scores 0 (no ranking skill)
  instead of being skipped. Early boosting rounds often split on per-timestamp features only;
  skipping would score such a model on the few timestamps it happens to rank, or give NaN,
  which never counts as an improvement.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge.errors import ConfigError

__all__ = ["EARLY_STOPPING_METRICS", "EarlyStoppingMetric", "RankIC", "stopping_score"]

EarlyStoppingMetric = Literal["loss", "rank_ic"]
EARLY_STOPPING_METRICS: tuple[str, ...] = ("loss", "rank_ic")


def stopping_score(value: float, higher_is_better: bool) -> float:
    """A round's early-stopping value as a score where lower is better (``-rank_ic``, or the
    loss itself): what ``iteration_callback`` and the tuning pruner receive."""
    return -value if higher_is_better else value


class RankIC:
    """Mean per-timestamp Spearman correlation of predictions with fixed labels.

    Args:
        timestamps: ``(n,)`` timestamp (or any sortable group code) of every valid row.
        y: ``(n,)`` labels of those rows; rows with a NaN label are left out.
        model: Name of the model, for the error message.

    Calling the instance with ``(n,)`` predictions (in the rows' order, any affine scale with a
    positive slope: ranks ignore it) returns the mean Rank IC in [-1, 1] over the timestamps
    with two or more labelled rows and non-constant labels, a timestamp with constant
    predictions counting as 0; NaN when a prediction is not finite or no timestamp is left.

    Raises:
        ConfigError: no timestamp has two or more labelled rows (a one-symbol panel): there is
            no cross-section to rank; early-stop on ``loss`` instead.
    """

    name = "rank_ic"

    def __init__(
        self, timestamps: npt.ArrayLike, y: npt.ArrayLike, *, model: str = "model"
    ) -> None:
        labels = np.asarray(y, dtype=np.float64)
        codes = pd.factorize(np.asarray(timestamps), sort=True)[0]
        if len(codes) != len(labels):
            raise ValueError(f"{len(codes)} timestamps for {len(labels)} labels")
        codes = np.where(np.isnan(labels), -1, codes)
        counts = np.bincount(codes[codes >= 0], minlength=codes.max(initial=-1) + 1)
        keep = counts >= 2  # a lone symbol has no cross-section
        if not keep.any():
            raise ConfigError(
                f"{model}: early_stopping_metric='rank_ic' needs a cross-section, but no "
                f"timestamp of the valid window has 2 or more symbols (a one-symbol panel?); "
                f"use early_stopping_metric='loss'"
            )
        rows = np.flatnonzero((codes >= 0) & keep[np.maximum(codes, 0)])
        group = np.unique(codes[rows], return_inverse=True)[1]  # 0 .. D - 1
        order = np.argsort(group, kind="stable")
        size = np.bincount(group)  # (D,) n_d
        slot = np.arange(len(order)) - np.repeat(np.cumsum(size) - size, size)
        self.members = np.zeros((len(size), int(size.max())), dtype=np.int64)  # (D, N)
        self.members[group[order], slot] = rows[order]
        self.mask = np.zeros(self.members.shape, dtype=bool)
        self.mask[group[order], slot] = True
        # ranks are sorted positions 0 .. n_d - 1: a date's centre is (n_d - 1) / 2
        self.centre = ((size - 1) / 2.0)[:, None]  # (D, 1)
        self.in_date = np.arange(self.members.shape[1])[None, :] < size[:, None]  # sorted slots
        dy, ss_y = self._centred_ranks(labels)
        self.dy, self.ss_y = dy, ss_y

    @property
    def n_timestamps(self) -> int:
        """D, the timestamps with two or more labelled rows."""
        return int(self.members.shape[0])

    def _centred_ranks(
        self, values: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Average ranks within each date minus the date's mean rank, ``(D, N)`` in member
        order (0 off the mask), and their sum of squares per date ``(D,)``."""
        v = np.where(self.mask, values[self.members], np.inf)  # (D, N) padding sorts last
        order = np.argsort(v, axis=1)
        s = np.take_along_axis(v, order, axis=1)
        D, N = s.shape
        j = np.broadcast_to(np.arange(N), (D, N))
        new = np.ones((D, N), dtype=bool)
        new[:, 1:] = s[:, 1:] != s[:, :-1]  # a tie run starts here
        last = np.ones((D, N), dtype=bool)
        last[:, :-1] = new[:, 1:]  # a tie run ends here
        first_pos = np.maximum.accumulate(np.where(new, j, 0), axis=1)
        last_pos = np.minimum.accumulate(np.where(last, j, N - 1)[:, ::-1], axis=1)[:, ::-1]
        centred = np.where(self.in_date, (first_pos + last_pos) / 2.0 - self.centre, 0.0)
        out = np.empty_like(centred)
        np.put_along_axis(out, order, centred, axis=1)  # back to member order
        return out, (centred * centred).sum(axis=1)

    def __call__(self, pred: npt.ArrayLike) -> float:
        """Mean Rank IC of ``pred`` against the labels; NaN if undefined (see the class)."""
        p = np.asarray(pred, dtype=np.float64).reshape(-1)
        if not np.isfinite(p[self.members[self.mask]]).all():
            return float("nan")
        dp, ss_p = self._centred_ranks(p)
        num = (dp * self.dy).sum(axis=1)  # (D,)
        ok = self.ss_y > 0  # constant labels: skipped
        if not ok.any():
            return float("nan")
        ranked = ss_p[ok] > 0  # constant predictions: 0
        ic = np.zeros(int(ok.sum()))
        ic[ranked] = num[ok][ranked] / np.sqrt(ss_p[ok][ranked] * self.ss_y[ok][ranked])
        return float(np.clip(ic, -1.0, 1.0).mean())
