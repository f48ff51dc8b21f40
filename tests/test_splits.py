import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.errors import ConfigError
from alphaforge.splits import WalkForward


def _grid(n):
    return pd.bdate_range("2020-01-01", periods=n)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(60, 400),
    train=st.integers(10, 120),
    valid=st.integers(0, 40),
    test=st.integers(5, 60),
    horizon=st.integers(1, 10),
    embargo=st.integers(0, 10),
    expanding=st.booleans(),
    step=st.one_of(st.none(), st.integers(1, 30)),
)
def test_folds_never_overlap_and_keep_purge_and_embargo(
    n, train, valid, test, horizon, embargo, expanding, step
):
    if horizon > test:
        with pytest.raises(ConfigError, match="horizon"):
            WalkForward(train, valid, test, horizon=horizon)
        return
    wf = WalkForward(
        train, valid, test, step=step, horizon=horizon, embargo=embargo, expanding=expanding
    )
    grid = _grid(n)
    if n < wf.min_bars():
        with pytest.raises(ConfigError, match="needs"):
            wf.split(grid)
        return
    folds = wf.split(grid)
    assert folds
    pos = {t: i for i, t in enumerate(grid)}
    prev_test_start = -1
    for f in folds:
        tr = np.array([pos[t] for t in f.train])
        te = np.array([pos[t] for t in f.test])
        assert len(te) == test
        assert len(tr) >= train and (expanding or len(tr) == train)
        assert not set(f.train) & set(f.test) and not set(f.valid) & set(f.test)
        # a train label at bar i looks at bars i+1..i+h: they must end before the next segment,
        # and `embargo` more bars must separate them
        nxt = pos[f.valid[0]] if valid else te[0]
        assert tr.max() + horizon + embargo < nxt
        if valid:
            va = np.array([pos[t] for t in f.valid])
            assert len(va) == valid
            assert va.max() + horizon + embargo < te[0]
            assert tr.max() < va.min()
        assert te[0] > prev_test_start
        prev_test_start = te[0]
    starts = [pos[f.test[0]] for f in folds]
    assert all(b - a == (step or test) for a, b in zip(starts, starts[1:], strict=False))


def test_long_panel_timestamps_and_rows_mask():
    ts = _grid(50)
    idx = pd.MultiIndex.from_product([ts, ["A", "B"]], names=["timestamp", "symbol"])
    X = pd.DataFrame({"f": np.arange(100.0)}, index=idx)
    (fold,) = WalkForward(20, 5, 10, horizon=2, n_folds=1).split(X)
    assert fold.rows(X, "test").sum() == 20
    assert fold.train[-1] < fold.valid[0] < fold.test[0]


def test_n_folds_keeps_most_recent():
    folds = WalkForward(10, 0, 5, n_folds=2).split(_grid(100))
    assert len(folds) == 2 and folds[-1].test[-1] == _grid(100)[-1]


def test_bad_windows_are_config_errors():
    with pytest.raises(ConfigError, match="split.train"):
        WalkForward(0, 5, 5)
    with pytest.raises(ConfigError, match="purge"):
        WalkForward(10, 5, 5, purge=1, horizon=3)
    with pytest.raises(ConfigError, match="300 timestamps"):
        WalkForward(1000, 10, 10).split(_grid(300))
