"""Synthetic panels: deterministic, realistic bars, and the documented planted signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import load_panel, synthetic_panel
from alphaforge.errors import ConfigError, DataError


def oracle_rank_ic(panel: pd.DataFrame) -> pd.Series:
    """Per-timestamp Spearman IC of the documented signal z[t] against r[t+1].

    z[t] is a monotone function of the cross-sectional rank of r[t], so its rank IC equals the
    rank correlation of r[t] and r[t+1]; written with plain pandas to stay independent of the
    generator.
    """
    close = panel["close"].unstack("symbol")
    r = np.log(close).diff()
    signal = r.rank(axis=1)
    target = r.shift(-1).rank(axis=1)
    return signal.corrwith(target, axis=1, method="pearson").dropna()


def test_same_seed_same_panel_other_seed_other_panel(panel_contract) -> None:
    a = synthetic_panel(n_symbols=5, n_bars=50, seed=3)
    b = synthetic_panel(n_symbols=5, n_bars=50, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    assert not np.allclose(a["close"], synthetic_panel(n_symbols=5, n_bars=50, seed=4)["close"])
    panel_contract(a)


def test_bars_look_like_market_bars(panel_contract) -> None:
    panel = synthetic_panel()
    panel_contract(panel)
    assert panel.shape == (20 * 600, 5)
    assert panel.attrs["freq"] == pd.Timedelta("1D") and not panel.attrs["close_only"]
    ts = panel.index.get_level_values("timestamp")
    assert ts[0] == pd.Timestamp("2015-01-02") and (ts.day_of_week < 5).all()
    o, h, lo, c, v = (panel[k] for k in ("open", "high", "low", "close", "volume"))
    assert ((lo <= o) & (o <= h) & (lo <= c) & (c <= h)).all() and (v > 0).all()
    r = np.log(panel["close"].unstack()).diff()
    vol = r.std()
    assert 0.008 < vol.min() and vol.max() < 0.03  # about 1.5% a day, modest dispersion
    gap = np.log(panel["open"].unstack() / panel["close"].unstack().shift()).abs().median().median()
    assert gap < 0.005  # open sits near the previous close
    # GARCH: squared returns are autocorrelated
    sq = (r**2).stack()
    assert sq.groupby(level="symbol").apply(lambda s: s.autocorr()).mean() > 0.02
    # volume rises with |return|
    absr = r.abs().stack().dropna()
    logv = np.log(panel["volume"]).unstack().stack().reindex(absr.index)
    assert np.corrcoef(absr, logv)[0, 1] > 0.1


@pytest.mark.parametrize("strength", [0.1])
def test_planted_rank_ic_matches_strength(strength: float) -> None:
    panel = synthetic_panel(n_symbols=50, n_bars=1000, seed=0, strength=strength)
    assert panel.attrs["planted_rank_ic"] == strength
    assert "rank" in panel.attrs["signal"] and "\n" not in panel.attrs["signal"]
    ic = oracle_rank_ic(panel)
    assert len(ic) == 998
    assert abs(ic.mean() - strength) < 0.1 * strength, ic.mean()


def test_zero_strength_has_no_signal() -> None:
    ic = oracle_rank_ic(synthetic_panel(n_symbols=50, n_bars=600, seed=1, strength=0.0))
    assert abs(ic.mean()) < 3 * ic.std() / np.sqrt(len(ic))


def test_gaps_make_an_unbalanced_subset(panel_contract) -> None:
    full = synthetic_panel(n_symbols=8, n_bars=200, seed=5)
    gappy = synthetic_panel(n_symbols=8, n_bars=200, seed=5, gaps=True)
    panel_contract(gappy)
    counts = gappy.groupby(level="symbol").size()
    assert (counts == 196).sum() == 2 and (counts == 200).sum() == 6
    pd.testing.assert_frame_equal(gappy, full.loc[gappy.index])
    assert gappy.attrs["source"].endswith(",gaps=true")


def test_synthetic_source_strings() -> None:
    panel = load_panel("synthetic:n_symbols=4,n_bars=300,seed=2,strength=0.05,gaps=true")
    pd.testing.assert_frame_equal(
        panel, synthetic_panel(n_symbols=4, n_bars=300, seed=2, strength=0.05, gaps=True)
    )
    again = load_panel(panel.attrs["source"])  # the stored source reproduces the panel
    pd.testing.assert_frame_equal(again, panel)
    assert len(load_panel("synthetic:")) == 12_000
    with pytest.raises(DataError, match="bad synthetic option 'n_sym=3'"):
        load_panel("synthetic:n_sym=3")
    with pytest.raises(DataError, match="n_bars='many' is not a valid int"):
        load_panel("synthetic:n_bars=many")
    with pytest.raises(DataError, match="history too short: 100 bars found"):
        load_panel("synthetic:n_bars=100")
    with pytest.raises(ConfigError):
        synthetic_panel(strength=1.0)
    with pytest.raises(ConfigError):
        synthetic_panel(n_symbols=1)
