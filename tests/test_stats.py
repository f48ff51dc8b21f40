"""Significance statistics: hand-computed values, published worked examples and null calibration.

Calibration: on 1,000 simulated zero-mean series of per-date scores whose labels overlap (the
sum of ``h`` i.i.d. shocks, an MA(h-1), as ``h``-bar forward labels produce), the tests must
reject the zero mean in 3-7% of them at the 5% level.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy import stats as sps

from alphaforge import stats as S

N_SERIES, N_DATES = 1000, 500  # calibration: series and dates per series


def overlapping(rng: np.random.Generator, n_series: int, n: int, h: int) -> np.ndarray:
    """(n_series, n) null per-date scores: moving sums of ``h`` i.i.d. shocks, unit variance."""
    c = np.cumsum(rng.standard_normal((n_series, n + h)), axis=1)
    return (c[:, h:] - c[:, :-h]) / math.sqrt(h)


# ----------------------------------------------------------------------------- Newey-West


def test_newey_west_hand_computed():
    # x = [1, 3, 2, 6]: mean 3, e = [-2, 0, -1, 3], n = 4
    # g0 = (4 + 0 + 1 + 9) / 4 = 3.5, g1 = (0*-2 + -1*0 + 3*-1) / 4 = -0.75, g2 = (-1*-2 + 3*0) / 4
    # = 0.5. lag 1: lrv = 3.5 + 2 * 1/2 * -0.75 = 2.75; lag 2: 3.5 + 2 (2/3 -0.75 + 1/3 0.5)
    x = [1.0, 3.0, 2.0, 6.0]
    mean, se, t = S.newey_west_tstat(x, 1)
    assert (mean, se, t) == pytest.approx((3.0, math.sqrt(2.75 / 4), 3.0 / math.sqrt(2.75 / 4)))
    mean, se, t = S.newey_west_tstat(x, 2)
    assert se == pytest.approx(math.sqrt((3.5 - 2 / 3) / 4))
    # lag 0 is the i.i.d. standard error with a population variance; NaNs are dropped
    assert S.newey_west_tstat([1.0, np.nan, 3.0, 2.0, 6.0], 0)[1] == pytest.approx(np.std(x) / 2)


def test_newey_west_matches_a_naive_loop():
    x = np.random.default_rng(3).standard_normal(200).cumsum() * 0.01 + 0.02
    lag = 7
    e = x - x.mean()
    lrv = sum(e[t] * e[t] for t in range(200)) / 200
    for j in range(1, lag + 1):
        lrv += 2 * (1 - j / (lag + 1)) * sum(e[t] * e[t - j] for t in range(j, 200)) / 200
    mean, se, t = S.newey_west_tstat(pd.Series(x), lag)
    assert se == pytest.approx(math.sqrt(lrv / 200), rel=1e-12)
    assert t == pytest.approx(x.mean() / math.sqrt(lrv / 200), rel=1e-12)


def test_newey_west_degenerate_inputs():
    assert all(math.isnan(v) for v in S.newey_west_tstat([1.0], 3))
    assert math.isnan(S.newey_west_tstat([2.0] * 10, 2)[2])  # constant: no t
    with pytest.raises(ValueError, match="lag"):
        S.newey_west_tstat([1.0, 2.0], -1)


def test_hac_lag_grows_with_horizon_and_persistence():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(500)
    assert S.hac_lag(noise, 1) <= 4
    assert S.hac_lag(noise, 10) >= 10  # never below the label horizon
    ar = np.zeros(500)
    for t in range(1, 500):
        ar[t] = 0.9 * ar[t - 1] + noise[t]
    assert S.hac_lag(ar, 1) > 20
    assert S.hac_lag(ar[:40], 50) == 10  # capped at n // 4


def test_fixed_b_critical_value():
    assert S.fixed_b_critical_value(0.0) == pytest.approx(1.96, abs=1e-4)
    b = 0.1  # Kiefer & Vogelsang (2005) Bartlett 97.5% quantile polynomial
    assert S.fixed_b_critical_value(b) == pytest.approx(
        1.96 + 0.29694 + 0.00416 - 0.0005324, rel=1e-4
    )
    assert S.fixed_b_critical_value(0.05, alpha=0.10) < S.fixed_b_critical_value(0.05)


# ----------------------------------------------------------------------------- calibration


def test_null_calibration_on_overlapping_labels():
    """5-bar labels: the tests reject a true zero mean in 3-7% of 1,000 null series."""
    h = 5
    x = overlapping(np.random.default_rng(2024), N_SERIES, N_DATES, h)
    res = [S.mean_test(row, horizon=h, seed=i) for i, row in enumerate(x)]
    t_rate = np.mean([abs(r["t"]) > r["crit"] for r in res])
    ci_rate = np.mean([r["ci"][0] > 0 or r["ci"][1] < 0 for r in res])
    both = np.mean([r["significant"] for r in res])
    assert 0.03 <= t_rate <= 0.07, t_rate
    assert 0.03 <= ci_rate <= 0.07, ci_rate
    assert 0.02 <= both <= t_rate
    # the naive test (lag = horizon, normal 1.96) over-rejects on the same series
    naive = np.mean([abs(S.newey_west_tstat(row, h)[2]) > 1.96 for row in x])
    assert naive > 0.08, naive


def test_null_calibration_on_persistent_scores():
    """AR(1) per-date scores (rho 0.5) with a 1-bar label: the t-test stays within 3-7%."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((N_SERIES, N_DATES))
    x = np.empty_like(z)
    x[:, 0] = z[:, 0] / math.sqrt(1 - 0.25)
    for t in range(1, N_DATES):  # vectorised over series
        x[:, t] = 0.5 * x[:, t - 1] + z[:, t]
    rate = np.mean(
        [
            abs((r := S.newey_west_tstat(row, lag := S.hac_lag(row, 1)))[2])
            > S.fixed_b_critical_value((lag + 1) / N_DATES)
            for row in x
        ]
    )
    assert 0.03 <= rate <= 0.07, rate
    assert r[0] == pytest.approx(x[-1].mean())


# ----------------------------------------------------------------------------- bootstrap


def test_block_bootstrap_is_seeded_and_covers_the_estimate():
    x = np.random.default_rng(1).standard_normal(300) * 0.05 + 0.01
    lo, hi = S.block_bootstrap_ci(x, block=10, seed=3)
    assert (lo, hi) == S.block_bootstrap_ci(x, block=10, seed=3)
    assert (lo, hi) != S.block_bootstrap_ci(x, block=10, seed=4)
    assert lo < x.mean() < hi
    # i.i.d. values: on average as wide as the normal interval of the mean (t-like tails: a bit
    # wider with 30 blocks)
    x = np.random.default_rng(2).standard_normal((100, 300))
    ratio = [
        np.subtract(*S.block_bootstrap_ci(row, block=10, seed=i)[::-1]) for i, row in enumerate(x)
    ]
    normal = 2 * 1.96 * x.std(axis=1) / math.sqrt(300)
    assert np.mean(ratio / normal) == pytest.approx(1.02, abs=0.05)


def test_block_bootstrap_edge_cases():
    assert all(math.isnan(v) for v in S.block_bootstrap_ci(np.arange(5.0)))
    assert S.block_bootstrap_ci(np.full(50, 0.3)) == pytest.approx((0.3, 0.3))
    assert all(math.isnan(v) for v in S.block_bootstrap_ci(np.full(50, 0.3), "sharpe"))
    with pytest.raises(ValueError, match="stat"):
        S.block_bootstrap_ci(np.arange(50.0), "median")  # type: ignore[arg-type]


def test_sharpe_ratio_and_interval():
    r = pd.Series(np.random.default_rng(5).normal(0.001, 0.01, 750))
    sr = S.sharpe_ratio(r, 252)
    assert sr == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    lo, hi = S.sharpe_ci(r, 252, seed=0)
    assert lo < sr < hi
    # i.i.d. returns: about the Mertens (2002) normal interval, +-1.96 sqrt((1 + SR^2/2) / n)
    sr_p = sr / math.sqrt(252)
    half = 1.96 * math.sqrt((1 + sr_p**2 / 2) / 750) * math.sqrt(252)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.2)
    assert math.isnan(S.sharpe_ratio([0.01]))


# ----------------------------------------------------------------------------- PSR / DSR


def test_deflated_sharpe_reproduces_the_published_example():
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example.

    Annualised SR 2.5 over 5 years of daily returns (T = 1250, 250 a year), skewness -3,
    kurtosis 10, found after N = 100 independent trials whose annualised Sharpe ratios have
    variance 1/2. The paper prints SR0 = 0.1132 (per period) and DSR = 0.9004; had N been 46,
    DSR = 0.9505; with normal returns it takes N = 88 to reach the same 0.9505.
    """
    sr, var = 2.5 / math.sqrt(250), 0.5 / 250  # per period, as the paper computes
    assert round(S.expected_max_sharpe(100, var), 4) == 0.1132
    assert round(S.deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 100, var), 4) == 0.9004
    assert round(S.deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 46, var), 4) == 0.9505
    assert round(S.deflated_sharpe_ratio(sr, 1250, 0.0, 3.0, 88, var), 4) == 0.9505
    # units matter: the annualised ratio or excess kurtosis miss the published value
    assert round(S.deflated_sharpe_ratio(sr, 1250, -3.0, 7.0, 100, var), 4) != 0.9004


def test_expected_max_sharpe():
    assert S.expected_max_sharpe(1, 0.3) == 0.0
    # close to the exact expected maximum of 100 standard normals (the paper's approximation)
    exact, _ = integrate.quad(lambda x: x * 100 * sps.norm.pdf(x) * sps.norm.cdf(x) ** 99, -10, 10)
    assert S.expected_max_sharpe(100, 1.0) == pytest.approx(exact, rel=0.02)
    assert S.expected_max_sharpe(1000, 1.0) > S.expected_max_sharpe(100, 1.0)


def test_probabilistic_sharpe_ratio():
    # normal returns, SR 0.1 per period over 101 returns: Phi(0.1 * 10 / sqrt(1 + 0.01 / 2))
    assert S.probabilistic_sharpe_ratio(0.1, 0.0, 101) == pytest.approx(
        sps.norm.cdf(1 / math.sqrt(1.005)), rel=1e-12
    )
    assert round(S.probabilistic_sharpe_ratio(0.1, 0.0, 101), 4) == 0.8407
    assert S.probabilistic_sharpe_ratio(0.2, 0.2, 50, -1.0, 6.0) == pytest.approx(0.5)
    # the minimum track record length of Bailey & López de Prado (2012): monthly SR 2/sqrt(12)
    # against 1/sqrt(12), skew -0.72, kurtosis 5.78 needs 59.895 months for PSR = 0.95
    psr = S.probabilistic_sharpe_ratio(2 / math.sqrt(12), 1 / math.sqrt(12), 59.895, -0.72, 5.78)
    assert psr == pytest.approx(0.95, abs=1e-5)
    assert math.isnan(S.probabilistic_sharpe_ratio(0.5, 0.0, 100, skew=5.0))  # variance < 0
    assert math.isnan(S.probabilistic_sharpe_ratio(0.5, 0.0, 1))


# ----------------------------------------------------------------------------- summaries


def _dated(values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=pd.bdate_range("2020-01-01", periods=len(values)))


def test_significance_detects_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(11)
    noise = overlapping(rng, 1, 400, 5)[0] * 0.1
    net = _dated(rng.normal(0.0008, 0.01, 400))
    strong = S.significance(_dated(noise + 0.05), net, horizon=5, n_trials=3)
    assert strong["significant"] and strong["rank_ic_t"] > strong["rank_ic_crit"]
    assert strong["rank_ic_ci"][0] > 0 and strong["n_dates"] == 400
    assert strong["sharpe"] == pytest.approx(S.sharpe_ratio(net, 252))
    assert strong["sharpe_ci"][0] < strong["sharpe"] < strong["sharpe_ci"][1]
    assert 0 <= strong["dsr"] <= strong["psr"] <= 1 and strong["sr0"] > 0
    json.dumps(strong, allow_nan=False)  # JSON-ready: no NaN, numpy scalars converted
    null = S.significance(_dated(noise), None, horizon=5, n_trials=1)
    assert not null["significant"] and "sharpe" not in null


def test_significance_more_trials_deflate_more():
    net = _dated(np.random.default_rng(2).normal(0.001, 0.01, 500))
    ic = _dated(np.random.default_rng(3).normal(0.02, 0.1, 500))
    dsr = [S.significance(ic, net, horizon=1, n_trials=n)["dsr"] for n in (1, 10, 100)]
    assert dsr[0] > dsr[1] > dsr[2]
    one = S.significance(ic, net, horizon=1, n_trials=1)
    assert one["dsr"] == one["psr"] and one["sr0"] == 0.0
    given = S.significance(ic, net, horizon=1, n_trials=10, sr_variance=1e-6)
    assert given["dsr"] > dsr[1]  # trials that barely differ: a low bar


def test_significance_of_an_empty_series_is_not_significant():
    out = S.significance(pd.Series([np.nan] * 5), None, horizon=1, n_trials=2)
    assert out["n_dates"] == 0 and out["mean_rank_ic"] is None and not out["significant"]
    few = S.significance(pd.Series([0.1] * 20), _dated(np.array([0.01])), horizon=1, n_trials=2)
    assert few["n_bars"] == 1 and few["sharpe"] is None and few["dsr"] is None
    with pytest.raises(ValueError, match="n_trials"):
        S.significance(pd.Series([0.1] * 20), None, horizon=1, n_trials=0)


def test_run_significance_over_a_predictions_frame():
    rng = np.random.default_rng(5)
    ts = pd.bdate_range("2021-01-01", periods=60)
    rows = []
    for model, strength in (("good", 1.0), ("noise", 0.0)):
        for split in ("valid", "test"):
            y = rng.normal(0, 0.02, (60, 10))
            p = strength * y + rng.normal(0, 0.02, y.shape)
            rows.append(
                pd.DataFrame(
                    {
                        "timestamp": np.repeat(ts, 10),
                        "symbol": np.tile([f"S{i}" for i in range(10)], 60),
                        "model": model,
                        "split": split,
                        "y_true": y.ravel(),
                        "y_pred": p.ravel(),
                    }
                )
            )
    preds = pd.concat(rows, ignore_index=True)
    bt = pd.DataFrame(
        {
            "model": "good",
            "variant": np.repeat(["base", "lagged"], 60),
            "timestamp": np.tile(ts, 2),
            "net": np.r_[rng.normal(0.002, 0.01, 60), np.zeros(60)],
        }
    )
    out = S.run_significance(preds, bt, horizon=1, n_trials=2)
    assert set(out) == {"good", "noise"}
    assert out["good"]["significant"] and out["good"]["n_dates"] == 60
    assert "sharpe" in out["good"] and "sharpe" not in out["noise"]
    assert not out["noise"]["significant"]
    per_model = S.run_significance(preds, bt, horizon=1, n_trials={"good": 20})
    assert per_model["good"]["n_trials"] == 20 and per_model["noise"]["n_trials"] == 1
    assert per_model["good"]["dsr"] < out["good"]["dsr"]
