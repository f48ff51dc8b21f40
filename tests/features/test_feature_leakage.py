"""No look-ahead, honest lookbacks, exact warm-up; also for the cross-sectional stage and PCA.

Every check but PCA's runs on both catalogues (``default``, ``alpha158``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from alphaforge.features import ALPHA158, FEATURES, PCAFactors, build_features
from alphaforge.testing import check_no_lookahead, leakage_panel

CUTS = (30, 200, 380)  # positions in the panel's calendar
SPECS = {"default": FEATURES, "alpha158": ALPHA158}


def _timestamps(panel: pd.DataFrame) -> pd.Index:
    return panel.index.get_level_values("timestamp")


@pytest.fixture(scope="module", params=list(SPECS))
def catalogue(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def full(panel: pd.DataFrame, catalogue: str) -> pd.DataFrame:
    return build_features(panel, catalogue=catalogue)


@pytest.mark.parametrize("cut", CUTS)
def test_future_perturbation_leaves_past_bitwise_equal(
    cut, panel, perturb, catalogue, full
) -> None:
    ts = _timestamps(panel)
    t = ts.unique()[cut]
    after = np.asarray(ts > t)
    scrambled = build_features(perturb(panel, after, seed=cut), catalogue=catalogue)
    past = ~after
    # every column, the cross-sectional stage included, exactly equal up to t
    np.testing.assert_array_equal(scrambled.to_numpy()[past], full.to_numpy()[past])
    # and the perturbation did reach the later rows of every column that reads prices
    changed = ~np.isclose(scrambled.to_numpy()[after], full.to_numpy()[after], equal_nan=True)
    priced = [c not in SPECS[catalogue] or bool(SPECS[catalogue][c].fields) for c in full.columns]
    assert changed.any(axis=0)[priced].all()


@pytest.mark.parametrize("cut", CUTS)
def test_truncated_history_gives_the_same_values(cut, panel, catalogue, full) -> None:
    ts = _timestamps(panel)
    past = np.asarray(ts <= ts.unique()[cut])
    truncated = build_features(panel[past], catalogue=catalogue)
    np.testing.assert_allclose(
        truncated.to_numpy(), full.to_numpy()[past], rtol=1e-9, atol=1e-12, equal_nan=True
    )


def _position_rows(panel: pd.DataFrame, symbol: str) -> np.ndarray:
    """Long row numbers of a symbol's bars, in time order (position p -> row)."""
    return np.flatnonzero(np.asarray(panel.index.get_level_values("symbol") == symbol))


@pytest.mark.parametrize("symbol", ["EEE", "AAA"])
def test_declared_lookback_is_honest(symbol, panel, perturb, catalogue, full) -> None:
    rows = _position_rows(panel, symbol)
    p = len(rows) - 1  # the symbol's last bar
    unchanged = []
    for name, spec in SPECS[catalogue].items():
        older = np.zeros(len(panel), dtype=bool)
        older[rows[: p - spec.lookback + 1]] = True  # bars before the lookback window
        moved = build_features(
            perturb(panel, older, seed=spec.lookback), [name], cross_section=False
        )[name].to_numpy()
        # exact up to rounding: anchors / IIR state may sit before the window
        np.testing.assert_allclose(
            moved[rows[p]],
            full[name].to_numpy()[rows[p]],
            rtol=1e-9,
            atol=1e-12,
            err_msg=f"{name} looks further back",
        )
        if spec.fields:  # and the window's oldest bar does matter: the lookback is not inflated
            oldest = rows[p - spec.lookback + 1]
            if all(
                _value_at(_bump_bar(panel, oldest, how), name, rows[p])
                == full[name].to_numpy()[rows[p]]
                # a new high / low, a flipped sign, a wider range, another bar shape
                for how in ("up", "down", "high", "open")
            ):
                unchanged.append(name)
    assert not unchanged, f"declared lookbacks longer than needed: {unchanged}"


def _bump_bar(panel: pd.DataFrame, row: int, how: str) -> pd.DataFrame:
    """One bar x3 ("up"), /3 ("down"), its high x1.5 ("high") or its open moved to the middle
    of its range ("open"); the bar stays valid."""
    out = panel.copy()
    if how == "high":
        out.iloc[row, out.columns.get_loc("high")] *= 1.5
    elif how == "open":
        out.iloc[row, out.columns.get_loc("open")] = (
            panel["high"].iloc[row] + panel["low"].iloc[row]
        ) / 2
    else:
        out.iloc[row] = panel.iloc[row] * (3.0 if how == "up" else 1 / 3.0)
    return out


def _value_at(panel: pd.DataFrame, name: str, row: int) -> float:
    """One feature's value at one long row, built alone (no cross-section)."""
    return float(build_features(panel, [name], cross_section=False)[name].iloc[row])


def test_warm_up_is_exactly_lookback(panel, catalogue, full) -> None:
    rows = _position_rows(panel, "EEE")  # no gaps, no zero volume
    for name, spec in SPECS[catalogue].items():
        values = full[name].to_numpy()[rows]
        assert np.isnan(values[: spec.lookback - 1]).all(), f"{name}: value before warm-up"
        assert np.isfinite(values[spec.lookback - 1 :]).all(), f"{name}: NaN after warm-up"


def test_windows_count_own_bars_across_gaps(panel, catalogue, full) -> None:
    # AAA misses bars 200..204 of the calendar: its 5-bar return still spans 5 of ITS bars
    aaa = panel.xs("AAA", level="symbol")
    close = aaa["close"].to_numpy()
    got = full.xs("AAA", level="symbol")
    if catalogue == "default":
        np.testing.assert_allclose(got["ret_5"].to_numpy()[5:], close[5:] / close[:-5] - 1)
    else:  # Qlib's ROC is the other way up
        np.testing.assert_allclose(got["ROC5"].to_numpy()[5:], close[:-5] / close[5:])


@pytest.mark.parametrize("cut", CUTS[1:])
def test_pca_never_looks_past_its_training_rows(cut, panel, perturb) -> None:
    full = build_features(panel)
    ts = _timestamps(panel)
    after = np.asarray(ts > ts.unique()[cut])
    other = build_features(perturb(panel, after, seed=7))
    train = ~after
    a = PCAFactors(n_components=5).fit(full[train])
    b = PCAFactors(n_components=5).fit(other[train])
    np.testing.assert_array_equal(a.mean_, b.mean_)
    np.testing.assert_array_equal(a.pca_.components_, b.pca_.components_)
    fa, fb = a.transform(full), a.transform(other)
    np.testing.assert_array_equal(fa.to_numpy()[train], fb.to_numpy()[train])
    assert not np.allclose(fa.to_numpy()[after], fb.to_numpy()[after], equal_nan=True)


def test_lead_leakage_battery_at_every_cut(catalogue: str) -> None:
    # the project's generic battery (alphaforge.testing): halts, a split, gaps; every timestamp
    panel = leakage_panel()
    build = partial(build_features, catalogue=catalogue)
    assert check_no_lookahead(panel, build, name=f"build_features[{catalogue}]") == 159
