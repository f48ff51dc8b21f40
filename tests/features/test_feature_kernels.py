"""The numpy kernels and the packed layout under the fast path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from alphaforge.features import _core, _rolling, build_features, cross_section


@pytest.fixture()
def walk() -> np.ndarray:
    """(600, 4) random walks; column 3 sits near 60,000 with a flat stretch; a NaN in column 1."""
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((600, 4)), axis=0) + [10.0, 0.0, 100.0, 60_000.0]
    x[100:140, 3] = x[99, 3]
    x[300, 1] = np.nan
    return x


@pytest.mark.parametrize("n", [1, 2, 5, 20, 63, 250, 700])
def test_sliding_matches_pandas(walk: np.ndarray, n: int) -> None:
    frame = pd.DataFrame(walk)
    for op, how in ((np.add, "sum"), (np.maximum, "max"), (np.minimum, "min")):
        expected = getattr(frame.rolling(n), how)().to_numpy()
        got = _rolling.sliding(walk, n, op)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("n", [2, 5, 20, 250])
def test_rolling_variance_is_accurate_at_high_price_levels(walk: np.ndarray, n: int) -> None:
    mean, var = _rolling.rolling_mean_var(walk, n)
    exact = np.full_like(walk, np.nan)
    exact[n - 1 :] = sliding_window_view(walk, n, axis=0).var(axis=-1, ddof=1)
    np.testing.assert_allclose(var, exact, rtol=1e-8, atol=1e-10, equal_nan=True)
    np.testing.assert_allclose(
        mean, pd.DataFrame(walk).rolling(n).mean(), rtol=1e-12, atol=1e-12, equal_nan=True
    )


def test_constant_windows_have_zero_variance_and_nan_zscores(walk: np.ndarray) -> None:
    _, var = _rolling.rolling_mean_var(walk, 20)
    assert (var[119:140, 3] == 0.0).all()  # windows inside the flat stretch: exactly 0
    assert (var[140:, 3] > 0).all()
    corr = _rolling.rolling_corr(walk[:, [0, 3]], walk[:, [3, 0]], 20)
    assert np.isnan(corr[119:140]).all() and np.isfinite(corr[140:]).all()
    skew, kurt = _rolling.rolling_skew_kurt(walk, 20)
    assert np.isnan(skew[119:140, 3]).all() and np.isnan(kurt[119:140, 3]).all()


def test_window_ema_is_a_normalised_weighted_window(walk: np.ndarray) -> None:
    span, window = 10, 30
    w = (1 - 2 / (span + 1)) ** np.arange(window)[::-1]
    expected = sliding_window_view(walk[:, [0, 2, 3]], window, axis=0) @ (w / w.sum())
    got = _rolling.window_ema(walk[:, [0, 2, 3]], span, window)
    assert np.isnan(got[: window - 1]).all()
    np.testing.assert_allclose(got[window - 1 :], expected, rtol=1e-12)
    # start: rows before it are ignored entirely
    shifted = walk[:, [0]].copy()
    shifted[:7] = np.nan
    got = _rolling.window_ema(shifted, span, window, start=7)
    assert np.isnan(got[: 7 + window - 1]).all()
    np.testing.assert_allclose(got[7 + window - 1 :, 0], expected[7:, 0], rtol=1e-12)


@pytest.mark.parametrize("n", [5, 20, 60])
def test_rolling_slope_matches_two_pass_ols(walk: np.ndarray, n: int) -> None:
    got = _rolling.rolling_slope(walk, n)
    windows = sliding_window_view(walk, n, axis=0)  # (T - n + 1, 4, n)
    k = np.arange(n) - (n - 1) / 2.0
    centred = windows - windows.mean(axis=-1, keepdims=True)
    expected = centred @ k / (k @ k)
    np.testing.assert_allclose(got[n - 1 :], expected, rtol=1e-9, atol=1e-11, equal_nan=True)


def test_lag_and_short_series() -> None:
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(_rolling.lag(x, 1)[1:], x[:-1])
    assert np.isnan(_rolling.lag(x, 5)).all()
    assert np.isnan(_rolling.rolling_mean_abs_dev(x, 5)).all()
    assert np.isnan(_rolling.window_ema(x, 5, 15)).all()


def test_blocks_and_chunks_do_not_change_values(panel: pd.DataFrame, monkeypatch) -> None:
    default = build_features(panel)
    # many tiny blocks (one or two symbols each) and tiny anchor chunks
    monkeypatch.setattr(_core.PackedLayout.__init__, "__defaults__", (64,))
    monkeypatch.setattr(_rolling, "_CHUNK_CELLS", 16)
    layout = _core.PackedLayout(panel.index)
    assert len(layout.blocks) == layout.n_symbols
    small = build_features(panel)
    np.testing.assert_allclose(
        small.to_numpy(), default.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True
    )


def test_layout_round_trip(panel: pd.DataFrame) -> None:
    layout = _core.PackedLayout(panel.index, block_cells=1000)
    assert not layout.balanced and len(layout.blocks) > 1
    values = np.arange(len(panel), dtype=np.float64)
    out = np.full(len(panel), np.nan)
    for block in layout.blocks:
        packed = layout.pack(block, values)  # (T_b, n_b), padding repeats the last bar
        assert packed.shape == block.shape
        # each column increases down the rows: a symbol's bars in time order
        assert (np.diff(packed, axis=0) >= 0).all()
        layout.unpack(block, packed, out)
    np.testing.assert_array_equal(out, values)


def test_balanced_panel_takes_the_reshape_path(panel_factory) -> None:
    panel = panel_factory(seed=3)
    sub = panel.loc[panel.index.get_level_values("symbol").isin(["BBB", "EEE"])]
    dates = sub.xs("BBB", level="symbol").index
    balanced = sub.loc[sub.index.get_level_values("timestamp").isin(dates)]
    assert _core.PackedLayout(balanced.index).balanced
    X = build_features(balanced)
    # dropping one bar of EEE makes the panel unbalanced; BBB's values do not move
    unbalanced = balanced.drop(balanced.index[101])
    assert not _core.PackedLayout(unbalanced.index).balanced
    Y = build_features(unbalanced, cross_section=False)
    bbb = balanced.index.get_level_values("symbol") == "BBB"
    np.testing.assert_allclose(
        Y.loc[balanced.index[bbb]].to_numpy(),
        X.loc[bbb, Y.columns].to_numpy(),
        rtol=1e-9,
        atol=1e-12,
        equal_nan=True,
    )


def test_sparse_cross_section_path_equals_dense(panel: pd.DataFrame, monkeypatch) -> None:
    dense = build_features(panel)
    monkeypatch.setattr(cross_section, "_SPARSE_FACTOR", -(10**9))
    sparse = build_features(panel)
    cs_cols = [c for c in dense.columns if c.startswith("cs_")]
    np.testing.assert_allclose(
        sparse[cs_cols].to_numpy(),
        dense[cs_cols].to_numpy(),
        rtol=1e-12,
        atol=1e-12,
        equal_nan=True,
    )


@pytest.mark.parametrize("n", [1, 5, 20, 60])
def test_order_statistics_match_pandas(walk: np.ndarray, n: int) -> None:
    # ties (the flat stretch of column 3) and a NaN (column 1) included
    x = walk.copy()
    x[200:230, 2] = np.round(x[200:230, 2])  # many ties in windows that are not flat
    frame = pd.DataFrame(x).rolling(n)
    upper, lower = _rolling.rolling_quantiles(x, n, (0.8, 0.2))
    for got, q in ((upper, 0.8), (lower, 0.2)):
        np.testing.assert_allclose(got, frame.quantile(q), rtol=1e-12, equal_nan=True)
    rank = _rolling.rolling_rank_pct(x, n)
    np.testing.assert_allclose(rank, frame.rank(pct=True), rtol=1e-12, equal_nan=True)
    for largest, best in ((True, np.argmax), (False, np.argmin)):
        expected = frame.apply(lambda a, best=best: best(a) + 1, raw=True)  # first occurrence
        got = _rolling.rolling_argext(x, (n, 2 * n + 1), largest=largest)
        np.testing.assert_array_equal(got[0], expected.to_numpy())
        longer = frame.obj.rolling(2 * n + 1).apply(lambda a, best=best: best(a) + 1, raw=True)
        np.testing.assert_array_equal(got[1], longer.to_numpy())


def test_order_statistics_on_short_series() -> None:
    x = np.arange(6.0).reshape(3, 2)
    assert all(np.isnan(q).all() for q in _rolling.rolling_quantiles(x, 5, (0.5,)))
    assert np.isnan(_rolling.rolling_rank_pct(x, 5)).all()
    assert all(np.isnan(i).all() for i in _rolling.rolling_argext(x, (4, 5), largest=True))
    np.testing.assert_array_equal(_rolling.rolling_argext(x, (2,), largest=False)[0][1:], 1.0)


def test_alpha158_blocks_and_chunks_do_not_change_values(panel: pd.DataFrame, monkeypatch) -> None:
    default = build_features(panel, catalogue="alpha158")
    # one or two symbols per block, tiny anchor and sort chunks
    monkeypatch.setattr(_core.PackedLayout.__init__, "__defaults__", (64,))
    monkeypatch.setattr(_rolling, "_CHUNK_CELLS", 16)
    monkeypatch.setattr(_rolling, "_SORT_CELLS", 50)
    small = build_features(panel, catalogue="alpha158")
    np.testing.assert_allclose(
        small.to_numpy(), default.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True
    )
