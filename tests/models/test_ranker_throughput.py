"""Ranker throughput pieces: cross-sections padded to a fixed width give the unpadded results,
fused lag heads equal the per-lag loop, and the MFU formula counts the network's FLOPs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from alphaforge.models.ranker import (
    RankerNet,
    RankerNetConfig,
    RankingTransformerForecaster,
    horizon_targets,
    ranking_loss,
)
from alphaforge.models.windows import CrossSectionSource, SequenceLayout, Standardizer
from alphaforge.testing import tiny_problem


def _source(pad_to: int) -> CrossSectionSource:
    X, y = tiny_problem(n_symbols=5, n_bars=40, n_features=3, seed=3)
    X = X.iloc[np.arange(len(X)) % 7 != 3]  # uneven cross-sections: 4 or 5 assets per date
    y = y.loc[X.index]
    layout = SequenceLayout.build(X, Standardizer.fit(X))
    rows = np.arange(len(X))
    dates = np.asarray(X.index.get_level_values("timestamp"))
    target = horizon_targets(y, 2, 3)
    return CrossSectionSource(layout, 6, rows=rows, dates=dates, y=target, pad_to=pad_to)


def test_cross_sections_pad_to_a_multiple() -> None:
    plain, padded, wide = _source(0), _source(8), _source(3)
    assert (plain.n_assets, padded.n_assets, wide.n_assets) == (5, 8, 6)
    idx = torch.arange(len(plain))
    a, b = plain.batch(idx), padded.batch(idx)
    assert b["x"].shape[:2] == (len(plain), 8) and b["mask"].shape == (len(plain), 8)
    assert torch.equal(b["mask"][:, :5], a["mask"]) and not b["mask"][:, 5:].any()
    assert torch.equal(b["x"][:, :5], a["x"])
    torch.testing.assert_close(b["y"][:, :5], a["y"], equal_nan=True)
    assert torch.isnan(b["y"][:, 5:]).all()  # padded slots: no target


def test_ranking_loss_ignores_padding_columns() -> None:
    plain, padded = _source(0), _source(16)
    idx = torch.arange(6)
    a, b = plain.batch(idx), padded.batch(idx)
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(*a["y"].shape, generator=g, requires_grad=True)  # (B, 5, L, H)
    wide = torch.cat([pred, torch.randn(6, 11, 2, 3, generator=g)], dim=1)  # junk in padding
    loss_a = ranking_loss(pred, a["y"], a["mask"])
    loss_b = ranking_loss(wide, b["y"], b["mask"])
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-6, atol=1e-7)
    (grad_a,) = torch.autograd.grad(loss_a, pred)
    (grad_b,) = torch.autograd.grad(loss_b, pred)
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-5, atol=1e-7)


def test_padded_ranker_predicts_like_the_unpadded_one() -> None:
    X, y = tiny_problem(n_symbols=6, n_bars=120, n_features=4, seed=5)
    stamps = X.index.get_level_values("timestamp")
    train = np.asarray(stamps <= stamps.unique()[80])
    # dropout off: padded windows would otherwise draw their own dropout masks
    params = {**RankingTransformerForecaster.test_params(), "dropout": 0.0, "max_epochs": 2}
    fits = [
        RankingTransformerForecaster.from_params({**params, "pad_assets": pad}, random_state=0).fit(
            X[train], y[train], valid=(X[~train], y[~train])
        )
        for pad in (0, 16)
    ]
    assert fits[1].config.pad_assets == 16
    np.testing.assert_allclose(
        fits[1].history_["train_loss"], fits[0].history_["train_loss"], rtol=1e-5
    )
    a, b = fits[0].predict(X), fits[1].predict(X)
    # the loss z-scores scores per date: it is blind to their offset (the heads' output bias),
    # along which AdamW turns rounding noise into steps, so scores agree up to a constant
    assert float((b - a).std()) < 1e-6
    z = lambda s: s.groupby(level="timestamp").transform(lambda v: (v - v.mean()) / v.std())  # noqa: E731
    np.testing.assert_allclose(z(b), z(a), atol=5e-4)


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_fused_heads_equal_the_per_lag_loop(pooling: str) -> None:
    torch.manual_seed(0)
    config = RankerNetConfig(
        n_features=5, n_gated=4, d_model=16, n_heads=2, n_layers=1, n_lags=3, horizons=4
    )
    net = RankerNet(dataclasses.replace(config, pooling=pooling)).eval()
    pooled = torch.randn(7, 3, 16)
    fused, loop = net.heads_fused(pooled), net.heads_loop(pooled)
    assert fused.shape == (7, 3, 4)
    torch.testing.assert_close(fused, loop, rtol=1e-5, atol=1e-6)
    (g_fused,) = torch.autograd.grad(fused.square().sum(), net.heads[1][0].weight)
    (g_loop,) = torch.autograd.grad(loop.square().sum(), net.heads[1][0].weight)
    torch.testing.assert_close(g_fused, g_loop, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_flops_per_window_matches_a_flop_counter(pooling: str) -> None:
    config = RankerNetConfig(
        n_features=9,
        n_gated=8,
        d_model=32,
        n_heads=4,
        n_layers=2,
        ff_mult=3,
        n_lags=3,
        horizons=5,
        pooling=pooling,
        attention_backend="math",  # plain matmuls, each one counted
    )
    net = RankerNet(config).eval()
    T, B = 12, 4
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.rand(B, T, 9))
    assert counter.get_total_flops() == pytest.approx(B * net.flops_per_window(T), rel=1e-9)


def test_flops_per_window_of_the_default_shape() -> None:
    net = RankerNet(RankerNetConfig(n_features=96, n_gated=95, n_layers=4))
    T, D = 128, 192
    by_hand = 2 * T * 96 * D + 2 * T * (D + 4) * D + 4 * (24 * T * D**2 + 4 * T**2 * D)
    by_hand += 4 * (2 * D * D + 2 * D * 20)
    assert net.flops_per_window(T) == by_hand
    assert isinstance(pd.Series([net.flops_per_window(T)]).iloc[0], float)
