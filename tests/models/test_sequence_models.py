"""Sequence networks and forecasters: shapes, causality, positive vol head, planted signals."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from alphaforge.data import synthetic_panel
from alphaforge.errors import ConfigError
from alphaforge.features import build_features
from alphaforge.labels import LabelSpec, make_label
from alphaforge.metrics import qlike, rank_ic
from alphaforge.models.baselines import GarchForecaster
from alphaforge.models.rnn import (
    AttentionLSTMForecaster,
    CNNLSTMForecaster,
    LSTMForecaster,
    MultiTaskLSTMForecaster,
    RNNConfig,
    RNNNet,
)
from alphaforge.models.torch_base import TorchForecaster, multitask_loss
from alphaforge.models.transformer import (
    MultiTaskTransformerForecaster,
    TransformerConfig,
    TransformerForecaster,
    TransformerNet,
)
from alphaforge.registry import MODELS, get_model

NEURAL = sorted(name for name, entry in MODELS.items() if entry.family == "neural")
B, T, F = 5, 12, 7


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, T, F, generator=torch.Generator().manual_seed(seed))


def _split(X: pd.DataFrame, train: float, valid: float, gap: int = 1):
    """Boolean masks of train / valid / test timestamps, ``gap`` bars purged between them."""
    stamps = X.index.get_level_values("timestamp")
    u = stamps.unique()
    a, b = int(len(u) * train), int(len(u) * (train + valid))
    return (
        np.asarray(stamps <= u[a]),
        np.asarray((stamps > u[a + gap]) & (stamps <= u[b])),
        np.asarray(stamps > u[b + gap]),
    )


# ---------------------------------------------------------------------------- networks
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("variant", ["plain", "residual", "attention", "cnn"])
@pytest.mark.parametrize("multitask", [False, True])
def test_rnn_shapes(cell: str, variant: str, multitask: bool) -> None:
    net = RNNNet(
        RNNConfig(
            n_features=F,
            hidden=6,
            n_layers=2,
            cell=cell,
            variant=variant,
            conv_channels=4,
            multitask=multitask,
        )
    ).eval()
    assert net.encode(_x()).shape == (B, T, 6)
    assert net(_x()).shape == (B, 2 if multitask else 1)
    assert RNNNet(RNNConfig(n_features=F, hidden=6, n_outputs=3))(_x()).shape == (B, 3)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
@pytest.mark.parametrize("multitask", [False, True])
def test_transformer_shapes(positional: str, multitask: bool) -> None:
    net = TransformerNet(
        TransformerConfig(
            n_features=F,
            d_model=8,
            n_heads=2,
            n_layers=2,
            max_len=T,
            positional=positional,
            multitask=multitask,
        )
    ).eval()
    assert net.encode(_x()).shape == (B, T, 8)
    assert net(_x()).shape == (B, 2 if multitask else 1)
    assert net(_x()[:, -4:]).shape == (B, 2 if multitask else 1)  # shorter windows are fine


def test_cnn_front_end_is_causal() -> None:
    net = RNNNet(
        RNNConfig(n_features=F, hidden=6, variant="cnn", conv_channels=4, conv_kernel=4)
    ).eval()
    x = _x()
    with torch.no_grad():
        base = net.conv(x)  # (B, T, C)
        for k in (T - 1, T // 2, 3):
            moved = x.clone()
            moved[:, k] += 10.0  # perturb step k: conv outputs before k must not move
            out = net.conv(moved)
            torch.testing.assert_close(out[:, :k], base[:, :k], rtol=0, atol=0)
            assert not torch.equal(out[:, k], base[:, k])
            enc, enc_base = net.encode(moved), net.encode(x)  # the LSTM on top is causal too
            torch.testing.assert_close(enc[:, :k], enc_base[:, :k], rtol=0, atol=0)


def test_causal_transformer_states_read_only_earlier_steps() -> None:
    net = TransformerNet(TransformerConfig(n_features=F, d_model=8, n_heads=2, max_len=T)).eval()
    moved = _x().clone()
    moved[:, -1] += 10.0
    with torch.no_grad():
        torch.testing.assert_close(
            net.encode(moved)[:, :-1], net.encode(_x())[:, :-1], rtol=0, atol=0
        )


@pytest.mark.parametrize(
    "net",
    [
        RNNNet(RNNConfig(n_features=F, hidden=6, multitask=True)),
        TransformerNet(TransformerConfig(n_features=F, d_model=8, n_heads=2, multitask=True)),
    ],
)
def test_multitask_vol_head_is_positive(net: torch.nn.Module) -> None:
    net.eval()
    with torch.no_grad():
        for scale in (1.0, 100.0, -100.0):
            out = net(scale * _x())
            assert (out[:, 1] > 0).all() and torch.isfinite(out).all()


def test_multitask_loss_is_minimised_at_the_realised_variance() -> None:
    v = torch.tensor([0.5, 1.0, 2.0])
    y = torch.stack([torch.zeros(3), v], dim=1)
    sigmas = torch.linspace(0.2, 3.0, 281)
    losses = [
        multitask_loss(torch.stack([torch.zeros(3), s.repeat(3)], 1), y, return_weight=0.0).item()
        for s in sigmas
    ]
    best = sigmas[int(np.argmin(losses))].item()  # QLIKE argmin: sigma^2 = mean(v^2)
    assert best == pytest.approx(float(torch.sqrt((v**2).mean())), abs=0.01)


# ---------------------------------------------------------------------------- forecasters
def test_global_rng_untouched_and_history_kept(return_panel) -> None:
    X, y = return_panel
    train, valid, _ = _split(X, 0.6, 0.2)
    state = torch.get_rng_state()
    model = LSTMForecaster.from_params(LSTMForecaster.test_params(), random_state=3)
    model.fit(X[train], y[train], valid=(X[valid], y[valid]))
    assert torch.equal(torch.get_rng_state(), state)
    assert list(model.history_.columns) == [
        "epoch",
        "train_loss",
        "valid_loss",
        "valid_metric",
        "lr",
        "epoch_time_s",
    ]
    assert len(model.history_) == 2 and model.history_["valid_loss"].notna().all()
    assert model.history_["valid_metric"].isna().all()  # early_stopping_metric: loss
    assert model.net_config_.n_features == X.shape[1] + 1  # + the observed channel


def test_saved_weights_load_without_pickle(tmp_path, return_panel) -> None:
    X, y = return_panel
    model = CNNLSTMForecaster.from_params(
        {**CNNLSTMForecaster.test_params(), "missing_mask": True}
    ).fit(X, y)
    path = model.save(tmp_path / "m")
    weights = torch.load(path / "weights.pt", weights_only=True)
    assert set(weights) == set(model.net_.state_dict())
    loaded = TorchForecaster.load(path)
    assert isinstance(loaded, CNNLSTMForecaster)
    assert loaded.net_config_ == model.net_config_
    pd.testing.assert_series_equal(loaded.predict(X), model.predict(X), check_exact=True)
    pd.testing.assert_frame_equal(loaded.history_, model.history_, check_dtype=False)


def test_multitask_predicts_returns_and_volatility(return_panel) -> None:
    X, y = return_panel
    model = MultiTaskLSTMForecaster.from_params(MultiTaskLSTMForecaster.test_params())
    model.fit(X, y)
    assert model.target_ == "return"
    vol = model.predict_volatility(X)
    assert vol.name == "vol_pred" and vol.index.equals(X.index) and (vol > 0).all()
    assert not np.allclose(model.predict(X).to_numpy(), vol.to_numpy())
    with pytest.raises(ConfigError, match="no volatility head"):
        LSTMForecaster.from_params(LSTMForecaster.test_params()).fit(X, y).predict_volatility(X)


def test_multitask_on_a_volatility_label_predicts_the_vol_head(vol_panel) -> None:
    X, y = vol_panel
    vol = LabelSpec("realized_vol", 1)
    model = MultiTaskTransformerForecaster.from_params(
        MultiTaskTransformerForecaster.test_params()
    ).fit(X, y, label=vol)
    assert model.target_ == "volatility"
    pred = model.predict(X)
    pd.testing.assert_series_equal(pred, model.predict_volatility(X).rename("y_pred"))
    assert (pred > 0).all()
    forced = MultiTaskTransformerForecaster.from_params(
        {**MultiTaskTransformerForecaster.test_params(), "target": "return"}
    ).fit(X, y, label=vol)
    assert forced.target_ == "return"


@pytest.mark.parametrize(
    "cls", [LSTMForecaster, CNNLSTMForecaster, TransformerForecaster, MultiTaskLSTMForecaster]
)
def test_unknown_param_names_the_valid_keys(cls: type[TorchForecaster]) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown parameter\(s\) 'hiden', 'lookbak'; valid: "
        r"lookback, .*max_epochs, .*patience",
    ):
        cls.from_params({"hiden": 8, "lookbak": 8})


@pytest.mark.parametrize("cls", [LSTMForecaster, TransformerForecaster])
def test_patience_zero_trains_every_epoch(cls: type[TorchForecaster], return_panel) -> None:
    X, y = return_panel
    train, valid, _ = _split(X, 0.6, 0.2)
    # a min_delta no epoch beats: patience 1 stops after the second epoch, patience 0 never
    params = {**cls.test_params(), "max_epochs": 3, "min_delta": 1e9}
    fit = {"valid": (X[valid], y[valid])}
    stopped = cls.from_params({**params, "patience": 1}).fit(X[train], y[train], **fit)
    full = cls.from_params({**params, "patience": 0}).fit(X[train], y[train], **fit)
    assert (len(stopped.history_), len(full.history_)) == (2, 3)


def test_params_build_the_net_and_training_configs() -> None:
    params = CNNLSTMForecaster.from_params({"hidden": 12, "conv_kernel": 5, "lr": 3e-3}).config
    net = params.net_config(n_features=7, cell="lstm", variant="cnn")
    assert (net.n_features, net.hidden, net.conv_kernel, net.variant) == (7, 12, 5, "cnn")
    assert params.train_config().lr == 3e-3
    train = params.train_config()
    assert all(getattr(train, f.name) == getattr(params, f.name) for f in dataclasses.fields(train))


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="max_len"):
        TransformerForecaster.from_params({"lookback": 600})
    with pytest.raises(ConfigError, match="d_model"):
        TransformerForecaster.from_params({"d_model": 30, "n_heads": 4})
    with pytest.raises(ConfigError, match="vol_weight"):
        MultiTaskLSTMForecaster.from_params({"vol_weight": 0.0})
    with pytest.raises(ConfigError, match="hidden"):
        LSTMForecaster.from_params({"hidden": 0})


@pytest.mark.parametrize("name", NEURAL)
def test_search_space_builds_a_valid_config(name: str) -> None:
    cls = get_model(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        params = cls.search_space(study.ask())
        assert {"lr", "lookback", "batch_size", "dropout"} <= set(params)
        config = cls.from_params(params).config
        assert dataclasses.asdict(config)["lookback"] == params["lookback"]


# ---------------------------------------------------------------------------- planted signals
@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.Series, float]:
    panel = synthetic_panel(n_symbols=40, n_bars=700, seed=0, strength=0.2)
    X = build_features(panel, names=["ret_1", "ret_5", "rv_20", "volume_z_20"])
    y = make_label(panel, "forward_return", 1)
    return X, y, panel.attrs["planted_rank_ic"]


@pytest.mark.parametrize(
    "cls,params",
    [
        (LSTMForecaster, {"hidden": 16, "n_layers": 1}),
        (TransformerForecaster, {"d_model": 16, "n_heads": 2, "n_layers": 1}),
    ],
)
def test_recovers_planted_rank_ic(planted, cls: type[TorchForecaster], params: dict) -> None:
    X, y, strength = planted
    train, valid, test = _split(X, 0.57, 0.14)
    config = {
        "lookback": 16,
        "max_epochs": 6,
        "batch_size": 256,
        "lr": 3e-3,
        "device": "cpu",
        **params,
    }
    model = cls.from_params(config, random_state=0).fit(
        X[train], y[train], valid=(X[valid], y[valid])
    )
    pred = model.predict(X)  # earlier rows are the test rows' history
    got = rank_ic(y[test], pred[test])
    assert abs(got - strength) <= 0.3 * strength, got


def test_multitask_vol_head_matches_garch_on_garch_data() -> None:
    h = 5
    panel = synthetic_panel(n_symbols=20, n_bars=1500, seed=0, strength=0.0)
    X = build_features(
        panel, names=["logret_1", "rv_5", "rv_20", "rv_60", "rv_120"], cross_section=False
    )
    label = LabelSpec("realized_vol", h)
    y = make_label(panel, label.kind, label.horizon)
    train, valid, test = _split(X, 0.6, 0.15, gap=h)
    test &= y.notna().to_numpy()
    garch = GarchForecaster({"column": "logret_1", "horizon": h}).fit(X[train], y[train])
    model = MultiTaskLSTMForecaster.from_params(
        {
            "lookback": 32,
            "hidden": 16,
            "n_layers": 1,
            "dropout": 0.0,
            "max_epochs": 8,
            "batch_size": 256,
            "lr": 3e-3,
            "device": "cpu",
        },
        random_state=0,
    ).fit(X[train], y[train], valid=(X[valid], y[valid]), label=label)
    assert model.target_ == "volatility"
    ours = qlike(y[test], model.predict(X)[test])
    baseline = qlike(y[test], garch.predict(X)[test])
    trailing = qlike(y[test], np.sqrt(h) * X["rv_20"][test])  # 20-bar trailing variance
    assert ours <= 1.05 * baseline, (ours, baseline)
    assert ours < trailing, (ours, trailing)


def test_fit_and_predict_run_under_deterministic_algorithms(return_panel) -> None:
    X, y = return_panel
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for cls in (AttentionLSTMForecaster, TransformerForecaster):
            cls.from_params(cls.test_params()).fit(X, y).predict(X)
    finally:
        torch.use_deterministic_algorithms(before)
