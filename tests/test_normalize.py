"""Label transforms and feature normalisations against naive per-timestamp pandas loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from alphaforge.errors import ConfigError, NotFittedError
from alphaforge.features.normalize import FeatureNormalizer, cs_rank, cs_zscore
from alphaforge.labels import TRANSFORMS, LabelSpec, transform_label


def _panel(seed: int = 0) -> pd.DataFrame:
    """Unbalanced (timestamp, symbol) panel: gaps, ties, a one-symbol and a constant date."""
    rng = np.random.default_rng(seed)
    rows = []
    for t, day in enumerate(pd.bdate_range("2021-01-04", periods=30)):
        symbols = ["A"] if t == 3 else [s for s in "ABCDEFG" if rng.random() > 0.2]
        for s in symbols:
            f = 1.5 if t == 7 else float(rng.choice([0.0, 1.0, rng.normal()]))  # ties
            rows.append((day, s, f, rng.normal(), np.nan if rng.random() < 0.1 else rng.normal()))
    df = pd.DataFrame(rows, columns=["timestamp", "symbol", "f", "g", "y"])
    return df.set_index(["timestamp", "symbol"])


def _naive_rank(v: pd.Series) -> pd.Series:
    """Centred percentile rank of one timestamp's values, by hand."""
    x = v.dropna()
    out = pd.Series(np.nan, index=v.index)
    if len(x) < 2:
        return out
    for key, value in x.items():
        below, equal = (x < value).sum(), (x == value).sum()
        rank = below + (equal + 1) / 2  # average rank of the ties, 1-based
        out[key] = ((rank - 0.5) / len(x) - 0.5) * np.sqrt(12)
    return out


def _naive_transform(v: pd.Series, how: str) -> pd.Series:
    x = v.dropna()
    out = pd.Series(np.nan, index=v.index)
    if how == "none":
        return v
    if how == "demean":
        return v - x.mean()
    if len(x) < 2:
        return out
    if how == "zscore":
        sd = x.std(ddof=1)
        return (v - x.mean()) / sd if sd > 0 else v * 0.0
    if how == "rank":
        return _naive_rank(v)
    r = _naive_rank(v)  # rank_gauss: invert the centred rank back to (rank - 0.5) / n
    return pd.Series(norm.ppf(r / np.sqrt(12) + 0.5), index=v.index)


@pytest.mark.parametrize("how", TRANSFORMS)
def test_label_transforms_equal_a_per_date_loop(how):
    y = _panel()["y"]
    got = transform_label(y, how)
    want = pd.concat([_naive_transform(g, how) for _, g in y.groupby(level="timestamp")])
    pd.testing.assert_series_equal(got, want.reindex(y.index), check_names=False, rtol=1e-9)


def test_cross_sectional_normalisations_equal_a_per_date_loop():
    X = _panel()[["f", "g"]]
    want_rank = pd.concat([g.apply(_naive_rank) for _, g in X.groupby(level="timestamp")]).reindex(
        X.index
    )
    pd.testing.assert_frame_equal(cs_rank(X), want_rank, rtol=1e-9)
    want_z = pd.concat(
        [g.apply(lambda c: _naive_transform(c, "zscore")) for _, g in X.groupby(level="timestamp")]
    ).reindex(X.index)
    pd.testing.assert_frame_equal(cs_zscore(X), want_z, rtol=1e-9)


def test_robust_zscore_is_fitted_on_training_rows_only():
    X = _panel()[["f", "g"]]
    train = X.iloc[:60]
    norm_ = FeatureNormalizer("robust_zscore").fit(train)
    later = X.iloc[60:] * 100.0  # later rows far out: clipped, and the fit does not move
    out = norm_.transform(pd.concat([train, later]))
    for col in X.columns:
        med = train[col].median()
        mad = (train[col] - med).abs().median() * 1.4826
        scale = mad if mad > 0 else 1.0
        want = ((pd.concat([train, later])[col] - med) / scale).clip(-3, 3)
        pd.testing.assert_series_equal(out[col], want, rtol=1e-12)
    assert out.abs().max().max() <= 3.0
    with pytest.raises(NotFittedError):
        FeatureNormalizer("robust_zscore").transform(X)
    with pytest.raises(ConfigError, match="unknown method 'minmax'"):
        FeatureNormalizer("minmax")


def test_transforms_read_one_timestamp_only():
    """Changing every label after a date leaves the transformed labels up to it unchanged."""
    y = _panel()["y"]
    cut = y.index.get_level_values("timestamp").unique()[15]
    later = y.index.get_level_values("timestamp") > cut
    other = y.copy()
    other[later] = other[later] * -7.0 + 3.0
    for how in TRANSFORMS:
        a, b = transform_label(y, how)[~later], transform_label(other, how)[~later]
        pd.testing.assert_series_equal(a, b)


def test_label_spec_rejects_bad_transforms():
    assert LabelSpec(transform="rank").cross_sectional
    with pytest.raises(ConfigError, match="label.transform: unknown transform 'ranks'"):
        LabelSpec(transform="ranks")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="volatility label"):
        LabelSpec("realized_vol", 5, transform="zscore")
