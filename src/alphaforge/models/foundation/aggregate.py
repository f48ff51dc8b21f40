"""Point forecasts from a bank of samples: named, vectorised reductions over the samples axis.

Foundation models return many sampled futures per row; a forecaster must turn them into one
number. Every reduction here is a pure numpy function of the samples (no state, no RNG) and is
selected by name (YAML ``aggregation: trimmed_mean_10``), so tuning can try many of them on one
cached bank of samples (:func:`score_sample_bank`) without drawing again.

Names (``p`` in 5, 10, 15, 20, 25 percent; ``k`` in 10, 15, ..., 90):

- ``mean``, ``median``;
- ``trimmed_mean_p``: drop the lowest and the highest ``p%`` of the sorted samples, then average
  (``scipy.stats.trim_mean(x, p / 100)``: ``int(p/100 * n)`` cut at each end);
- ``lower_trimmed_mean_p`` / ``upper_trimmed_mean_p``: drop only the lowest / highest ``p%``
  (``scipy.stats.trim1`` with ``tail="left"`` / ``"right"``, then the mean);
- ``winsorized_mean_p``: clamp the lowest and highest ``p%`` to the nearest kept value, then
  average (``scipy.stats.mstats.winsorize(x, limits=(p/100, p/100))``);
- ``qk``: the ``k/100`` quantile with linear interpolation (``numpy.quantile``'s default).

Samples are expected finite; a NaN propagates into the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge.errors import ConfigError, DataError
from alphaforge.metrics import get_metric

__all__ = ["AGGREGATIONS", "aggregate", "check_aggregation", "score_sample_bank"]

Array = npt.NDArray[np.float64]

TRIM_PERCENTS = (5, 10, 15, 20, 25)
QUANTILE_PERCENTS = tuple(range(10, 95, 5))


# ------------------------------------------------------------------ reductions of sorted samples
# Each takes samples sorted ascending along the last axis, shape (..., S), and returns (...,).
def _mean(s: Array) -> Array:
    return s.mean(axis=-1)


def _median(s: Array) -> Array:
    return np.median(s, axis=-1)


def _cut(n: int, share: float) -> int:
    return int(share * n)  # scipy's rounding: the count to drop is rounded down


def _trimmed(share: float) -> Callable[[Array], Array]:
    def fn(s: Array) -> Array:
        n = s.shape[-1]
        k = _cut(n, share)
        if 2 * k >= n:
            raise DataError(f"trimming {share:.0%} from each end of {n} samples leaves none")
        return s[..., k : n - k].mean(axis=-1)

    return fn


def _trimmed_one(share: float, tail: str) -> Callable[[Array], Array]:
    def fn(s: Array) -> Array:
        n = s.shape[-1]
        k = _cut(n, share)
        return (s[..., k:] if tail == "left" else s[..., : n - k]).mean(axis=-1)

    return fn


def _winsorized(share: float) -> Callable[[Array], Array]:
    def fn(s: Array) -> Array:
        n = s.shape[-1]
        k = _cut(n, share)
        lo, hi = s[..., k : k + 1], s[..., n - k - 1 : n - k]  # (..., 1) nearest kept values
        return np.clip(s, lo, hi).mean(axis=-1)

    return fn


def _quantile(q: float) -> Callable[[Array], Array]:
    def fn(s: Array) -> Array:
        return np.quantile(s, q, axis=-1)  # linear interpolation between order statistics

    return fn


def _build() -> dict[str, Callable[[Array], Array]]:
    table: dict[str, Callable[[Array], Array]] = {"mean": _mean, "median": _median}
    for p in TRIM_PERCENTS:
        share = p / 100
        table[f"trimmed_mean_{p}"] = _trimmed(share)
        table[f"lower_trimmed_mean_{p}"] = _trimmed_one(share, "left")
        table[f"upper_trimmed_mean_{p}"] = _trimmed_one(share, "right")
        table[f"winsorized_mean_{p}"] = _winsorized(share)
    for k in QUANTILE_PERCENTS:
        table[f"q{k}"] = _quantile(k / 100)
    return table


AGGREGATIONS: dict[str, Callable[[Array], Array]] = _build()
"""Name -> reduction of samples sorted ascending along the last axis, ``(..., S) -> (...)``."""


def check_aggregation(name: str) -> str:
    """Return ``name`` if it is a known aggregation.

    Raises:
        ConfigError: Unknown name; the message lists the valid ones.
    """
    if name not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {name!r}; valid: {', '.join(AGGREGATIONS)}")
    return name


def aggregate(samples: npt.ArrayLike, name: str, *, axis: int = -1) -> Array:
    """Reduce ``samples`` over ``axis`` with the aggregation called ``name``.

    Args:
        samples: Float array with a samples axis, e.g. ``(rows, samples)``.
        name: A key of :data:`AGGREGATIONS` (``"median"``, ``"trimmed_mean_10"``, ``"q25"`` ...).
        axis: The samples axis.

    Returns:
        float64 array with ``axis`` removed.

    Raises:
        ConfigError: Unknown name.
        DataError: No samples, or a trim that leaves none.
    """
    fn = AGGREGATIONS[check_aggregation(name)]
    values = np.moveaxis(np.asarray(samples, dtype=np.float64), axis, -1)
    if values.shape[-1] == 0:
        raise DataError("cannot aggregate an empty samples axis")
    return fn(values if name == "mean" else np.sort(values, axis=-1))


def score_sample_bank(
    samples: npt.ArrayLike,
    y: pd.Series,
    metric: str | Callable[[pd.Series, pd.Series], float],
    choices: Iterable[tuple[int, str]],
) -> pd.DataFrame:
    """Score many ``(num_samples, aggregation)`` choices on one bank of samples, no resampling.

    The first ``n`` samples of a row are used for ``num_samples = n``: foundation adapters draw
    sample ``s`` of a row from its own counter-based stream, so a bank of ``S`` samples holds the
    draws a run with any ``n <= S`` would make (:meth:`FoundationAdapter.sample_targets`).

    Args:
        samples: ``(rows, S)`` per-sample forecasts of the label (``sample_targets`` output).
        y: Realised labels for the same rows, ``(timestamp, symbol)`` index (cross-sectional
            metrics group by timestamp).
        metric: A key of :data:`alphaforge.metrics.METRICS` or ``fn(y_true, y_pred) -> float``.
        choices: ``(num_samples, aggregation)`` pairs, ``1 <= num_samples <= S``.

    Returns:
        Frame with columns ``num_samples``, ``aggregation``, ``score``, one row per choice, in
        the given order.

    Raises:
        DataError: Shapes do not match, or a choice asks for more samples than the bank holds.
        ConfigError: Unknown metric or aggregation.
    """
    fn = get_metric(metric).fn if isinstance(metric, str) else metric
    bank = np.asarray(samples, dtype=np.float64)
    if bank.ndim != 2 or bank.shape[0] != len(y):
        raise DataError(
            f"samples must be (rows, S) with rows == len(y) = {len(y)}, got shape {bank.shape}"
        )
    choices = [(int(n), check_aggregation(a)) for n, a in choices]
    too_many = [n for n, _ in choices if not 1 <= n <= bank.shape[1]]
    if too_many:
        raise DataError(
            f"num_samples must be in [1, {bank.shape[1]}] (the bank's size), got "
            f"{sorted(set(too_many))}"
        )
    sorted_prefix: dict[int, Array] = {}  # one sort per distinct n
    rows: list[dict[str, Any]] = []
    for n, name in choices:
        if name == "mean":
            point = bank[:, :n].mean(axis=1)
        else:
            if n not in sorted_prefix:
                sorted_prefix[n] = np.sort(bank[:, :n], axis=1)
            point = AGGREGATIONS[name](sorted_prefix[n])
        pred = pd.Series(point, index=y.index, name="y_pred")
        rows.append({"num_samples": n, "aggregation": name, "score": float(fn(y, pred))})
    return pd.DataFrame(rows, columns=["num_samples", "aggregation", "score"])


def default_aggregations() -> Sequence[str]:
    """A short list of robust aggregations for tuning search spaces."""
    return (
        "mean",
        "median",
        "trimmed_mean_10",
        "trimmed_mean_25",
        "winsorized_mean_10",
        "lower_trimmed_mean_10",
        "upper_trimmed_mean_10",
        "q40",
        "q60",
    )
