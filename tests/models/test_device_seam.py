"""The device seam's new parts: SDPA backend choice, attention_backend configs, compile modes,
the compile cache folder, compiled training's fixed batch shape, the RNN's fp32 fallback."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from alphaforge.errors import ConfigError
from alphaforge.models.foundation.kronos import KronosAdapter
from alphaforge.models.gpt import GPT, GPTConfig
from alphaforge.models.gpt_forecaster import TokenGPTForecaster
from alphaforge.models.ranker import RankerNetConfig, RankingTransformerForecaster
from alphaforge.models.rnn import LSTMForecaster, RNNConfig, RNNNet
from alphaforge.models.training import TensorSource, TrainConfig, fit_torch
from alphaforge.models.transformer import TransformerConfig, TransformerForecaster, TransformerNet
from alphaforge.utils import device as dev

BF16, FP32 = torch.bfloat16, torch.float32


# ---------------------------------------------------------------------------- backend choice
@pytest.mark.parametrize(
    ("device", "dtype", "backend", "shape", "expected"),
    [
        ("cpu", FP32, "auto", {}, None),  # torch's own choice: CPU results unchanged
        ("cpu", BF16, "auto", {"varying_keys": True}, None),
        ("cpu", FP32, "math", {}, ("math",)),
        ("cpu", FP32, "flash", {}, ("flash", "math")),
        ("cpu", FP32, "cudnn", {}, None),  # no CPU cuDNN kernel: torch decides
        ("mps", FP32, "efficient", {}, None),
        ("cuda", BF16, "auto", {}, ("flash", "efficient", "math")),
        ("cuda", FP32, "auto", {}, ("efficient", "math")),  # flash needs half precision
        ("cuda", BF16, "auto", {"masked": True}, ("efficient", "math")),  # flash: no masks
        ("cuda", BF16, "auto", {"head_dim": 512}, ("efficient", "math")),
        ("cuda", BF16, "auto", {"head_dim": 36}, ("efficient", "math")),
        ("cuda", BF16, "cudnn", {}, ("cudnn", "math")),
        ("cuda", BF16, "cudnn", {"varying_keys": True}, ("flash", "efficient", "math")),
        ("cuda", BF16, "cudnn", {"masked": True, "varying_keys": True}, ("efficient", "math")),
        ("cuda", FP32, "flash", {}, ("math",)),
        ("cuda", BF16, "flash", {}, ("flash", "math")),
        ("cuda", FP32, "efficient", {"masked": True}, ("efficient", "math")),
        ("cuda", BF16, "math", {}, ("math",)),
    ],
)
def test_sdpa_backends_by_device_dtype_and_shape(device, dtype, backend, shape, expected) -> None:
    kw = {"head_dim": 64, **shape}
    assert dev.choose_sdpa_backends(device, dtype, backend, **kw) == expected


@pytest.mark.parametrize("varying", [False, True])
def test_auto_never_picks_cudnn(varying: bool) -> None:
    for dtype in (BF16, torch.float16, FP32):
        for masked in (False, True):
            for head_dim in (32, 64, 128, 256):
                names = dev.choose_sdpa_backends(
                    "cuda", dtype, head_dim=head_dim, masked=masked, varying_keys=varying
                )
                assert "cudnn" not in names and names[-1] == "math"


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="attention_backend: expected one of auto, flash"):
        dev.choose_sdpa_backends("cuda", BF16, "fast", head_dim=64)


def test_sdpa_context_on_cpu() -> None:
    q, k, v = torch.randn(3, 2, 2, 5, 8).unbind(0)  # (B, H, T, D) each
    ctx = dev.sdpa_context(q, "auto")
    assert isinstance(ctx, contextlib.nullcontext)  # nothing changes on the CPU by default
    with dev.sdpa_context(q, "math"):
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(y, F.scaled_dot_product_attention(q, k, v, is_causal=True))


# ---------------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    "build",
    [
        lambda b: TransformerConfig(n_features=3, attention_backend=b),
        lambda b: RankerNetConfig(n_features=3, n_gated=2, attention_backend=b),
        lambda b: GPTConfig(attention_backend=b),
        lambda b: TransformerForecaster.from_params({"attention_backend": b}),
        lambda b: RankingTransformerForecaster.from_params({"attention_backend": b}),
        lambda b: TokenGPTForecaster.from_params({"attention_backend": b}),
        lambda b: KronosAdapter.from_params({"attention_backend": b}),
    ],
)
def test_every_attention_model_takes_and_checks_attention_backend(build) -> None:
    for name in dev.ATTENTION_BACKENDS:
        build(name)
    with pytest.raises(ConfigError, match="attention_backend"):
        build("flash2")


def test_explicit_math_backend_gives_the_default_outputs_on_cpu() -> None:
    x = torch.randn(4, 6, 3)
    outs = []
    for backend in ("auto", "math"):
        torch.manual_seed(0)
        net = TransformerNet(
            TransformerConfig(n_features=3, d_model=8, n_heads=2, attention_backend=backend)
        )
        outs.append(net.eval()(x))
    torch.testing.assert_close(outs[0], outs[1])
    idx = torch.randint(0, 8, (2, 5))
    logits = []
    for backend in ("auto", "math"):
        torch.manual_seed(0)
        net = GPT(
            GPTConfig(vocab_size=8, n_embd=16, n_head=2, n_kv_head=1, attention_backend=backend)
        )
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
        logits.append(net.eval()(idx))
    torch.testing.assert_close(logits[0], logits[1])


# ---------------------------------------------------------------------------- compile
@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (False, None),
        (None, None),
        ("none", None),
        (True, "default"),  # the boolean of older configs
        ("default", "default"),
        ("reduce-overhead", "reduce-overhead"),
        ("max-autotune", "max-autotune"),
    ],
)
def test_compile_modes(value, mode) -> None:
    assert dev.resolve_compile_mode(value) == mode


def test_bad_compile_values_are_config_errors() -> None:
    for bad in ("fast", 1, "Default"):
        with pytest.raises(ConfigError, match="compile"):
            dev.resolve_compile_mode(bad)
    with pytest.raises(ConfigError, match="compile"):
        TrainConfig(compile="fast")
    with pytest.raises(ConfigError, match="compile"):
        LSTMForecaster.from_params({"compile": "turbo"})
    with pytest.raises(ConfigError, match="compile"):
        KronosAdapter.from_params({"compile": "turbo"})
    for ok in (True, False, "none", "reduce-overhead", "max-autotune"):
        assert LSTMForecaster.from_params({"compile": ok}).config.compile == ok


def test_compile_cache_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALPHAFORGE_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(dev.sys, "platform", "linux")
    assert dev.compile_cache_dir() == tmp_path / "xdg" / "alphaforge" / "inductor"
    monkeypatch.setenv("ALPHAFORGE_COMPILE_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))
    path = dev.enable_compile_cache()
    assert path == tmp_path / "mine" and path.is_dir()
    assert dev.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(path)  # inductor reads it per compile


def test_compile_module_off_returns_the_module() -> None:
    net = torch.nn.Linear(2, 2)
    assert dev.compile_module(net, False) is net
    assert dev.compile_module(net, "none") is net


def test_compiled_training_keeps_one_batch_shape(monkeypatch, tmp_path: Path) -> None:
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile is not supported on this platform")
    monkeypatch.setenv("ALPHAFORGE_COMPILE_BACKEND", "eager")  # dynamo only: fast on a CPU
    monkeypatch.setenv("ALPHAFORGE_COMPILE_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    data = TensorSource({"x": torch.randn(70, 3, generator=g), "y": torch.randn(70, generator=g)})
    sizes: list[int] = []

    def loss(net, b):
        sizes.append(b["x"].shape[0])
        return F.mse_loss(net(b["x"])[:, 0], b["y"])

    cfg = TrainConfig(max_epochs=2, batch_size=16, device="cpu", patience=0)
    eager = fit_torch(torch.nn.Linear(3, 1), data, loss, cfg)
    assert sorted(set(sizes)) == [6, 16] and eager.steps == 10  # 4 full + 1 partial per epoch
    sizes.clear()
    for mode in ("default", "reduce-overhead"):
        compiled = fit_torch(torch.nn.Linear(3, 1), data, loss, replace(cfg, compile=mode))
        assert compiled.steps == 8  # the partial batch dropped: one graph serves every step
    assert set(sizes) == {16}
    tiny = TensorSource({"x": torch.randn(5, 3), "y": torch.randn(5)})  # less than a batch
    hist = fit_torch(torch.nn.Linear(3, 1), tiny, loss, replace(cfg, compile=True))
    assert hist.steps == 2  # kept: one (partial) batch is still one shape


# ---------------------------------------------------------------------------- RNN precision
def test_recurrent_layers_stay_fp32_under_autocast() -> None:
    torch.manual_seed(0)
    net = RNNNet(RNNConfig(n_features=3, hidden=8)).eval()
    x = torch.randn(4, 7, 3)
    plain = net.encode(x)
    with torch.autocast("cpu", dtype=BF16):
        mixed = net.encode(x)
    assert mixed.dtype == FP32
    torch.testing.assert_close(mixed, plain, rtol=0, atol=0)  # the fp32 kernels, untouched
    net_ac = RNNNet(RNNConfig(n_features=3, hidden=8, recurrent_precision="autocast")).eval()
    net_ac.load_state_dict(net.state_dict())
    torch.testing.assert_close(net_ac.encode(x), plain, rtol=0, atol=0)  # same without autocast
    with pytest.raises(ConfigError, match="recurrent_precision"):
        RNNConfig(n_features=3, recurrent_precision="bf16")


# ---------------------------------------------------------------------------- measuring helpers
def test_measuring_helpers_off_cuda() -> None:
    cpu = torch.device("cpu")
    dev.reset_peak_memory(cpu)  # a no-op, and no "Invalid device argument"
    dev.synchronize(cpu)
    assert dev.peak_flops(cpu, BF16) is None
    assert torch.isnan(torch.tensor(dev.peak_memory_mib(cpu)))
    assert not dev.cuda_graphs_supported(cpu)
