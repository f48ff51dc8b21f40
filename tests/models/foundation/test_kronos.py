"""Kronos: shapes, sampling, KV cache, reference package, checkpoints, released weights.

Released weights are used only when ALPHAFORGE_KRONOS_WEIGHTS names a local folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from alphaforge.errors import DataError
from alphaforge.models.foundation.base import calendar
from alphaforge.models.foundation.kronos import KronosAdapter
from alphaforge.models.foundation.kronos_net import (
    KRONOS_ARCHS,
    KronosModelConfig,
    KronosNet,
    KronosTokenizerConfig,
    _cross,
    causal_mask,
    kronos_generate,
    sample_tokens,
)

TINY = KRONOS_ARCHS["tiny"]


def _net(seed: int = 0, dtype: torch.dtype = torch.float32) -> KronosNet:
    torch.manual_seed(seed)
    net = KronosNet(KronosTokenizerConfig(**TINY["tokenizer"]), KronosModelConfig(**TINY["model"]))
    return net.to(dtype).eval()


# ------------------------------------------------------------------ architecture
@pytest.mark.parametrize(("arch", "millions"), [("mini", 4.1), ("small", 24.7), ("base", 102.3)])
def test_released_sizes_and_the_tokenizer_depth_quirk(arch: str, millions: float) -> None:
    cfg = KRONOS_ARCHS[arch]
    with torch.device("meta"):
        net = KronosNet(
            KronosTokenizerConfig(**cfg["tokenizer"]), KronosModelConfig(**cfg["model"])
        )
    n = sum(p.numel() for p in net.model.parameters())
    assert abs(n / 1e6 - millions) < 0.05 * millions  # the published predictor sizes
    keys = net.state_dict()
    assert "tokenizer.encoder.2.self_attn.q_proj.weight" in keys  # n_enc_layers = 4 -> 3 blocks
    assert "tokenizer.encoder.3.norm1.weight" not in keys
    for name in (
        "model.embedding.emb_s1.weight",
        "model.time_emb.minute_embed.weight",
        "model.dep_layer.cross_attn.rotary.inv_freq",
        "model.head.proj_s2.bias",
        "tokenizer.tokenizer.bsq.basis",
        "tokenizer.post_quant_embed_pre.weight",
    ):
        assert name in keys, name
    assert tuple(keys["model.embedding.emb_s1.weight"].shape) == (1024, cfg["model"]["d_model"])


# ------------------------------------------------------------------ sampling rules
def test_sample_tokens_top_k_and_top_p_together() -> None:
    logits = torch.log(torch.tensor([[0.05, 0.30, 0.12, 0.25, 0.20, 0.08]]))
    u = torch.linspace(0.0005, 0.9995, 2000)
    draws = sample_tokens(logits.expand(2000, -1), u, 1.0, 4, 0.6)
    # top-4 keeps tokens 1, 3, 4, 2 (mass .87, renormalised .345 .287 .230 .138); top-p 0.6
    # then keeps a token while the mass before it is <= 0.6: 1 (0), 3 (.345), not 4 (.632)
    assert set(draws.tolist()) == {1, 3}
    share = (draws == 1).float().mean().item()
    assert share == pytest.approx(0.30 / 0.55, abs=0.01)  # inverse CDF follows the mass
    only_k = sample_tokens(logits.expand(2000, -1), u, 1.0, 4, 1.0)
    assert set(only_k.tolist()) == {1, 2, 3, 4}
    only_p = sample_tokens(logits.expand(2000, -1), u, 1.0, 0, 0.6)
    assert set(only_p.tolist()) == {1, 3, 4}  # before 4: .55 <= .6
    logits = torch.randn(5, 16)
    assert torch.equal(sample_tokens(logits, torch.rand(5), 0.7, 1, 1.0), logits.argmax(-1))
    cold = sample_tokens(logits.expand(3, 5, 16), torch.rand(3, 5), 1e-4, 0, 1.0)
    assert torch.equal(cold, logits.argmax(-1).expand(3, 5))  # temperature -> 0: greedy


# ------------------------------------------------------------------ cache vs recomputation
def _inputs(B: int = 3, T: int = 24, H: int = 4, S: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, 6, generator=g, dtype=torch.float64)
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[1, :9] = False  # a shorter series, left-padded
    stamps = pd.bdate_range("2023-01-02", periods=T + H).as_unit("ns").asi8
    cal = torch.from_numpy(calendar(np.tile(stamps, (B, 1))))
    u = torch.rand(B, S, H, 2, generator=g)
    return x, valid, cal, u


def test_kv_cache_sampling_equals_full_recomputation() -> None:
    net = _net(dtype=torch.float64)
    x, valid, cal, u = _inputs()
    kw = {"temperature": 1.0, "top_k": 0, "top_p": 0.95, "window": 64}
    with torch.inference_mode():
        cached = kronos_generate(net, x, valid, cal, u, use_cache=True, **kw)
        full = kronos_generate(net, x, valid, cal, u, use_cache=False, **kw)
        sliding = kronos_generate(net, x, valid, cal, u, **{**kw, "window": 20})
        sliding_full = kronos_generate(
            net, x, valid, cal, u, use_cache=False, **{**kw, "window": 20}
        )
    assert cached.shape == (3, 5, 4, 6)
    torch.testing.assert_close(cached, full, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sliding, sliding_full, rtol=0, atol=0)  # cache off when it slides
    assert not torch.allclose(cached[:, 0], cached[:, 1])  # samples differ


def test_left_padding_does_not_change_a_series() -> None:
    net = _net(dtype=torch.float64)
    x, valid, cal, u = _inputs()
    kw = {"temperature": 1.0, "top_k": 0, "top_p": 0.95, "window": 64}
    with torch.inference_mode():
        padded = kronos_generate(net, x, valid, cal, u, **kw)[1]
        alone = kronos_generate(net, x[1:2, 9:], valid[1:2, 9:], cal[1:2, 9:], u[1:2], **kw)[0]
    torch.testing.assert_close(padded, alone, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ the reference package
def _reference_models():
    kronos = pytest.importorskip(
        "kronos_finance._vendor.kronos_model",
        reason=(
            "the reference package kronos-finance is not installed (pip install kronos-finance)"
        ),
    )
    torch.manual_seed(1)
    tok = kronos.KronosTokenizer(**TINY["tokenizer"]).eval()
    model = kronos.Kronos(**TINY["model"]).eval()
    return kronos, tok, model


def test_same_outputs_as_the_reference_package_on_random_weights() -> None:
    kronos, ref_tok, ref_model = _reference_models()
    net = _net()
    net.tokenizer.load_state_dict(ref_tok.state_dict(), strict=True)  # same names and shapes
    net.model.load_state_dict(ref_model.state_dict(), strict=True)
    x, valid, cal, _ = _inputs(B=2, T=20)
    x, valid, cal = x.float(), torch.ones_like(valid), cal[:, :20]
    with torch.inference_mode():
        ref1, ref2 = ref_tok.encode(x, half=True)
        s1, s2 = net.tokenizer.encode(x, valid)
        assert torch.equal(ref1, s1) and torch.equal(ref2, s2)
        pos, mask = torch.arange(20), causal_mask(valid)
        z = net.tokenizer.embed_tokens(s1, s2)
        for block in net.tokenizer.decoder:
            z = block(z, pos, mask)
        torch.testing.assert_close(net.tokenizer.head(z), ref_tok.decode([ref1, ref2], half=True))
        logits1, context = ref_model.decode_s1(ref1, ref2, cal.float())
        h = net.model.inputs(s1, s2, cal)
        for block in net.model.transformer:
            h = block(h, pos, mask)
        hn = net.model.norm(h)
        torch.testing.assert_close(net.model.head.proj_s1(hn), logits1)
        torch.testing.assert_close(hn, context)
        pick = logits1[:, -1].argmax(-1, keepdim=True)
        ref_logits2 = ref_model.decode_s2(context, pick)[:, -1]
        a = net.model.dep_layer.cross_attn
        ours2 = net.model.head.proj_s2(
            _cross(
                net.model.dep_layer,
                net.model.embedding.emb_s1(pick[:, 0]),
                hn[:, -1],
                (a.split(a.k_proj(hn)), a.split(a.v_proj(hn))),
                valid,
            )
        )
        torch.testing.assert_close(ours2, ref_logits2)


@pytest.mark.filterwarnings("ignore:Series.dt.weekday is deprecated")  # in the package
@pytest.mark.parametrize("max_context", [512, 41])  # 41 < 40 + 3: the window slides
def test_greedy_forecast_equals_the_reference_predictor(max_context: int) -> None:
    kronos, ref_tok, ref_model = _reference_models()
    net = _net()
    net.tokenizer.load_state_dict(ref_tok.state_dict())
    net.model.load_state_dict(ref_model.state_dict())
    n, H = 40, 3
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    df = pd.DataFrame(
        {
            "open": close * 1.001,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.uniform(1e5, 2e5, n),
        }
    )
    xt = pd.Series(pd.bdate_range("2024-01-01", periods=n))
    yt = pd.Series(pd.bdate_range(xt.iloc[-1] + pd.offsets.BDay(), periods=H))
    ref = kronos.KronosPredictor(ref_model, ref_tok, device="cpu", max_context=max_context)
    want = ref.predict(
        df, xt, yt, pred_len=H, T=1.0, top_k=1, top_p=0.9, sample_count=2, verbose=False
    ).to_numpy()
    raw = df.to_numpy()
    raw = np.concatenate([raw, (raw[:, 4] * raw[:, :4].mean(1))[:, None]], 1).astype(np.float32)
    mean, std = raw.mean(0), raw.std(0) + 1e-5
    xn = torch.from_numpy(np.clip((raw - mean) / std, -5, 5))[None]
    stamps = np.concatenate([xt, yt]).astype("datetime64[ns]").astype(np.int64)
    with torch.inference_mode():
        out = kronos_generate(
            net,
            xn,
            torch.ones(1, n, dtype=torch.bool),
            torch.from_numpy(calendar(stamps))[None],
            torch.rand(1, 2, H, 2),
            top_k=1,
            window=max_context,
        )
    np.testing.assert_allclose(out[0, 0].numpy() * std + mean, want, rtol=1e-5)


def test_candles_from_features_and_raw_candles(panel) -> None:
    X, y = panel
    Xc = X.assign(gap=0.001, hl_range=0.02, close_loc=0.4)
    params = {
        **KronosAdapter.test_params(),
        "gap_column": "gap",
        "range_column": "hl_range",
        "close_loc_column": "close_loc",
    }
    model = KronosAdapter.from_params(params).fit(Xc, y)
    assert np.isfinite(model.predict(Xc).to_numpy()).all()
    close = 50 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, (2, 20)), 1))
    candles = np.stack(
        [close * 0.999, close * 1.01, close * 0.99, close, np.full_like(close, 1e5)], -1
    )  # OHLCV, amount filled in
    stamps = np.tile(pd.bdate_range("2024-01-01", periods=20).to_numpy(), (2, 1))
    out = model.sample(candles, horizon=2, num_samples=4, timestamps=stamps)
    assert out.shape == (2, 4, 2) and np.isfinite(out).all()
    assert np.abs(np.log(out / close[:, -1, None, None])).max() < 1.0  # in the series' units


# ------------------------------------------------------------------ checkpoints
def _write_release(net: KronosNet, model_dir: Path, tok_dir: Path) -> None:
    from safetensors.torch import save_file

    for part, folder, cfg in (
        (net.model, model_dir, net.model.config),
        (net.tokenizer, tok_dir, net.tokenizer.config),
    ):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
        save_file(
            {k: v.contiguous() for k, v in part.state_dict().items()},
            str(folder / "model.safetensors"),
        )


def test_loads_a_directory_laid_out_like_the_released_checkpoints(tmp_path: Path, panel) -> None:
    pytest.importorskip("safetensors", reason="safetensors is not installed")
    X, y = panel
    params = {k: v for k, v in KronosAdapter.test_params().items() if k != "arch"}
    reference = KronosAdapter.from_config(TINY, params, random_state=0).fit(X, y)
    want = reference.predict(X)
    net = reference.module_
    _write_release(
        net, tmp_path / "plain" / "Kronos-small", tmp_path / "plain" / "Kronos-Tokenizer-base"
    )
    got = KronosAdapter.from_path(tmp_path / "plain", params).fit(X, y).predict(X)
    pd.testing.assert_series_equal(got, want)
    hub = tmp_path / "hub"
    _write_release(
        net,
        hub / "models--NeoQuasar--Kronos-small" / "snapshots" / "abc",
        hub / "models--NeoQuasar--Kronos-Tokenizer-base" / "snapshots" / "def",
    )
    got = KronosAdapter.from_path(hub, params).fit(X, y).predict(X)
    pd.testing.assert_series_equal(got, want)
    # the model directory itself, tokenizer as its sibling
    got = KronosAdapter.from_path(tmp_path / "plain" / "Kronos-small", params).fit(X, y)
    pd.testing.assert_series_equal(got.predict(X), want)
    (tmp_path / "plain" / "Kronos-Tokenizer-base" / "model.safetensors").unlink()
    with pytest.raises(DataError, match="tokenizer checkpoint not found"):
        KronosAdapter.from_path(tmp_path / "plain", params)


def test_loads_weights_saved_by_the_reference_package(tmp_path: Path, panel) -> None:
    kronos, ref_tok, ref_model = _reference_models()
    ref_tok.save_pretrained(tmp_path / "Kronos-Tokenizer-base")  # config.json + safetensors
    ref_model.save_pretrained(tmp_path / "Kronos-mini")
    X, y = panel
    params = {k: v for k, v in KronosAdapter.test_params().items() if k != "arch"}
    model = KronosAdapter.from_path(tmp_path, params).fit(X, y)
    theirs = {k: v for k, v in ref_model.state_dict().items()}
    for k, v in model.module_.model.state_dict().items():
        assert torch.equal(v, theirs[k]), k
    assert np.isfinite(model.predict(X).to_numpy()).mean() > 0.9


@pytest.mark.skipif(
    not os.environ.get("ALPHAFORGE_KRONOS_WEIGHTS"),
    reason="set ALPHAFORGE_KRONOS_WEIGHTS to a local Kronos checkpoint folder",
)
def test_released_weights_forecast_the_panel(panel) -> None:
    X, y = panel
    model = KronosAdapter.from_path(
        os.environ["ALPHAFORGE_KRONOS_WEIGHTS"],
        {"num_samples": 8, "max_context": 64, "device": "cpu"},
    )
    pred = model.fit(X, y).predict(X)
    assert np.isfinite(pred.to_numpy()).all() and pred.abs().max() < 0.5
