"""``iteration_callback``: iterative models report each round's valid loss and stop on a raise."""

from __future__ import annotations

import math

import pytest

from alphaforge.registry import get_model
from alphaforge.testing import tiny_problem


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "lstm"])
def test_reports_valid_loss_per_round_and_stops_on_raise(name):
    X, y = tiny_problem(n_symbols=3, n_bars=120)
    ts = X.index.get_level_values("timestamp").unique()
    cut = X.index.get_level_values("timestamp") < ts[90]
    cls = get_model(name)
    params = (
        {**cls.test_params(), "early_stopping_rounds": None}
        if name != "lstm"
        else {**cls.test_params(), "max_epochs": 4, "patience": 10}
    )
    seen: list[tuple[int, float]] = []
    est = cls.from_params(params)
    est.iteration_callback = lambda i, v: seen.append((i, v))
    est.fit(X[cut], y[cut], valid=(X[~cut], y[~cut]))
    assert [i for i, _ in seen] == list(range(len(seen))) and len(seen) >= 4
    assert all(math.isfinite(v) for _, v in seen)

    def stop_at_2(i: int, v: float) -> None:
        if i == 2:
            raise Stop

    est = cls.from_params(params)
    est.iteration_callback = stop_at_2
    with pytest.raises(Stop):
        est.fit(X[cut], y[cut], valid=(X[~cut], y[~cut]))
    # no valid window: nothing is scored, nothing reported
    est = cls.from_params(params)
    est.iteration_callback = lambda i, v: seen.append((-1, v))
    est.fit(X[cut], y[cut])
    assert all(i >= 0 for i, _ in seen)
