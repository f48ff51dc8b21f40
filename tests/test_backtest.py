"""Backtest engine against a naive per-timestamp loop; leakage, costs, rebalancing, config."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from alphaforge import backtest as B
from alphaforge.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- fixtures


def ragged(seed: int, *, n_ts: int = 60, n_sym: int = 9):
    """Unbalanced panel: returns and predictions miss rows independently, predictions hold NaNs,
    cover only part of the grid, and one symbol has returns but never a prediction."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2022-01-03", periods=n_ts, freq="B")
    syms = [f"S{i}" for i in range(n_sym)]
    full = pd.MultiIndex.from_product([ts, syms], names=["timestamp", "symbol"])
    ret = pd.Series(rng.normal(0, 0.02, len(full)), full)
    ret = ret[rng.random(len(full)) < 0.85]
    ret[rng.random(len(ret)) < 0.05] = np.nan
    keep = (rng.random(len(full)) < 0.8) & (full.get_level_values("symbol") != "S0")
    stamp = full.get_level_values("timestamp")
    keep &= (stamp >= ts[4]) & (stamp <= ts[-3])
    pred = pd.Series(rng.normal(0, 1, len(full)), full, name="y_pred")[keep]
    pred[rng.random(len(pred)) < 0.1] = np.nan
    order = rng.permutation(len(pred))
    return pred.iloc[order], ret


def iid_panel(seed: int, n_ts: int = 2520, n_sym: int = 20):
    rng = np.random.default_rng(seed)
    ts = pd.bdate_range("2010-01-01", periods=n_ts)
    idx = pd.MultiIndex.from_product(
        [ts, [f"S{i:02d}" for i in range(n_sym)]], names=["timestamp", "symbol"]
    )
    return pd.Series(rng.normal(0, 0.02, len(idx)), idx, name="return")


# ----------------------------------------------------------------------------- naive reference


def naive_weights(strategy, row: dict, syms: list, held: set):
    """Target weights of one rebalance row, plain Python; returns (weights, new holdings)."""
    valid = {s: v for s, v in row.items() if not math.isnan(v)}
    ranked = sorted(valid, key=lambda s: (-valid[s], syms.index(s)))  # best first, ties by column
    w = {s: 0.0 for s in syms}
    if isinstance(strategy, B.LongShort):
        n = len(valid)
        n_leg = 0 if n < 2 else min(max(1, int(n * strategy.quantile + 1e-9)), n // 2)
        if n_leg:
            legs = ((ranked[:n_leg], 1.0), (ranked[-n_leg:], -1.0))
            med = statistics.median(valid.values())
            for leg, sign in legs:
                tilt = {s: abs(valid[s] - med) for s in leg}
                total = sum(tilt.values())
                for s in leg:
                    score = strategy.weighting == "score" and total > 0
                    share = tilt[s] / total if score else 1 / n_leg
                    w[s] += sign * strategy.gross / 2 * share
        return w, held
    if isinstance(strategy, B.TopK):
        top = ranked[: strategy.k]
        if strategy.n_drop is None:
            new = set(top)
        else:
            out = [s for s in held if s not in top]
            out = sorted(
                out, key=lambda s: ranked.index(s) if s in valid else len(syms) + syms.index(s)
            )  # no prediction ranks worst
            out = out[-strategy.n_drop :]
            new = held - set(out)
            for s in ranked:
                if len(new) >= strategy.k:
                    break
                if s not in new and s not in out:
                    new.add(s)
        for s in new:
            w[s] = 1 / strategy.k
        return w, new
    for s, v in valid.items():  # SignThreshold
        if v > strategy.threshold:
            w[s] = 1 / len(syms)
        elif v < -strategy.threshold and not strategy.long_only:
            w[s] = -1 / len(syms)
    return w, held


def naive_backtest(pred, ret, strategy, *, costs_bps=0.0, min_cost=0.0, delay=1, every=1):
    grid = sorted(set(ret.index.get_level_values("timestamp")))
    syms = sorted(set(pred.index.get_level_values("symbol")))
    p = {k: v for k, v in pred.items()}
    r = {k: v for k, v in ret.items()}
    rows = [
        i for i, t in enumerate(grid) if any(not math.isnan(p.get((t, s), math.nan)) for s in syms)
    ]
    first, last = rows[0], rows[-1]
    decided, held, cur = {}, set(), None
    for i in range(first, last + 1):
        if (i - first) % every == 0:
            cur, held = naive_weights(
                strategy, {s: p.get((grid[i], s), math.nan) for s in syms}, syms, held
            )
        decided[i] = cur
    out, prev = [], {s: 0.0 for s in syms}
    for j in range(first + delay, min(last + delay, len(grid) - 1) + 1):
        w = decided[j - delay]
        gross = sum(
            w[s] * (0.0 if math.isnan(r.get((grid[j], s), math.nan)) else r[(grid[j], s)])
            for s in syms
        )
        trades = [abs(w[s] - prev[s]) for s in syms]
        cost = sum(max(d * costs_bps / 1e4, min_cost) for d in trades if d > 1e-12)
        out.append(
            (
                grid[j],
                gross,
                gross - cost,
                cost,
                sum(trades),
                sum(v > 0 for v in w.values()),
                sum(v < 0 for v in w.values()),
            )
        )
        prev = w
    return pd.DataFrame(
        out, columns=["timestamp", "gross", "net", "cost", "turnover", "n_long", "n_short"]
    ).set_index("timestamp")


STRATEGIES = [
    B.LongShort(),
    B.LongShort(quantile=0.34, weighting="score", gross=2.0),
    B.TopK(k=3),
    B.TopK(k=3, n_drop=1),
    B.TopK(k=4, n_drop=2),
    B.SignThreshold(threshold=0.3),
    B.SignThreshold(long_only=True),
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=repr)
@pytest.mark.parametrize("delay,every,bps,min_cost", [(1, 1, 10.0, 0.0), (2, 3, 5.0, 2e-4)])
def test_matches_naive_loop(strategy, delay, every, bps, min_cost):
    pred, ret = ragged(1)
    got = B.backtest(
        pred, ret, strategy, costs_bps=bps, min_cost=min_cost, delay=delay, rebalance_every=every
    )
    want = naive_backtest(
        pred, ret, strategy, costs_bps=bps, min_cost=min_cost, delay=delay, every=every
    )
    pd.testing.assert_frame_equal(got.returns, want, check_dtype=False, atol=1e-12, rtol=0)
    assert list(got.positions.columns) == [f"S{i}" for i in range(1, 9)]  # S0: no prediction


def test_net_is_gross_minus_turnover_times_cost():
    pred, ret = ragged(2)
    res = B.backtest(pred, ret, B.LongShort(weighting="score"), costs_bps=7.5)
    df = res.returns
    assert np.abs(df.net - (df.gross - df.turnover * 7.5 / 1e4)).max() <= 1e-12
    assert df.turnover.iloc[0] == pytest.approx(res.positions.iloc[0].abs().sum())  # entry
    free = B.backtest(pred, ret, B.LongShort(weighting="score"))
    pd.testing.assert_series_equal(free.returns.gross, df.gross)
    assert (free.returns.net == free.returns.gross).all()


# ----------------------------------------------------------------------------- leakage


def test_perfect_foresight_is_huge_and_lag_test_collapses_it():
    ret = iid_panel(0)
    future = ret.groupby(level="symbol").shift(-1).rename("y_pred")  # pred[t] = r[t+1]
    out = B.lag_test(future, ret, B.LongShort(), costs_bps=5.0)
    assert out["base"]["gross"]["sharpe"] > 20
    assert abs(out["lagged"]["gross"]["sharpe"]) < 1
    assert out["sharpe_drop"] > 19


def test_same_bar_signal_has_no_skill():
    ret = iid_panel(1)
    res = B.backtest(ret.rename("y_pred"), ret, B.LongShort())  # pred[t] = r[t]: already past
    assert abs(res.summary["gross"]["sharpe"]) < 1
    sign = B.backtest(ret.rename("y_pred"), ret, B.SignThreshold())
    assert abs(sign.summary["gross"]["sharpe"]) < 1


# ----------------------------------------------------------------------------- strategy rules


def test_top_k_drop_turnover_bound_and_full_book():
    ret = iid_panel(2, n_ts=300, n_sym=30)
    pred = pd.Series(np.random.default_rng(3).normal(size=len(ret)), ret.index)
    k, n_drop = 8, 2
    res = B.backtest(pred, ret, B.TopK(k=k, n_drop=n_drop))
    turnover = res.returns.turnover.to_numpy()
    assert turnover[0] == pytest.approx(1.0)  # initial entry
    assert (turnover[1:] <= 2 * n_drop / k + 1e-12).all()
    assert (turnover[1:] > 0).any()
    assert ((res.positions > 0).sum(axis=1) == k).all()
    assert np.allclose(res.positions.sum(axis=1), 1.0)


def test_top_k_without_drop_holds_the_current_top_k():
    pred, ret = ragged(4)
    w = B.TopK(k=2).weights(pred.unstack("symbol"))
    best = pred.unstack("symbol").rank(axis=1, ascending=False, method="first") <= 2
    assert ((w > 0) == best).all().all()


def test_long_short_legs_and_ties_do_not_depend_on_symbol_order():
    s = np.array(
        [
            [1.0, 1.0, 1.0, 0.0, np.nan, -1.0],  # tie at the long edge
            [np.nan] * 5 + [2.0],
        ]
    )  # one valid prediction -> flat
    w = B.LongShort(quantile=0.25).weights(s)
    assert w[0].sum() == pytest.approx(0.0) and np.abs(w[0]).sum() == pytest.approx(1.0)
    assert np.allclose(w[0, :3], 0.5 / 3) and w[0, 5] == pytest.approx(-0.5)
    assert (w[1] == 0).all()
    flipped = B.LongShort(quantile=0.25).weights(s[:, ::-1])[:, ::-1]
    np.testing.assert_allclose(flipped, w)
    frame = pd.DataFrame(s, columns=list("abcdef"))
    assert list(B.LongShort().weights(frame).columns) == list("abcdef")


def test_rebalance_every_5_changes_weights_only_on_rebalance_bars():
    ret = iid_panel(5, n_ts=103, n_sym=10)
    pred = pd.Series(np.random.default_rng(6).normal(size=len(ret)), ret.index)
    res = B.backtest(pred, ret, B.LongShort(), rebalance_every=5, costs_bps=10)
    changed = np.flatnonzero(res.positions.diff().abs().sum(axis=1).to_numpy()[1:] > 0) + 1
    assert len(changed) > 10 and (changed % 5 == 0).all()
    traded = np.flatnonzero(res.returns.turnover.to_numpy() > 0)
    assert (traded % 5 == 0).all() and (res.returns.cost.to_numpy()[traded] > 0).all()


def test_delay_shifts_positions_by_whole_bars():
    pred, ret = ragged(7)
    one = B.backtest(pred, ret, B.TopK(k=3), delay=1).positions
    three = B.backtest(pred, ret, B.TopK(k=3), delay=3).positions
    grid = sorted(set(ret.index.get_level_values("timestamp")))
    shift = {grid[i]: grid[i + 2] for i in range(len(grid) - 2)}
    common = [t for t in one.index if shift.get(t) in three.index]
    np.testing.assert_array_equal(
        one.loc[common].to_numpy(), three.loc[[shift[t] for t in common]].to_numpy()
    )
    # with delay 1 the decision at the last prediction is held over the next bar, then it ends
    last_pred = pred.dropna().index.get_level_values("timestamp").max()
    assert one.index[-1] == grid[grid.index(last_pred) + 1]


# ----------------------------------------------------------------------------- result and summary


def test_summary_keys_finite_and_drawdown():
    pred, ret = ragged(8, n_ts=200)
    res = B.backtest(pred, ret, B.LongShort(), costs_bps=5.0, capital=100.0)
    for kind in ("gross", "net"):
        summ = res.summary[kind]
        assert set(summ) == set(B.SUMMARY_KEYS)
        assert all(np.isfinite(v) for v in summ.values()), summ
        assert summ["max_drawdown"] <= 0
        assert summ["max_drawdown"] == pytest.approx(res.drawdown(kind).min())
        assert 0 <= summ["hit_rate"] <= 1 and summ["n_bars"] == len(res.returns)
    net = res.returns.net
    assert res.summary["net"]["sharpe"] == pytest.approx(net.mean() / net.std() * math.sqrt(252))
    growth = (1 + net).prod()
    assert res.summary["net"]["ann_return"] == pytest.approx(growth ** (252 / len(net)) - 1)
    assert res.summary["net"]["cost_drag"] == pytest.approx(
        res.summary["gross"]["ann_return"] - res.summary["net"]["ann_return"]
    )
    assert res.equity().iloc[-1] == pytest.approx(100.0 * growth)
    assert (res.drawdown() <= 0).all()


@pytest.mark.parametrize(
    "freq,expected",
    [
        ("B", 252.0),
        ("D", 365.0),
        ("15min", 365 * 24 * 4),
        ("W", 52.18),
        ("MS", 12.0),
    ],
)
def test_infer_periods_per_year(freq, expected):
    ts = pd.date_range("2023-01-02", periods=2000, freq=freq)  # 15 min x 2000: spans weekends
    assert B.infer_periods_per_year(ts) == pytest.approx(expected, rel=1e-3)


def test_infer_periods_per_year_session_bars():
    days = pd.bdate_range("2023-01-02", periods=20)
    ts = pd.DatetimeIndex(
        [
            d + pd.Timedelta(hours=9.5) + pd.Timedelta(minutes=30 * i)
            for d in days
            for i in range(13)
        ]
    )
    assert B.infer_periods_per_year(ts) == 252 * 13


def test_bar_returns_uses_each_symbols_own_previous_bar():
    idx = pd.MultiIndex.from_tuples(
        [
            (pd.Timestamp("2024-01-03"), "A"),
            (pd.Timestamp("2024-01-01"), "A"),
            (pd.Timestamp("2024-01-02"), "B"),
            (pd.Timestamp("2024-01-03"), "B"),
            (pd.Timestamp("2024-01-05"), "A"),
        ],
        names=["timestamp", "symbol"],
    )
    panel = pd.DataFrame({"close": [11.0, 10.0, 50.0, 40.0, 22.0]}, index=idx)
    r = B.bar_returns(panel)
    assert r.index.is_monotonic_increasing and r.name == "return"
    assert math.isnan(r[(pd.Timestamp("2024-01-01"), "A")])
    assert r[(pd.Timestamp("2024-01-03"), "A")] == pytest.approx(0.1)
    assert r[(pd.Timestamp("2024-01-05"), "A")] == pytest.approx(1.0)
    assert r[(pd.Timestamp("2024-01-03"), "B")] == pytest.approx(-0.2)
    with pytest.raises(DataError, match="open"):
        B.bar_returns(panel, price="open")


def test_predictions_frame_input():
    pred, ret = ragged(9)
    frame = pred.reset_index().assign(model="m", split="test", fold=0, y_true=0.0)
    a = B.backtest(frame, ret, "top_k").returns
    pd.testing.assert_frame_equal(a, B.backtest(pred, ret, B.TopK()).returns)
    with pytest.raises(DataError, match="model"):
        B.backtest(pd.concat([frame, frame.assign(model="n")]), ret, "top_k")
    with pytest.raises(DataError, match="duplicated"):
        B.backtest(pd.concat([pred, pred]), ret, "top_k")


# ----------------------------------------------------------------------------- config


def test_config_errors():
    pred, ret = ragged(10)
    with pytest.raises(ConfigError, match="delay"):
        B.backtest(pred, ret, B.LongShort(), delay=0)
    with pytest.raises(ConfigError, match="unknown strategy"):
        B.backtest(pred, ret, "momentum")
    with pytest.raises(ConfigError, match="long_short"):
        B.from_spec({"strategy": "momentum"})
    with pytest.raises(ConfigError, match="unknown key 'topk'"):
        B.from_spec({"strategy": "top_k", "topk": 5})
    with pytest.raises(ConfigError, match="do not apply"):
        B.from_spec({"strategy": "long_short", "k": 5})
    with pytest.raises(ConfigError, match="delay"):
        B.from_spec({"delay": 0})
    with pytest.raises(ConfigError):
        B.TopK(k=3, n_drop=4)
    with pytest.raises(ConfigError):
        B.LongShort(quantile=0.6)
    with pytest.raises(ConfigError, match="kind"):
        B.backtest(pred, ret, "sign").equity("gros")


def test_from_spec_round_trip():
    strategy, kw = B.from_spec({"strategy": "top_k", "k": 3, "n_drop": 1, "rebalance_every": 2})
    assert strategy == B.TopK(k=3, n_drop=1)
    assert kw == {
        "costs_bps": 5.0,
        "min_cost": 0.0,
        "delay": 1,
        "rebalance_every": 2,
        "periods_per_year": None,
    }
    pred, ret = ragged(11)
    res = B.backtest(pred, ret, strategy, **kw)
    assert res.summary["net"]["cost_drag"] > 0


def test_spec_settings_keep_only_what_the_strategy_uses():
    ls = B.spec_settings(B.BacktestSpec().model_dump())
    assert ls == {
        "strategy": "long_short",
        "quantile": 0.2,
        "weighting": "equal",
        "gross": 1.0,
        "costs_bps": 5.0,
        "min_cost": 0.0,
        "delay": 1,
        "rebalance_every": 1,
    }
    tk = B.spec_settings(B.BacktestSpec(strategy="top_k", k=3).model_dump())
    assert "k" in tk and not {"quantile", "threshold", "n_drop", "periods_per_year"} & set(tk)


# ----------------------------------------------------------------------------- degenerate books


def _four_symbols(seed: int = 0):
    """Four symbols, 120 bars, Gaussian forecasts: too few names for the default books."""
    ret = iid_panel(seed, n_ts=120, n_sym=4)
    pred = pd.Series(np.random.default_rng(seed + 1).normal(size=len(ret)), ret.index)
    return pred, ret


@pytest.mark.parametrize(
    "strategy,transform,needle",
    [
        (B.TopK(k=10), None, "top_k with k=10 >= the 4 symbols"),
        (B.TopK(k=4, n_drop=1), None, "holds every symbol"),
        (B.LongShort(quantile=0.2), None, "0.8 (< 1) symbol per leg"),
        (B.LongShort(), "one_symbol", "needs >= 2 symbols"),
        (B.SignThreshold(), "rank", "above 0, so the book is long every symbol at every bar"),
        (B.SignThreshold(threshold=0.1), "negative", "below -0.1, so the book is short every"),
    ],
)
def test_degenerate_book_warns_and_records_it(caplog, strategy, transform, needle):
    pred, ret = _four_symbols()
    if transform == "one_symbol":
        pred = pred[pred.index.get_level_values("symbol") == "S00"]
    elif transform == "rank":  # a cross-sectional rank in [0, 1] never changes sign
        pred = pred.groupby(level="timestamp").rank(pct=True)
    elif transform == "negative":
        pred = -pred.abs() - 0.2
    with caplog.at_level("WARNING", logger="alphaforge.backtest"):
        res = B.backtest(pred, ret, strategy)
    (text,) = res.summary["warnings"]
    assert needle in text
    assert [r.levelname for r in caplog.records] == ["WARNING"] and needle in caplog.text
    assert B.lag_test(pred, ret, strategy)["lagged"]["warnings"] == [text]


def test_top_k_over_every_symbol_gives_every_model_the_same_sharpe():
    pred, ret = _four_symbols()
    flat = pred * 0.0  # the zero baseline
    got = [B.backtest(p, ret, B.TopK(k=10)).summary for p in (pred, -pred, flat)]
    assert got[0]["net"]["sharpe"] == pytest.approx(got[1]["net"]["sharpe"])
    assert got[0]["net"]["sharpe"] == pytest.approx(got[2]["net"]["sharpe"])
    assert all(g["warnings"] for g in got)


@pytest.mark.parametrize(
    "strategy,n_sym",
    [
        (B.TopK(k=3), 4),
        (B.LongShort(quantile=0.25), 4),
        (B.SignThreshold(), 4),
        (B.LongShort(), 10),
    ],
)
def test_a_book_that_follows_the_forecasts_does_not_warn(caplog, strategy, n_sym):
    ret = iid_panel(0, n_ts=120, n_sym=n_sym)
    pred = pd.Series(np.random.default_rng(1).normal(size=len(ret)), ret.index)
    with caplog.at_level("WARNING", logger="alphaforge.backtest"):
        res = B.backtest(pred, ret, strategy)
    assert res.summary["warnings"] == [] and not caplog.records


def test_a_flat_book_is_not_a_warning_but_has_no_hit_rate(caplog):
    pred, ret = _four_symbols()
    with caplog.at_level("WARNING", logger="alphaforge.backtest"):
        res = B.backtest(pred * 0.0, ret, B.LongShort(quantile=0.25))
    assert res.summary["warnings"] == [] and not caplog.records
    assert math.isnan(res.summary["net"]["hit_rate"]) and res.summary["net"]["max_drawdown"] == 0


def test_a_warning_shared_by_many_models_is_logged_once(caplog):
    pred, ret = _four_symbols()
    with caplog.at_level("WARNING", logger="alphaforge.backtest"), B.warnings_once():
        results = [B.backtest(pred * k, ret, B.TopK(k=4, n_drop=1)) for k in (1.0, 2.0, -1.0)]
    assert all(r.summary["warnings"] for r in results)  # each summary still records it
    assert len(caplog.records) == 1
