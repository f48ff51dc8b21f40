"""Fixed-shape decoding: the static KV caches of the GPT and Kronos give the eager caches' tokens
in fp32 (greedy and sampled), decoders are reused per shape, and the decode setting is checked.

The CUDA-graph replay of the same step is compared on a GPU by benchmarks/gpu_suite.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from alphaforge.errors import ConfigError
from alphaforge.models.decoding import DecoderCache, bucket, resolve_decode
from alphaforge.models.foundation.base import calendar
from alphaforge.models.foundation.kronos import KronosAdapter
from alphaforge.models.foundation.kronos_net import (
    KRONOS_ARCHS,
    KronosModelConfig,
    KronosNet,
    KronosTokenizerConfig,
    kronos_generate,
)
from alphaforge.models.gpt import GPT, GPTConfig, KVCache, StaticKVCache
from alphaforge.models.gpt_forecaster import TokenGPTForecaster
from alphaforge.testing import tiny_problem

V = 8
CPU = torch.device("cpu")


def _gpt(n_kv_head: int = 2, seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(
        sequence_len=48, vocab_size=V, n_layer=2, n_head=4, n_kv_head=n_kv_head, n_embd=32, **kw
    )
    net = GPT(config)
    with torch.no_grad():  # zero-initialised projections would make every position alike
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net.eval()


def _prompts(B: int, T: int, seed: int = 0) -> torch.Tensor:
    idx = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
    idx[:, 0] = V  # BOS prefix
    return idx


# ---------------------------------------------------------------------------- settings
def test_decode_setting() -> None:
    assert resolve_decode("auto", CPU) == "eager"  # CPU results do not change by default
    assert resolve_decode("static", CPU) == "static"
    assert resolve_decode("eager", CPU) == "eager"
    with pytest.raises(ConfigError, match="'graph' needs a CUDA device"):
        resolve_decode("graph", CPU)
    with pytest.raises(ConfigError, match="decode: expected one of auto, eager, static, graph"):
        resolve_decode("fast", CPU)
    with pytest.raises(ConfigError, match="decode"):
        TokenGPTForecaster.from_params({"decode": "fast"})
    with pytest.raises(ConfigError, match="decode"):
        KronosAdapter.from_params({"decode": "fast"})
    assert [bucket(n, 64, 200) for n in (1, 64, 65, 190, 195)] == [64, 64, 128, 192, 200]


def test_decoder_cache_reuse_eviction_and_moved_weights() -> None:
    net, cache, built = torch.nn.Linear(2, 2), DecoderCache(size=2), []

    def build(tag: str):
        return lambda: built.append(tag) or tag

    assert cache.get(net, "a", build("a")) == "a"
    assert cache.get(net, "a", build("a2")) == "a" and built == ["a"]  # reused
    cache.get(net, "b", build("b"))
    cache.get(net, "a", build("a3"))  # touches a: b is now the oldest
    cache.get(net, "c", build("c"))
    assert len(cache) == 2 and cache.get(net, "b", build("b2")) == "b2"  # b was evicted
    net.weight.data = net.weight.data.clone()  # weights moved: captured addresses are stale
    assert cache.get(net, "c", build("c2")) == "c2" and len(cache) == 1
    assert len(copy.deepcopy(cache)) == 0


# ---------------------------------------------------------------------------- GPT
@pytest.mark.parametrize(("temperature", "top_k"), [(0.0, None), (1.0, None), (0.8, 3)])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_gpt_static_cache_gives_the_eager_tokens(temperature, top_k, n_kv_head) -> None:
    net = _gpt(n_kv_head)
    idx = _prompts(3, 6)
    kw = {"num_samples": 4, "temperature": temperature, "top_k": top_k}
    for new in (1, 2, 13):
        eager = net.generate(idx, new, generator=torch.Generator().manual_seed(5), **kw)
        static = net.generate(
            idx, new, generator=torch.Generator().manual_seed(5), decode="static", **kw
        )
        assert static.shape == (12, new)
        assert torch.equal(static, eager)  # same generator: same uniforms, same tokens
    assert not torch.equal(static[0], static[1]) or temperature == 0  # samples differ


def test_gpt_static_decoder_is_reused_per_shape() -> None:
    net, u = _gpt(), torch.rand(12, 10, dtype=torch.float64)
    first = net.generate(_prompts(3, 6), 10, num_samples=4, uniforms=u, decode="static")
    assert len(net._decoders) == 1
    again = net.generate(_prompts(3, 6, seed=1), 10, num_samples=4, uniforms=u, decode="static")
    assert len(net._decoders) == 1  # same rows and cache length: the same buffers, reloaded
    eager = net.generate(_prompts(3, 6, seed=1), 10, num_samples=4, uniforms=u)
    assert torch.equal(again, eager) and not torch.equal(again, first)  # no state carried over
    net.generate(_prompts(2, 6), 10, num_samples=4, uniforms=u[:8], decode="static")
    assert len(net._decoders) == 2  # another batch size: another decoder


def test_gpt_decode_step_logits_equal_the_full_forward() -> None:
    net, idx = _gpt(n_kv_head=1), _prompts(2, 9)
    full = net(idx)  # (B, T, V)
    prefix = KVCache(2, 5)
    net(idx[:, :5], cache=prefix)
    static = StaticKVCache(2, 2, 1, 16, 8, torch.float32, CPU)
    static.load(prefix, 1)
    for t in range(5, 9):
        static.pos.fill_(t)
        logits = net.decode_step(idx[:, t], static)
        torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


def test_gpt_generation_outside_the_window_still_slides() -> None:
    net = _gpt()
    idx = _prompts(2, 40)  # 40 + 20 > sequence_len 48: recomputed steps, decode does not apply
    a = net.generate(idx, 20, generator=torch.Generator().manual_seed(1), decode="static")
    b = net.generate(idx, 20, generator=torch.Generator().manual_seed(1), use_cache=False)
    assert torch.equal(a, b)


def test_gpt_forecaster_static_decode_equals_eager() -> None:
    X, y = tiny_problem(n_symbols=3, n_bars=90, seed=4)
    params = {**TokenGPTForecaster.test_params(), "tokenizer": "quantile", "max_epochs": 1}
    preds = {}
    for decode in ("eager", "static"):
        model = TokenGPTForecaster.from_params({**params, "decode": decode}, random_state=0)
        preds[decode] = model.fit(X, y).predict_distribution(X)
    pd.testing.assert_frame_equal(preds["eager"], preds["static"])


# ---------------------------------------------------------------------------- Kronos
TINY = KRONOS_ARCHS["tiny"]


def _kronos(dtype: torch.dtype) -> KronosNet:
    torch.manual_seed(0)
    net = KronosNet(KronosTokenizerConfig(**TINY["tokenizer"]), KronosModelConfig(**TINY["model"]))
    return net.to(dtype).eval()


def _kronos_inputs(dtype: torch.dtype, B: int = 3, T: int = 20, H: int = 5, S: int = 4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, 6, generator=g, dtype=dtype)
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[1, :7] = False  # a left-padded series
    stamps = pd.bdate_range("2023-01-02", periods=T + H).as_unit("ns").asi8
    cal = torch.from_numpy(calendar(np.tile(stamps, (B, 1))))
    return x, valid, cal, torch.rand(B, S, H, 2, generator=g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 0, 0.95), (0.5, 4, 1.0)])
def test_kronos_static_caches_give_the_eager_samples(dtype, temperature, top_k, top_p) -> None:
    net = _kronos(dtype)
    x, valid, cal, u = _kronos_inputs(dtype)
    kw = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "window": 64}
    with torch.inference_mode():
        for stamps in (cal, None):
            eager = kronos_generate(net, x, valid, stamps, u, **kw)
            static = kronos_generate(net, x, valid, stamps, u, decode="static", **kw)
            torch.testing.assert_close(static, eager, rtol=0, atol=0)
        again = kronos_generate(net, x.flip(0), valid, cal, u, decode="static", **kw)
        eager = kronos_generate(net, x.flip(0), valid, cal, u, **kw)
    torch.testing.assert_close(again, eager, rtol=0, atol=0)  # reused buffers, new batch
    assert len(net._decoders) == 2  # with and without calendar stamps


def test_kronos_one_step_horizon() -> None:
    net = _kronos(torch.float32)
    x, valid, cal, u = _kronos_inputs(torch.float32, H=1)
    with torch.inference_mode():
        eager = kronos_generate(net, x, valid, cal, u, window=64)
        static = kronos_generate(net, x, valid, cal, u, window=64, decode="static")
    torch.testing.assert_close(static, eager, rtol=0, atol=0)


def test_kronos_adapter_static_decode_equals_eager() -> None:
    X, y = tiny_problem(n_symbols=3, n_bars=60, n_features=5)
    base = {"max_context": 24, "num_samples": 6, "horizon": 3, "device": "cpu"}
    preds = [
        KronosAdapter.from_params({**base, "decode": d}, random_state=0).fit(X, y).predict(X)
        for d in ("eager", "static")
    ]
    pd.testing.assert_series_equal(preds[0], preds[1])
