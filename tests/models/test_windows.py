"""Window builders: equal to a naive loop, backward-only, per symbol, train-only scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from alphaforge.errors import DataError
from alphaforge.models.windows import SequenceLayout, Standardizer, WindowSource
from alphaforge.testing import tiny_problem


def naive_windows(
    X: pd.DataFrame,
    scaler: Standardizer,
    lookback: int,
    *,
    observed: bool = True,
    missing: bool = False,
) -> np.ndarray:
    """One window per row by a Python loop over rows: ``(R, T, C)``, X's row order."""
    raw = X.to_numpy(np.float64, na_value=np.nan)
    parts = [scaler.transform(raw)]
    parts += [np.ones((len(X), 1), np.float32)] if observed else []
    parts += [np.isnan(raw).astype(np.float32)] if missing else []
    channels = np.concatenate(parts, axis=1)
    stamps = X.index.get_level_values("timestamp")
    symbols = X.index.get_level_values("symbol")
    out = np.zeros((len(X), lookback, channels.shape[1]), dtype=np.float32)
    for i in range(len(X)):
        past = np.flatnonzero((symbols == symbols[i]) & (stamps <= stamps[i]))  # own symbol only
        past = past[np.argsort(stamps[past], kind="stable")][-lookback:]
        out[i, lookback - len(past) :] = channels[past]
    return out


@pytest.fixture(scope="module")
def ragged() -> pd.DataFrame:
    """Unbalanced panel: one symbol starts late, another ends early, random bars missing."""
    X, _ = tiny_problem(n_symbols=5, n_bars=60, n_features=4, seed=3)
    rng = np.random.default_rng(0)
    stamps = X.index.get_level_values("timestamp")
    symbols = X.index.get_level_values("symbol")
    keep = ~((symbols == "S01") & (stamps < stamps.unique()[25]))  # late start
    keep &= ~((symbols == "S02") & (stamps > stamps.unique()[40]))  # early end
    keep &= rng.random(len(X)) > 0.1  # gaps
    return X[keep]


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("lookback", [1, 7, 30])
def test_windows_equal_naive_loop(ragged: pd.DataFrame, lookback: int, missing: bool) -> None:
    scaler = Standardizer.fit(ragged)
    layout = SequenceLayout.build(ragged, scaler, missing=missing)
    got = layout.windows(torch.arange(len(ragged)), lookback).numpy()
    np.testing.assert_array_equal(got, naive_windows(ragged, scaler, lookback, missing=missing))
    assert layout.n_channels == 4 + 1 + 4 * missing


def test_row_order_of_x_does_not_matter(ragged: pd.DataFrame) -> None:
    scaler = Standardizer.fit(ragged)
    shuffled = ragged.sample(frac=1.0, random_state=0)
    a = SequenceLayout.build(ragged, scaler).windows(torch.arange(len(ragged)), 12)
    b = SequenceLayout.build(shuffled, scaler).windows(torch.arange(len(ragged)), 12)
    where = torch.as_tensor(shuffled.index.get_indexer(ragged.index))
    torch.testing.assert_close(a, b[where], rtol=0, atol=0)


def test_first_bar_is_left_padded_with_zeros(ragged: pd.DataFrame) -> None:
    scaler = Standardizer.fit(ragged)
    layout = SequenceLayout.build(ragged, scaler)
    first = ragged.groupby(level="symbol").head(1)
    rows = torch.as_tensor(ragged.index.get_indexer(first.index))
    x = layout.windows(rows, 10)  # (N, 10, F + 1)
    assert (x[:, :-1] == 0).all()
    assert (x[:, -1, -1] == 1).all()  # the observed channel marks the real bar


def test_windows_never_read_later_bars_or_other_symbols(ragged: pd.DataFrame) -> None:
    scaler = Standardizer.fit(ragged)
    base = SequenceLayout.build(ragged, scaler).windows(torch.arange(len(ragged)), 16)
    stamps = ragged.index.get_level_values("timestamp")
    symbols = ragged.index.get_level_values("symbol")
    rng = np.random.default_rng(1)
    for cut in stamps.unique()[[0, 10, 30, 50]]:
        later = ragged.copy()
        after = np.asarray(stamps > cut)
        later.iloc[after] = rng.normal(size=(after.sum(), ragged.shape[1])) * 5
        got = SequenceLayout.build(later, scaler).windows(torch.arange(len(ragged)), 16)
        keep = torch.as_tensor(~after)
        torch.testing.assert_close(got[keep], base[keep], rtol=0, atol=0)
    other = ragged.copy()
    mask = np.asarray(symbols == "S03")
    other.iloc[mask] = 99.0  # another symbol's every bar
    got = SequenceLayout.build(other, scaler).windows(torch.arange(len(ragged)), 16)
    keep = torch.as_tensor(~mask)
    torch.testing.assert_close(got[keep], base[keep], rtol=0, atol=0)


def test_standardizer_uses_train_rows_only(ragged: pd.DataFrame) -> None:
    stamps = ragged.index.get_level_values("timestamp")
    train = np.asarray(stamps <= stamps.unique()[30])
    scaler = Standardizer.fit(ragged[train])
    raw = ragged[train].to_numpy(np.float64)
    np.testing.assert_allclose(scaler.mean, np.nanmean(raw, axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.std, np.nanstd(raw, axis=0), rtol=1e-12)
    changed = ragged.copy()
    changed.iloc[~train] = changed.iloc[~train] * 100 + 7  # later rows do not move the scaler
    again = Standardizer.fit(changed[train])
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.std, scaler.std)
    restored = Standardizer.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(restored.transform(raw), scaler.transform(raw))


def test_standardizer_handles_nan_constant_and_outliers() -> None:
    raw = np.array([[np.nan, 1.0, 0.0], [np.nan, 1.0, 1.0], [np.nan, 1.0, 1e9]])
    scaler = Standardizer.fit(raw, clip=5.0)
    z = scaler.transform(raw)
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert (z[:, 0] == 0).all() and (z[:, 1] == 0).all()  # all-NaN and constant -> 0
    assert z[:, 2].max() <= 5.0


def test_window_source_batches(ragged: pd.DataFrame) -> None:
    layout = SequenceLayout.build(ragged, Standardizer.fit(ragged))
    rows = np.arange(10, 40)
    y = np.arange(60, dtype=np.float32).reshape(30, 2)
    source = WindowSource(layout, 5, rows=rows, y=y, weights=np.ones(30))
    assert len(source) == 30 and source.device == torch.device("cpu")
    batch = source.batch(torch.tensor([0, 3, 29]))
    assert batch["x"].shape == (3, 5, layout.n_channels)
    torch.testing.assert_close(batch["x"], layout.windows(torch.tensor([10, 13, 39]), 5))
    assert batch["y"].shape == (3, 2) and batch["y"][2, 1] == 59
    assert batch["weight"].shape == (3,)
    with pytest.raises(DataError, match="y has 2 rows"):
        WindowSource(layout, 5, rows=rows, y=y[:2])
