"""Future-perturbation battery: no feature or label value may depend on bars after its cut."""

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import LeakageError
from alphaforge.features import FEATURES, build_features
from alphaforge.labels import LABELS, make_label
from alphaforge.testing import check_no_lookahead, leakage_panel, perturb_after

PANEL = leakage_panel(n_bars=120)
GRID = PANEL.index.get_level_values("timestamp").unique()


def test_battery_panel_has_the_awkward_cases():
    sym = PANEL.index.get_level_values("symbol")
    counts = sym.value_counts()
    assert counts["BBB"] < counts["AAA"]  # late start and gaps
    assert (PANEL["volume"] == 0).any()  # halt with zero volume, no NaN
    assert not PANEL.isna().any().any()
    ddd = PANEL.xs("DDD", level="symbol")["close"]
    assert (ddd / ddd.shift()).min() < 0.6  # the split


def test_every_feature_at_every_cut_point():
    # all features together, incl. the cross-sectional stage, at every cut but the last
    n = check_no_lookahead(PANEL, lambda p: build_features(p), name="features")
    assert n == len(GRID) - 1


@pytest.mark.parametrize("kind", sorted(LABELS))
@pytest.mark.parametrize("h", [1, 5])
def test_labels_respect_their_horizon(kind, h):
    n = check_no_lookahead(PANEL, lambda p: make_label(p, kind, h), horizon=h, name=kind)
    assert n == len(GRID) - 1


def test_battery_catches_a_leaky_feature():
    leaky = lambda p: p["close"].groupby(level="symbol").shift(-1)  # noqa: E731
    with pytest.raises(LeakageError, match="changed"):
        check_no_lookahead(PANEL, leaky, cuts=GRID[50:52])
    # and a label used with a horizon shorter than it looks ahead
    with pytest.raises(LeakageError):
        check_no_lookahead(
            PANEL, lambda p: make_label(p, "forward_return", 3), horizon=1, cuts=GRID[50:55]
        )


def test_perturbation_changes_every_later_bar_and_keeps_panel_valid():
    cut = GRID[60]
    other = perturb_after(PANEL, cut)
    late = PANEL.index.get_level_values("timestamp") > cut
    assert (other.loc[late, "close"] != PANEL.loc[late, "close"]).all()
    pd.testing.assert_frame_equal(other[~late], PANEL[~late])
    assert (other["high"] >= other[["open", "close"]].max(axis=1)).all()
    assert (other["low"] <= other[["open", "close"]].min(axis=1)).all()


def test_catalogue_size():
    assert 90 <= len(FEATURES) <= 110
    assert np.isfinite(
        build_features(PANEL).to_numpy(dtype=float)[
            ~np.isnan(build_features(PANEL).to_numpy(dtype=float))
        ]
    ).all()
