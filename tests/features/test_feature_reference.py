"""Every feature of the fast path equals the naive per-symbol pandas reference (`_reference.py`).

Both catalogues (``default`` and ``alpha158``), built together (``catalogue="both"``) and alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaforge.features import ALPHA158, DEFAULT_CS_FEATURES, FEATURES, build_features
from alphaforge.features._core import PackedLayout
from alphaforge.features._reference import REFERENCE, REFERENCE_ALPHA158, reference_features
from alphaforge.features.cross_section import CrossSection
from alphaforge.testing import leakage_panel

RTOL, ATOL = 1e-6, 1e-9
ALL_FEATURES = list(FEATURES) + list(ALPHA158)


def assert_matches(fast: pd.Series, ref: pd.Series, name: str) -> None:
    a, b = fast.to_numpy(), ref.to_numpy()
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    where = np.flatnonzero(nan_a != nan_b)
    assert not where.size, f"{name}: NaN pattern differs first at {fast.index[where[0]]}"
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=name)


@pytest.fixture(scope="module")
def fast(panel: pd.DataFrame) -> pd.DataFrame:
    return build_features(panel, catalogue="both")


@pytest.fixture(scope="module")
def ref(panel: pd.DataFrame) -> pd.DataFrame:
    return reference_features(panel, catalogue="both")


def test_reference_covers_catalogue() -> None:
    assert list(REFERENCE) == list(FEATURES)
    assert list(REFERENCE_ALPHA158) == list(ALPHA158)


@pytest.mark.parametrize("name", ALL_FEATURES)
def test_feature_matches_reference(name: str, fast: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert_matches(fast[name], ref[name], name)
    # defined from the warm-up on (the random-walk panel has no flat windows)
    assert fast[name].notna().sum() > 0.3 * len(fast), name


@pytest.mark.parametrize("name", ALL_FEATURES)
def test_feature_alone_equals_full_build(
    name: str, panel: pd.DataFrame, fast: pd.DataFrame
) -> None:
    # memoised intermediates shared between features (and catalogues) must not change a value
    alone = build_features(panel, [name], cross_section=False)[name]
    np.testing.assert_array_equal(alone.to_numpy(), fast[name].to_numpy())


@pytest.mark.parametrize("name", DEFAULT_CS_FEATURES)
def test_cross_section_matches_reference(name: str, fast: pd.DataFrame, ref: pd.DataFrame) -> None:
    for col in (f"cs_rank_{name}", f"cs_z_{name}"):
        assert_matches(fast[col], ref[col], col)
    rank = fast[f"cs_rank_{name}"].dropna()
    assert rank.between(0.0, 1.0).all() and rank.min() == 0.0 and rank.max() == 1.0
    z = fast[f"cs_z_{name}"].groupby(level="timestamp").agg(["mean", "std", "count"])
    z = z[z["count"] > 2]
    np.testing.assert_allclose(z["mean"], 0.0, atol=1e-9)
    np.testing.assert_allclose(z["std"], 1.0, rtol=1e-9)


def test_cross_section_ties_and_singletons() -> None:
    # 3 symbols at t0 with a tie, one symbol alone at t1, a NaN at t2
    idx = pd.MultiIndex.from_tuples(
        [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (2, "a"), (2, "b"), (2, "c")],
        names=["timestamp", "symbol"],
    )
    x = pd.Series([1.0, 1.0, 3.0, 5.0, np.nan, 2.0, 7.0], index=idx)
    rank, z = np.empty(len(x)), np.empty(len(x))
    CrossSection(PackedLayout(idx)).rank_and_z(x.to_numpy(), rank, z)
    np.testing.assert_allclose(rank, [0.25, 0.25, 1.0, 0.5, np.nan, 0.0, 1.0])
    assert np.isnan(z[3]) and np.isnan(z[4])  # singleton, NaN
    np.testing.assert_allclose(z[5:], [-1 / np.sqrt(2), 1 / np.sqrt(2)])


def test_catalogues_alone_equal_their_part_of_both(panel: pd.DataFrame, fast) -> None:
    default = build_features(panel)
    alpha = build_features(panel, catalogue="alpha158")
    assert list(fast.columns) == list(FEATURES) + list(ALPHA158) + list(
        default.columns[len(FEATURES) :]
    )
    np.testing.assert_array_equal(fast[default.columns].to_numpy(), default.to_numpy())
    np.testing.assert_array_equal(fast[alpha.columns].to_numpy(), alpha.to_numpy())


@pytest.mark.parametrize("which", ["intraday", "close_only", "halts"])
def test_other_panels_match_reference(
    which: str, intraday_panel: pd.DataFrame, close_only_panel: pd.DataFrame
) -> None:
    if which == "halts":  # flat bars, zero volume, a split, gaps: the project's leakage panel
        panel = leakage_panel(n_bars=320)
    else:
        panel = intraday_panel if which == "intraday" else close_only_panel
    fast = build_features(panel, catalogue="both")
    ref = reference_features(panel, catalogue="both")
    assert list(fast.columns) == list(ref.columns)
    for col in fast.columns:
        assert_matches(fast[col], ref[col], f"{which}:{col}")
