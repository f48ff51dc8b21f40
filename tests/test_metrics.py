"""Metrics against scipy/sklearn and naive per-timestamp loops on ragged panels with NaNs, ties."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error

from alphaforge import metrics as M
from alphaforge.errors import ConfigError, DataError


def make_panel(seed: int, *, n_ts: int = 40, n_sym: int = 15, decimals: int | None = None):
    """Ragged (timestamp, symbol) panel in shuffled row order, with NaNs on both sides.

    Some timestamps keep 0-3 symbols, so the skip rules are exercised; ``decimals`` rounds both
    series to create ties.
    """
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2021-01-01", periods=n_ts, freq="D")
    rows = [(t, f"S{s:02d}") for t in ts for s in range(n_sym) if rng.random() < 0.8]
    rows = [r for r in rows if r[0] not in ts[:3] or int(r[1][1:]) < ts.get_loc(r[0])]
    idx = pd.MultiIndex.from_tuples(rows, names=["timestamp", "symbol"])
    y = rng.normal(0, 0.02, len(idx))
    p = 0.5 * y + rng.normal(0, 0.02, len(idx))
    if decimals is not None:
        y, p = np.round(y, decimals), np.round(p, decimals)
    y_true, y_pred = pd.Series(y, idx, name="y"), pd.Series(p, idx, name="y_pred")
    y_true[rng.random(len(idx)) < 0.1] = np.nan
    y_pred[rng.random(len(idx)) < 0.05] = np.nan
    order = rng.permutation(len(idx))
    # y_pred lacks a few rows y_true has (inner join), and comes in a different order
    return y_true.iloc[order], y_pred.iloc[order[5:]].sort_index()


def valid_groups(y_true: pd.Series, y_pred: pd.Series):
    """Naive reference: per timestamp, numpy arrays of the valid (label, forecast) pairs."""
    df = pd.concat([y_true.rename("t"), y_pred.rename("p")], axis=1, join="inner")
    for ts in sorted(df.index.get_level_values("timestamp").unique()):
        g = df.xs(ts, level="timestamp").dropna()
        yield ts, g["t"].to_numpy(), g["p"].to_numpy()


def naive_corr(y_true, y_pred, fn, min_count=2):
    out = {}
    for ts, t, p in valid_groups(y_true, y_pred):
        ok = len(t) >= min_count and np.ptp(t) > 0 and np.ptp(p) > 0
        out[ts] = fn(p, t)[0] if ok else np.nan
    return pd.Series(out, dtype=float)


def naive_top_k(t, p, k):
    """Expected |top_k(p) ∩ top_k(t)| / k over every tie-breaking order (brute force)."""

    def sets(v):
        return [
            frozenset(sorted(range(len(v)), key=lambda i: (-v[i], perm[i]))[:k])
            for perm in itertools.permutations(range(len(v)))
        ]

    sp, sy = sets(p), sets(t)
    return np.mean([len(a & b) for a in sp for b in sy]) / k


PANELS = [make_panel(seed) for seed in range(3)]
TIED = [make_panel(seed, decimals=2) for seed in range(3, 5)]


@pytest.mark.parametrize(("y_true", "y_pred"), PANELS + TIED)
def test_pointwise_match_sklearn_and_loops(y_true, y_pred):
    df = pd.concat([y_true, y_pred], axis=1, join="inner").dropna()
    t, p = df.iloc[:, 0].to_numpy(), df.iloc[:, 1].to_numpy()
    assert M.mae(y_true, y_pred) == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
    assert M.rmse(y_true, y_pred) == pytest.approx(math.sqrt(mean_squared_error(t, p)), rel=1e-12)
    assert M.pct_return_mae(y_true, y_pred) == pytest.approx(100 * mean_absolute_error(t, p))
    moved = [(a, b) for a, b in zip(t, p, strict=True) if a != 0]
    hits = sum((a > 0 and b > 0) or (a < 0 and b < 0) for a, b in moved)
    assert M.direction_accuracy(y_true, y_pred) == pytest.approx(hits / len(moved))


@pytest.mark.parametrize(("y_true", "y_pred"), PANELS + TIED)
def test_ic_and_rank_ic_match_scipy_per_timestamp(y_true, y_pred):
    for min_count in (2, 5):
        want = naive_corr(y_true, y_pred, stats.pearsonr, min_count)
        got = M.ic_series(y_true, y_pred, min_count=min_count)
        pd.testing.assert_series_equal(
            got, want, check_names=False, check_index_type=False, check_freq=False, rtol=1e-9
        )
        want_rank = naive_corr(y_true, y_pred, stats.spearmanr, min_count)
        got_rank = M.rank_ic_series(y_true, y_pred, min_count=min_count)
        pd.testing.assert_series_equal(
            got_rank,
            want_rank,
            check_names=False,
            check_index_type=False,
            check_freq=False,
            rtol=1e-9,
        )
    assert got.isna().any() and got.notna().sum() > 20  # the panel exercises skipping
    assert M.ic(y_true, y_pred) == pytest.approx(
        np.nanmean(naive_corr(y_true, y_pred, stats.pearsonr))
    )
    ics = naive_corr(y_true, y_pred, stats.spearmanr).dropna()
    assert M.rank_ic(y_true, y_pred) == pytest.approx(ics.mean())
    assert M.rank_icir(y_true, y_pred) == pytest.approx(ics.mean() / np.std(ics, ddof=1))
    ics = naive_corr(y_true, y_pred, stats.pearsonr).dropna()
    assert M.icir(y_true, y_pred) == pytest.approx(ics.mean() / np.std(ics, ddof=1))


@pytest.mark.parametrize(("y_true", "y_pred"), PANELS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_hit_rate_matches_set_overlap(y_true, y_pred, k):
    want = {}
    for ts, t, p in valid_groups(y_true, y_pred):
        if len(t) <= k:
            want[ts] = np.nan
            continue
        top_p, top_t = set(np.argsort(-p)[:k]), set(np.argsort(-t)[:k])
        want[ts] = len(top_p & top_t) / k
    got = M.top_k_hit_rate_series(y_true, y_pred, k)
    assert got.name == f"top{k}_hit_rate"
    pd.testing.assert_series_equal(
        got,
        pd.Series(want, dtype=float),
        check_names=False,
        check_index_type=False,
        check_freq=False,
    )
    assert M.top_k_hit_rate(y_true, y_pred, k) == pytest.approx(np.nanmean(list(want.values())))


@pytest.mark.parametrize(
    ("t", "p", "k"),
    [
        ([5, 4, 3, 2, 1], [1, 1, 1, 0, 0], 2),  # three-way tie straddles the cut: 2/3 chance each
        ([1, 1, 2, 2, 3], [3, 2, 2, 1, 0], 2),  # ties on both sides
        ([1, 2, 2, 2, 0], [0, 1, 1, 1, 1], 1),
        ([3, 1, 2, 0, 0], [1, 2, 2, 0, 5], 3),
    ],
)
def test_top_k_hit_rate_ties_equal_expected_overlap(t, p, k):
    idx = pd.MultiIndex.from_product(
        [[pd.Timestamp("2021-01-01")], list("abcde")], names=["timestamp", "symbol"]
    )
    got = M.top_k_hit_rate(pd.Series(t, idx, dtype=float), pd.Series(p, idx, dtype=float), k)
    assert got == pytest.approx(naive_top_k(np.array(t, float), np.array(p, float), k))


@pytest.mark.parametrize(("y_true", "y_pred"), PANELS)
@pytest.mark.parametrize("q", [2, 3, 5])
def test_quantile_spread_matches_loop(y_true, y_pred, q):
    want = {}
    for ts, t, p in valid_groups(y_true, y_pred):
        m = len(t) // q
        order = np.argsort(p)
        want[ts] = t[order[-m:]].mean() - t[order[:m]].mean() if m >= 1 else np.nan
    got = M.quantile_spread_series(y_true, y_pred, q)
    pd.testing.assert_series_equal(
        got,
        pd.Series(want, dtype=float),
        check_names=False,
        check_index_type=False,
        check_freq=False,
        rtol=1e-9,
    )
    assert M.quantile_spread(y_true, y_pred, q) == pytest.approx(np.nanmean(list(want.values())))


def test_quantile_spread_splits_ties_and_skips_constant_forecasts():
    idx = pd.MultiIndex.from_product(
        [pd.date_range("2021-01-01", periods=2), list("abcd")], names=["timestamp", "symbol"]
    )
    y = pd.Series([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0], idx)
    p = pd.Series([0.0, 1.0, 1.0, 2.0, 7.0, 7.0, 7.0, 7.0], idx)
    # q=2: buckets of 2; symbols b, c tie at the edge, each half in the top and half in the bottom
    got = M.quantile_spread_series(y, p, q=2)
    assert got.iloc[0] == pytest.approx((4 + 0.5 * 2 + 0.5 * 3) / 2 - (1 + 0.5 * 2 + 0.5 * 3) / 2)
    assert np.isnan(got.iloc[1])


def test_perfect_and_reversed_predictions():
    y_true, _ = PANELS[0]
    y = y_true.dropna()
    assert M.ic(y, y) == pytest.approx(1.0)
    assert M.rank_ic(y, y) == pytest.approx(1.0)
    assert M.top_k_hit_rate(y, y, 5) == pytest.approx(1.0)
    assert M.direction_accuracy(y, y) == 1.0
    assert M.mae(y, y) == 0.0
    assert M.ic(y, -y) == pytest.approx(-1.0)
    assert M.rank_ic(y, -3 * y + 1) == pytest.approx(-1.0)
    assert M.direction_accuracy(y, -y) == 0.0
    assert M.quantile_spread(y, y) > 0 > M.quantile_spread(y, -y)
    assert M.quantile_spread(y, y) == pytest.approx(-M.quantile_spread(y, -y))
    # every timestamp with >= 10 symbols: the bottom 5 predicted hold none of the top 5
    wide = y.groupby(level="timestamp").transform("count") >= 10
    assert M.top_k_hit_rate(y[wide], -y[wide], 5) == 0.0


def test_single_symbol_panel_gives_nan_cross_sectional_metrics():
    idx = pd.MultiIndex.from_product(
        [pd.date_range("2021-01-01", periods=30), ["AAPL"]], names=["timestamp", "symbol"]
    )
    rng = np.random.default_rng(0)
    y, p = pd.Series(rng.normal(size=30), idx), pd.Series(rng.normal(size=30), idx)
    out = M.evaluate(y, p)
    for name, spec in M.METRICS.items():
        if name in out:
            assert math.isnan(out[name]) == (spec.kind == "cross_sectional"), name
    frame = M.per_timestamp(y, p)
    assert list(frame.columns) == ["ic", "rank_ic", "quantile_spread", "top5_hit_rate"]
    assert len(frame) == 30 and frame.isna().all().all()


def test_timestamps_without_valid_pairs_stay_in_the_series_as_nan():
    idx = pd.MultiIndex.from_product(
        [pd.date_range("2021-01-01", periods=3), list("abc")], names=["timestamp", "symbol"]
    )
    y = pd.Series([1.0, 2.0, 3.0, np.nan, np.nan, np.nan, 1.0, 1.0, 1.0], idx)
    p = pd.Series([1.0, 3.0, 2.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0], idx)
    got = M.ic_series(y, p)
    assert got.index.name == "timestamp" and len(got) == 3
    assert got.iloc[0] == pytest.approx(stats.pearsonr([1, 3, 2], [1, 2, 3])[0])
    assert got.iloc[1:].isna().all()  # no valid pair; constant labels


def test_inputs_not_modified():
    y_true, y_pred = PANELS[1]
    before = y_true.copy(), y_pred.copy()
    M.evaluate(y_true, y_pred, list(M.METRICS)[:-1])
    M.per_timestamp(y_true, y_pred)
    M.qlike(y_true.abs() + 0.01, y_pred.abs() + 0.01)
    pd.testing.assert_series_equal(y_true, before[0])
    pd.testing.assert_series_equal(y_pred, before[1])


def test_evaluate_defaults_and_json():
    y_true, y_pred = PANELS[0]
    out = M.evaluate(y_true, y_pred)
    assert list(out) == [n for n in M.METRICS if n != "qlike"]
    assert all(type(v) is float for v in out.values())
    json.dumps(out)
    assert out["rank_ic"] == M.rank_ic(y_true, y_pred)
    vol = M.evaluate(y_true.abs() + 0.01, y_pred.abs() + 0.01, label_kind="volatility")
    assert "qlike" in vol and "direction_accuracy" not in vol and "top5_hit_rate" not in vol
    assert M.evaluate(y_true, y_pred, ["ic", "mae"]).keys() == {"ic", "mae"}
    assert list(M.evaluate(y_true, y_pred, "rank_ic")) == ["rank_ic"]
    for spec in M.METRICS.values():
        assert spec.direction in ("maximize", "minimize")
        assert spec.kind in ("pointwise", "cross_sectional", "volatility")


def test_unknown_names_list_valid_ones():
    with pytest.raises(ConfigError, match="unknown metric 'sharpe'.*rank_ic.*qlike"):
        M.get_metric("sharpe")
    y_true, y_pred = PANELS[0]
    with pytest.raises(ConfigError, match="top5_hit_rate"):
        M.evaluate(y_true, y_pred, ["ic", "nope"])
    with pytest.raises(ConfigError, match="return, volatility"):
        M.evaluate(y_true, y_pred, label_kind="price")
    assert M.get_metric("icir").fn is M.icir


def test_bad_inputs_raise_data_error():
    y_true, y_pred = PANELS[0]
    with pytest.raises(DataError, match="y_true is empty"):
        M.ic(y_true.iloc[:0], y_pred)
    with pytest.raises(DataError, match="share no index entry"):
        M.mae(y_true.iloc[:10], y_pred.loc[y_pred.index.difference(y_true.index[:10])])
    with pytest.raises(DataError, match="index levels differ"):
        M.mae(y_true, y_pred.rename_axis(["date", "ticker"]))
    with pytest.raises(DataError, match="must be a pandas Series"):
        M.rmse(y_true.to_frame(), y_pred)
    with pytest.raises(DataError, match="duplicated"):
        M.mae(pd.concat([y_true, y_true.iloc[:1]]), y_pred)
    with pytest.raises(DataError, match="infinite"):
        M.ic(y_true, y_pred.replace(y_pred.iloc[0], np.inf))
    with pytest.raises(DataError, match="non-NaN"):
        M.ic(y_true * np.nan, y_pred)
    with pytest.raises(DataError, match="level named 'timestamp'"):
        day = y_pred.index[0][0]
        M.ic(y_true.xs(day, level="timestamp"), y_pred.xs(day, level="timestamp"))
    with pytest.raises(ValueError, match="k must be"):
        M.top_k_hit_rate(y_true, y_pred, 0)


def test_qlike_formula_guards_and_units():
    idx = pd.MultiIndex.from_product(
        [pd.date_range("2021-01-01", periods=4), ["a"]], names=["timestamp", "symbol"]
    )
    vol = pd.Series([0.1, 0.2, 0.3, np.nan], idx)
    fc = pd.Series([0.2, 0.2, 0.1, 0.5], idx)
    r = (vol.iloc[:3].to_numpy() / fc.iloc[:3].to_numpy()) ** 2
    assert M.qlike(vol, fc) == pytest.approx(np.mean(r - np.log(r) - 1))
    assert M.qlike(vol**2, fc**2, kind="var") == pytest.approx(M.qlike(vol, fc))
    assert M.qlike(vol, vol) == 0.0
    with pytest.raises(DataError, match="forecasts are <= 0.*floor="):
        M.qlike(vol, fc - 0.15)
    assert math.isfinite(M.qlike(vol, fc - 0.15, floor=1e-4))
    with pytest.raises(DataError, match="negative"):
        M.qlike(-vol, fc)
    with pytest.raises(ConfigError, match="vol"):
        M.qlike(vol, fc, kind="std")


@settings(max_examples=60, deadline=None)
@given(
    var=st.lists(st.floats(1e-6, 1e2), min_size=1, max_size=30),
    scale=st.floats(1e-3, 1e3).filter(lambda s: abs(s - 1) > 1e-6),
)
def test_qlike_is_minimised_by_the_true_variance(var, scale):
    idx = pd.MultiIndex.from_product(
        [pd.date_range("2021-01-01", periods=len(var)), ["a"]], names=["timestamp", "symbol"]
    )
    s2 = pd.Series(var, idx)
    # pointwise: the realised variance itself scores 0, anything else more
    assert M.qlike(s2, s2, kind="var") == 0.0
    assert M.qlike(s2, s2 * scale, kind="var") > 0.0
    # a constant forecast is best at the mean variance (the loss is robust to proxy noise)
    best = pd.Series(float(np.mean(var)), idx)
    assert M.qlike(s2, best * scale, kind="var") >= M.qlike(s2, best, kind="var") - 1e-12


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), a=st.floats(0.01, 100), b=st.floats(-10, 10))
def test_ic_invariant_to_affine_and_rank_ic_to_monotone_maps(seed, a, b):
    y_true, y_pred = make_panel(seed, n_ts=8, n_sym=8)
    base_ic = M.ic_series(y_true, y_pred)
    pd.testing.assert_series_equal(M.ic_series(y_true, a * y_pred + b), base_ic, rtol=1e-6)
    pd.testing.assert_series_equal(
        M.rank_ic_series(y_true, np.exp(50 * y_pred)), M.rank_ic_series(y_true, y_pred)
    )


def test_evaluate_can_mark_undefined_metrics_nan_instead_of_failing():
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2021-01-01", periods=5), ["A", "B", "C"]], names=["timestamp", "symbol"]
    )
    y = pd.Series(np.linspace(0.01, 0.03, 15), index=idx)
    bad = pd.Series(np.linspace(-0.01, 0.02, 15), index=idx)  # some vol forecasts <= 0
    with pytest.raises(DataError, match="floor"):
        M.evaluate(y, bad, ["qlike", "mae"])
    out = M.evaluate(y, bad, ["qlike", "mae"], undefined="nan")
    assert np.isnan(out["qlike"]) and np.isfinite(out["mae"])
