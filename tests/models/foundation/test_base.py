"""Shared adapter machinery: counter-based uniforms, calendar, checkpoint lookup, contexts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from alphaforge.errors import ConfigError, DataError
from alphaforge.labels import LabelSpec
from alphaforge.models.foundation.base import (
    calendar,
    find_weights_dir,
    future_stamps,
    keyed_uniform,
    row_keys,
)
from alphaforge.models.foundation.kronos import KronosAdapter


def _tiny(**params) -> KronosAdapter:
    return KronosAdapter.from_params({**KronosAdapter.test_params(), **params}, random_state=0)


# ------------------------------------------------------------------ randomness
def test_keyed_uniforms_are_uniform_and_keyed_per_row() -> None:
    keys = torch.from_numpy(row_keys(7, ["A", "B", "C"], [1, 2, 3]))
    u = keyed_uniform(keys, 16, 3, 2)
    assert u.shape == (3, 16, 3, 2) and u.dtype == torch.float32
    assert float(u.min()) > 0 and float(u.max()) < 1
    # a row's uniforms do not depend on the other rows, and a prefix of samples is a prefix
    torch.testing.assert_close(keyed_uniform(keys[1:2], 16, 3, 2), u[1:2], rtol=0, atol=0)
    torch.testing.assert_close(keyed_uniform(keys, 4, 3, 2), u[:, :4], rtol=0, atol=0)
    big = keyed_uniform(torch.from_numpy(row_keys(0, ["X"] * 50, np.arange(50))), 200, 1, 1)
    assert stats.kstest(big.flatten().numpy(), "uniform").pvalue > 1e-3


def test_row_keys_are_stable_and_distinct() -> None:
    a = row_keys(1, ["AAPL", "MSFT", "AAPL"], [10, 10, 11])
    assert len(set(a.tolist())) == 3
    np.testing.assert_array_equal(a, row_keys(1, ["AAPL", "MSFT", "AAPL"], [10, 10, 11]))
    assert not np.array_equal(a, row_keys(2, ["AAPL", "MSFT", "AAPL"], [10, 10, 11]))


# ------------------------------------------------------------------ calendar
def test_calendar_matches_pandas() -> None:
    ts = pd.DatetimeIndex(["2024-02-29 13:45", "2023-12-31 00:00", "1999-07-04 23:59"])
    got = calendar(ts.as_unit("ns").asi8)
    want = np.stack([ts.minute, ts.hour, ts.day_of_week, ts.day, ts.month], axis=1)
    np.testing.assert_array_equal(got, want)


def test_future_stamps_step_business_days_and_intraday_spacing() -> None:
    last = pd.DatetimeIndex(["2024-03-08", "2024-03-09", "2024-03-08 10:30"]).as_unit("ns").asi8
    prev = pd.DatetimeIndex(["2024-03-07", "2024-03-08", "2024-03-08 10:15"]).as_unit("ns").asi8
    out = pd.DatetimeIndex(future_stamps(last, prev, np.ones(3, bool), 2).ravel())
    assert list(out.strftime("%Y-%m-%d %H:%M")) == [
        "2024-03-11 00:00",
        "2024-03-12 00:00",  # Friday -> Monday, Tuesday
        "2024-03-10 00:00",
        "2024-03-11 00:00",  # from a Saturday: calendar days
        "2024-03-08 10:45",
        "2024-03-08 11:00",
    ]  # intraday: the last spacing


# ------------------------------------------------------------------ checkpoints on disk
def _checkpoint(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"x")
    return folder


def test_find_weights_dir_direct_named_and_hf_cache(tmp_path: Path) -> None:
    files = ("config.json", "model.safetensors")
    direct = _checkpoint(tmp_path / "direct", {"a": 1})
    assert find_weights_dir(direct, files) == direct
    named = _checkpoint(tmp_path / "root" / "Kronos-small", {"a": 1})
    assert find_weights_dir(tmp_path / "root", files, ("Kronos-small",)) == named
    repo = tmp_path / "hub" / "models--NeoQuasar--Kronos-small"
    old = _checkpoint(repo / "snapshots" / "aaa", {"rev": "old"})
    new = _checkpoint(repo / "snapshots" / "bbb", {"rev": "new"})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("aaa")
    assert find_weights_dir(tmp_path / "hub", files, ("Kronos-small",)) == old  # refs/main
    assert find_weights_dir(repo, files) == old
    assert new.is_dir()
    picky = find_weights_dir(
        tmp_path / "hub",
        files,
        ("Kronos-small",),
        accept=lambda p: "new" in (p / "config.json").read_text(),
    )
    assert picky == new


def test_missing_checkpoint_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"expected files \['config.json', 'model.safetensors'\]"):
        KronosAdapter.from_path(tmp_path)


# ------------------------------------------------------------------ the estimator
def test_history_kept_by_fit_gives_short_windows_their_context(panel) -> None:
    X, y = panel
    stamps = X.index.get_level_values("timestamp")
    cut = stamps.unique()[60]
    fit, late = stamps <= cut, stamps > cut
    model = _tiny().fit(X[fit], y[fit])
    alone = model.predict(X[late])  # context: stored history + the late rows
    full = model.predict(X)[late]  # context: every row of X
    np.testing.assert_allclose(alone.to_numpy(), full.to_numpy(), rtol=1e-5, atol=1e-7)
    bare = _tiny(context_from_fit=False).fit(X[fit], y[fit]).predict(X[late])
    assert not np.allclose(bare.to_numpy(), full.to_numpy())


def test_sample_bank_prefix_equals_fewer_samples(panel) -> None:
    X, y = panel
    model = _tiny().fit(X, y)
    bank = model.sample_targets(X, num_samples=16)
    assert bank.shape == (len(X), 16)
    np.testing.assert_allclose(model.sample_targets(X, num_samples=4), bank[:, :4], atol=1e-6)


def test_targets_from_paths() -> None:
    model = _tiny()
    paths = np.array([[[1.1, 0.99, 1.21]]])  # one row, one sample, H = 3: gross returns
    for target, want in (
        ("return", 0.21),
        ("log_return", np.log(1.21)),
        ("volatility", np.sqrt(np.log(1.1) ** 2 + np.log(0.9) ** 2 + np.log(1.21 / 0.99) ** 2)),
    ):
        model.target_ = target
        assert model._to_target(paths)[0, 0] == pytest.approx(want)


def test_label_spec_sets_horizon_and_target(panel) -> None:
    X, y = panel
    model = _tiny().fit(X, y, label=LabelSpec("forward_log_return", 3))
    assert (model.horizon_, model.target_) == (3, "log_return")
    assert model.sample(np.ones((2, 10)), num_samples=5).shape == (2, 5, 3)


def test_price_column_and_errors(panel) -> None:
    X, y = panel
    Xp = X.assign(close=np.exp(X["ret_1"].fillna(0).groupby(level="symbol").cumsum()))
    by_price = _tiny(price_column="close").fit(Xp, y).predict(Xp)
    by_return = _tiny(return_kind="log").fit(Xp, y).predict(Xp)
    np.testing.assert_allclose(by_price.to_numpy(), by_return.to_numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(DataError, match="context column"):
        _tiny(return_column="nope").fit(X, y)
    with pytest.raises(ConfigError, match="unknown aggregation"):
        KronosAdapter.from_params({"aggregation": "avg"})
    with pytest.raises(ConfigError, match="num_samples"):
        KronosAdapter.from_params({"num_samples": 0})


def test_sample_before_fit_with_left_padding() -> None:
    model = _tiny(num_samples=6)
    prices = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, (2, 32)), 1))
    out = model.sample(prices, horizon=2)
    assert out.shape == (2, 6, 2) and np.isfinite(out).all()
    short = prices.copy()
    short[1, :10] = np.nan  # a shorter series, padded on the left
    out_short = model.sample(short, horizon=2)
    np.testing.assert_allclose(out_short[0], out[0])  # the other row is untouched
    np.testing.assert_allclose(
        out_short[1],
        model.sample(short[1:], horizon=2, keys=model_keys(model, 2)[1:])[0],
        rtol=1e-5,
    )


def model_keys(model: KronosAdapter, n: int) -> np.ndarray:
    return row_keys(0, np.zeros(n, dtype=np.int64), np.arange(n))
