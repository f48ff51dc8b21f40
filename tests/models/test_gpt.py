"""Market GPT: KV cache == recomputation, GQA, causality, overfitting, a planted second-order
Markov chain learned to its entropy rate, token windows, save/load, and the forecaster."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.gpt import GPT, GPTConfig, KVCache
from alphaforge.models.gpt_forecaster import (
    TokenGPTForecaster,
    TokenWindows,
    evaluate_tokens,
    load_gpt,
    save_gpt,
    train_gpt,
)
from alphaforge.models.token_analysis import bigram_baseline, unigram_baseline
from alphaforge.models.token_streams import TokenStreams
from alphaforge.models.training import TensorSource, TrainConfig, fit_torch
from alphaforge.testing import tiny_problem

V = 8


def _gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    params = {
        "sequence_len": 32,
        "vocab_size": V,
        "n_layer": 2,
        "n_head": 4,
        "n_kv_head": 2,
        "n_embd": 32,
    }
    net = GPT(GPTConfig(**{**params, **kw}))
    with torch.no_grad():  # zero-initialised projections would make every position alike
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net.eval()


def _prompts(B: int = 3, T: int = 6, seed: int = 0) -> torch.Tensor:
    idx = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
    idx[:, 0] = V  # BOS prefix
    return idx


# ---------------------------------------------------------------------------- network
@pytest.mark.parametrize("temperature,top_k", [(0.0, None), (1.0, None), (0.8, 3)])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_kv_cache_generation_equals_recomputation(temperature, top_k, n_kv_head) -> None:
    net = _gpt(n_kv_head=n_kv_head)
    idx = _prompts()
    cached = net.generate(
        idx, 20, temperature, top_k, torch.Generator().manual_seed(1), num_samples=3
    )
    full = net.generate(
        idx,
        20,
        temperature,
        top_k,
        torch.Generator().manual_seed(1),
        num_samples=3,
        use_cache=False,
    )
    assert cached.shape == (9, 20)
    assert torch.equal(cached, full)
    if temperature == 0:  # greedy: every sample of a prompt is the same path
        assert torch.equal(cached[0], cached[2])


def test_generation_slides_past_sequence_len() -> None:
    net = _gpt(sequence_len=12)
    idx = _prompts(T=8)
    a = net.generate(idx, 10, 1.0, None, torch.Generator().manual_seed(0))
    b = net.generate(idx, 10, 1.0, None, torch.Generator().manual_seed(0), use_cache=False)
    assert torch.equal(a, b) and a.shape == (3, 10)
    with pytest.raises(DataError, match="sequence_len 12"):
        net(_prompts(T=13))  # a forward pass never slides: too long a context is an error
    cache = KVCache(net.config.n_layer, 4)
    with pytest.raises(DataError, match="KV cache of 4 positions"):
        net(_prompts(T=6), cache=cache)


def test_cached_chunks_give_the_full_forward_logits() -> None:
    net = _gpt()
    idx = _prompts(T=10)
    full = net(idx)  # (B, T, V)
    cache = KVCache(net.config.n_layer, 10)
    parts = [
        net(idx[:, :4], cache=cache),
        net(idx[:, 4:9], cache=cache),  # masked chunk
        net(idx[:, 9:], cache=cache),
    ]  # single token
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
def test_grouped_query_attention_shapes(n_kv_head) -> None:
    net = _gpt(n_kv_head=n_kv_head)
    idx = _prompts(B=5, T=12)
    assert net(idx).shape == (5, 12, V)
    attn = net.blocks[0].attn
    assert attn.c_k.weight.shape == (n_kv_head * 8, 32) and attn.c_q.weight.shape == (32, 32)
    loss = net(idx, torch.randint(0, V, (5, 12)))
    assert loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ConfigError, match=r"n_kv_head must be a divisor of n_head=8"):
        GPTConfig(n_head=8, n_kv_head=3)
    with pytest.raises(ConfigError, match="even head dim"):
        GPTConfig(n_embd=24, n_head=8, n_kv_head=8)  # head dim 3: rotary needs an even one


def test_tied_embeddings_and_causality() -> None:
    tied, untied = _gpt(tie_embeddings=True), _gpt()
    assert tied.lm_head is None and tied.num_params() < untied.num_params()
    idx = _prompts(T=10)
    other = idx.clone()
    other[:, 6:] = (other[:, 6:] + 1) % V
    for net in (tied, untied):  # logits at t never read tokens after t
        assert torch.allclose(net(idx)[:, :6], net(other)[:, :6])
        assert not torch.allclose(net(idx)[:, 6:], net(other)[:, 6:])


def test_tiny_gpt_overfits_a_short_sequence() -> None:
    torch.manual_seed(0)
    net = GPT(GPTConfig(sequence_len=24, vocab_size=V, n_layer=2, n_head=2, n_kv_head=1, n_embd=32))
    x = torch.randint(0, V, (1, 25), generator=torch.Generator().manual_seed(3))
    src = TensorSource({"x": x[:, :-1], "y": x[:, 1:]})
    hist = fit_torch(
        net,
        src,
        lambda n, b: n(b["x"], b["y"]),
        TrainConfig(
            max_epochs=150,
            batch_size=1,
            lr=1e-2,
            weight_decay=0.0,
            patience=0,
            device="cpu",
            warmup_frac=0.0,
        ),
        seed=0,
    )
    assert hist.train_loss[-1] < 0.02, hist.train_loss[-5:]


# ---------------------------------------------------------------------------- learning
def _markov_streams(seed: int = 0) -> tuple[TokenStreams, TokenStreams, float]:
    """A second-order Markov chain (4 documents); returns train, valid, true entropy rate."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(V, 0.15), size=(V, V))  # P[a, b] = p(next | a, b)
    cdf = P.cumsum(-1)
    frames, nll = [], []
    for d in range(4):
        x = rng.integers(V, size=5000)
        u = rng.random(5000)
        for t in range(2, 5000):
            x[t] = min(np.searchsorted(cdf[x[t - 2], x[t - 1]], u[t]), V - 1)
        nll.append(-np.log(P[x[3998:-2], x[3999:-1], x[4000:]]))  # the validation targets
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"D{d}",
                    "token": x,
                    "timestamp": pd.date_range("2020", periods=5000, freq="h"),
                }
            )
        )
    streams = TokenStreams.from_frame(pd.concat(frames))
    train, valid = streams.split(pd.Timestamp("2020") + pd.Timedelta(hours=3999))
    return train, valid, float(np.concatenate(nll).mean())


def test_learns_a_planted_second_order_chain_to_its_entropy_rate() -> None:
    train, valid, entropy_rate = _markov_streams()
    torch.manual_seed(0)
    net = GPT(GPTConfig(sequence_len=16, vocab_size=V, n_layer=2, n_head=4, n_kv_head=2, n_embd=32))
    hist = train_gpt(
        net,
        train,
        valid,
        TrainConfig(
            max_epochs=8, batch_size=32, lr=1e-2, weight_decay=0.0, patience=0, device="cpu"
        ),
        stride=8,
    )
    got = evaluate_tokens(net.eval(), valid)
    bigram = bigram_baseline(train, valid, V)
    unigram = unigram_baseline(train, valid, V)
    assert got["n_tokens"] == bigram["n_tokens"] == 4000  # the same targets, each once
    assert got["cross_entropy"] <= 1.12 * entropy_rate, (got, entropy_rate)
    assert got["cross_entropy"] < bigram["cross_entropy"] - 0.3 < unigram["cross_entropy"]
    assert got["accuracy"] > bigram["accuracy"]
    assert hist.valid_loss[-1] == pytest.approx(got["cross_entropy"], rel=0.05)


def test_token_windows_stay_inside_documents() -> None:
    streams = TokenStreams.from_frame(
        pd.DataFrame(
            {
                "symbol": ["A"] * 7 + ["B"] * 3,
                "token": [1, 2, 3, 4, 5, 6, 7, 0, 1, 2],
                "timestamp": list(pd.date_range("2020", periods=7))
                + list(pd.date_range("2020", periods=3)),
            }
        )
    )
    src = TokenWindows(streams, 4, prefix=[8, 9], stride=2)
    b = src.batch(torch.arange(len(src)))
    assert b["x"][:, 0].tolist() == [8, 8, 8, 9]  # windows of A start at 0, 2, 3; B at 0
    assert b["y"].tolist() == [[1, 2, 3, 4], [3, 4, 5, 6], [4, 5, 6, 7], [0, 1, 2, -1]]
    assert b["x"][:, 1:].tolist()[:3] == [[1, 2, 3], [3, 4, 5], [4, 5, 6]]
    train, valid = streams.split(pd.Timestamp("2020-01-05"))
    ev = TokenWindows(valid, 4, prefix=[8])  # only A has tokens after the split
    y = ev.batch(torch.arange(len(ev)))["y"]
    assert sorted(y[y >= 0].tolist()) == [6, 7]  # each validation target exactly once


def test_save_load_gpt_round_trip(tmp_path) -> None:
    net = _gpt(tie_embeddings=True, n_symbols=2)
    save_gpt(tmp_path / "m", net, symbols=["AAA", "BBB"], info={"note": 1})
    loaded, tok, meta = load_gpt(tmp_path / "m")
    assert tok is None and meta["symbols"] == ["AAA", "BBB"] and meta["note"] == 1
    idx = _prompts()
    assert torch.equal(loaded(idx), net(idx))


# ---------------------------------------------------------------------------- forecaster
@pytest.fixture(scope="module")
def fitted() -> tuple[TokenGPTForecaster, pd.DataFrame, pd.Series]:
    X, y = tiny_problem(n_symbols=4, n_bars=200, seed=5)
    stamps = X.index.get_level_values("timestamp")
    train = stamps <= stamps.unique()[120]
    params = {**TokenGPTForecaster.test_params(), "horizon": 3, "symbol_tokens": True}
    model = TokenGPTForecaster.from_params(params, random_state=0).fit(X[train], y[train])
    return model, X, y


def test_forecaster_distribution_and_horizon(fitted) -> None:
    model, X, _ = fitted
    dist = model.predict_distribution(X)
    assert list(dist.columns) == ["mean", "median", "q10", "q50", "q90", "vol"]
    assert np.allclose(dist["mean"], model.predict(X))
    assert np.allclose(dist["median"], dist["q50"])
    assert (dist["q10"] <= dist["q50"]).all() and (dist["q50"] <= dist["q90"]).all()
    assert (dist["vol"] > 0).all()
    # three decoded one-bar returns per path: spread grows like sqrt(3) vs one bar
    one_bar = copy.copy(model)  # same fitted state, forecasting one bar ahead
    one_bar.config_ = dataclasses.replace(model.config_, horizon=1)
    ratio = dist["vol"].mean() / one_bar.predict_distribution(X)["vol"].mean()
    assert 1.3 < ratio < 2.2, ratio


def test_forecaster_rows_are_independent_of_the_batch(fitted) -> None:
    model, X, _ = fitted
    full = model.predict(X)
    symbol = X.xs("S01", level="symbol", drop_level=False)  # other symbols dropped
    assert np.array_equal(model.predict(symbol).to_numpy(), full.loc[symbol.index].to_numpy())
    shuffled = X.sample(frac=1.0, random_state=0)  # row order is not history order
    assert np.array_equal(model.predict(shuffled).to_numpy(), full.loc[shuffled.index].to_numpy())


def test_forecaster_needs_its_return_column() -> None:
    X, y = tiny_problem(n_symbols=2, n_bars=60)
    model = TokenGPTForecaster.from_params(
        {**TokenGPTForecaster.test_params(), "return_column": "ret_9"}
    )
    with pytest.raises(ConfigError, match=r"column\(s\) \['ret_9'\] not in X"):
        model.fit(X, y)
    with pytest.raises(ConfigError, match="sequence_len"):
        TokenGPTForecaster.from_params({"lookback": 128, "sequence_len": 128})


def test_forecaster_params_come_from_gpt_config() -> None:
    params = TokenGPTForecaster.Config()
    net = GPTConfig()
    shared = [
        f.name for f in dataclasses.fields(GPTConfig) if f.name not in ("vocab_size", "n_symbols")
    ]
    assert {k: getattr(params, k) for k in shared} == {k: getattr(net, k) for k in shared}
    assert params.codebook_size == net.vocab_size  # the GPT's vocabulary is the codebook
    built = params.net_config(vocab_size=32, n_symbols=3)
    assert built == dataclasses.replace(net, vocab_size=32, n_symbols=3)
    tok = params.build("tokenizer", device="cpu")
    assert (tok.hidden, tok.code_dim, tok.max_epochs, tok.min_steps) == (
        params.vq_hidden,
        params.vq_code_dim,
        params.vq_epochs,
        params.vq_min_steps,
    )


def test_forecaster_rejects_unknown_and_invalid_params() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) 'n_layers'; valid: .*n_layer"):
        TokenGPTForecaster.from_params({"n_layers": 2})  # the GPT's field is n_layer
    with pytest.raises(ConfigError, match="n_kv_head"):
        TokenGPTForecaster.from_params({"n_head": 4, "n_kv_head": 3})
    with pytest.raises(ConfigError, match="vq_hidden"):  # the tokenizer's hidden, renamed
        TokenGPTForecaster.from_params({"vq_hidden": 0})


def test_forecaster_trains_every_epoch_with_patience_zero() -> None:
    X, y = tiny_problem(n_symbols=3, n_bars=120, seed=2)
    stamps = X.index.get_level_values("timestamp")
    train = stamps <= stamps.unique()[80]
    # min_delta that no epoch beats: any patience >= 1 would stop after the second epoch
    params = {
        **TokenGPTForecaster.test_params(),
        "tokenizer": "quantile",
        "max_epochs": 3,
        "patience": 0,
        "min_delta": 1e9,
    }
    model = TokenGPTForecaster.from_params(params).fit(
        X[train], y[train], valid=(X[~train], y[~train])
    )
    assert len(model.history_) == 3
