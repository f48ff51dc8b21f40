"""Sample aggregations against numpy / scipy, and bank scoring against direct recomputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import mstats

from alphaforge.errors import ConfigError, DataError
from alphaforge.metrics import get_metric
from alphaforge.models.foundation.aggregate import (
    AGGREGATIONS,
    QUANTILE_PERCENTS,
    TRIM_PERCENTS,
    aggregate,
    score_sample_bank,
)


def _reference(x: np.ndarray, name: str) -> np.ndarray:
    """Row by row with numpy / scipy: the definitions the names promise."""
    rows = []
    for row in x:
        if name == "mean":
            rows.append(np.mean(row))
        elif name == "median":
            rows.append(np.median(row))
        elif name.startswith("trimmed_mean_"):
            rows.append(stats.trim_mean(row, int(name.rsplit("_", 1)[1]) / 100))
        elif name.startswith("lower_trimmed_mean_"):
            rows.append(np.mean(stats.trim1(row, int(name.rsplit("_", 1)[1]) / 100, "left")))
        elif name.startswith("upper_trimmed_mean_"):
            rows.append(np.mean(stats.trim1(row, int(name.rsplit("_", 1)[1]) / 100, "right")))
        elif name.startswith("winsorized_mean_"):
            p = int(name.rsplit("_", 1)[1]) / 100
            rows.append(np.mean(mstats.winsorize(row, limits=(p, p))))
        else:
            rows.append(np.quantile(row, int(name[1:]) / 100))
    return np.asarray(rows)


def test_the_table_has_every_promised_name() -> None:
    expected = {"mean", "median"}
    for p in TRIM_PERCENTS:
        expected |= {
            f"trimmed_mean_{p}",
            f"lower_trimmed_mean_{p}",
            f"upper_trimmed_mean_{p}",
            f"winsorized_mean_{p}",
        }
    expected |= {f"q{k}" for k in QUANTILE_PERCENTS}
    assert set(AGGREGATIONS) == expected
    assert {"q10", "q90", "trimmed_mean_5", "trimmed_mean_25"} <= set(AGGREGATIONS)


@pytest.mark.parametrize("n", [7, 20, 33, 101])
def test_every_aggregation_matches_numpy_and_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_t(3, size=(5, n))  # fat tails: trimming matters
    for name in AGGREGATIONS:
        np.testing.assert_allclose(
            aggregate(x, name, axis=1), _reference(x, name), rtol=1e-12, atol=1e-12, err_msg=name
        )


def test_axis_and_leading_dims() -> None:
    x = np.random.default_rng(0).normal(size=(4, 3, 25))
    for name in ("median", "trimmed_mean_10", "q25", "winsorized_mean_20"):
        flat = aggregate(x.reshape(12, 25), name, axis=1).reshape(4, 3)
        np.testing.assert_allclose(aggregate(x, name), flat)
        np.testing.assert_allclose(aggregate(np.moveaxis(x, 2, 0), name, axis=0), flat)


def test_unknown_name_and_empty_samples() -> None:
    with pytest.raises(ConfigError, match="unknown aggregation 'trim10'.*valid: mean, median"):
        aggregate(np.ones((2, 3)), "trim10")
    with pytest.raises(DataError, match="empty"):
        aggregate(np.ones((2, 0)), "mean")


def _labels(n_rows: int) -> pd.Series:
    index = pd.MultiIndex.from_product(
        [pd.date_range("2021-01-01", periods=n_rows // 4), ["A", "B", "C", "D"]],
        names=["timestamp", "symbol"],
    )
    return pd.Series(np.random.default_rng(1).normal(size=n_rows), index=index, name="y")


def test_score_sample_bank_equals_scoring_each_choice_directly() -> None:
    y = _labels(40)
    bank = np.random.default_rng(2).normal(size=(40, 64)) + y.to_numpy()[:, None] * 0.3
    choices = [
        (8, "mean"),
        (8, "median"),
        (32, "trimmed_mean_10"),
        (64, "q40"),
        (64, "winsorized_mean_25"),
    ]
    for metric in ("mae", "rank_ic"):
        got = score_sample_bank(bank, y, metric, choices)
        fn = get_metric(metric).fn
        want = [
            fn(y, pd.Series(aggregate(bank[:, :n], a, axis=1), index=y.index)) for n, a in choices
        ]
        assert list(got["num_samples"]) == [n for n, _ in choices]
        np.testing.assert_allclose(got["score"], want, rtol=1e-12)
    custom = score_sample_bank(bank, y, lambda t, p: float((t - p).abs().max()), [(4, "mean")])
    assert custom["score"].iloc[0] == pytest.approx((y - bank[:, :4].mean(1)).abs().max())


def test_score_sample_bank_rejects_bad_shapes() -> None:
    y = _labels(8)
    with pytest.raises(DataError, match=r"num_samples must be in \[1, 5\]"):
        score_sample_bank(np.zeros((8, 5)), y, "mae", [(6, "mean")])
    with pytest.raises(DataError, match="rows == len"):
        score_sample_bank(np.zeros((7, 5)), y, "mae", [(2, "mean")])
