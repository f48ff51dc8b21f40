"""Return tokenizers: usage, round trips, train-only normalisation, save/load, quantile bins,
multi-field patches, k-means and code statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from alphaforge.data import synthetic_panel
from alphaforge.errors import ConfigError, DataError, NotFittedError
from alphaforge.models.tokenizer import (
    QuantileTokenizer,
    TokenizerConfig,
    VQVAETokenizer,
    bar_fields,
    code_perplexity,
    codebook_usage,
    kmeans,
    load_tokenizer,
    panel_patches,
    tokenize_panel,
)


@pytest.fixture(scope="module")
def returns() -> tuple[np.ndarray, np.ndarray]:
    """GARCH returns of a synthetic panel as (train, later) patches of one bar."""
    panel = synthetic_panel(n_symbols=8, n_bars=500, seed=3)
    patches, where = panel_patches(bar_fields(panel), 1)
    cut = where["timestamp"].sort_values().iloc[int(0.7 * len(where))]
    early = np.asarray(where["timestamp"] <= cut)
    return patches[early], patches[~early]


def _vq(**kw) -> VQVAETokenizer:
    params = {"codebook_size": 32, "max_epochs": 10, "batch_size": 256, "hidden": 32}
    return VQVAETokenizer(random_state=0, **{**params, **kw})


def test_vqvae_uses_most_codes_and_reconstructs(returns) -> None:
    train, later = returns
    tok = _vq().fit(train)
    rep = tok.report(train)
    assert rep["usage"] >= 0.9 and rep["perplexity"] > 0.6 * 32, rep
    assert tok.net_.restarts > 0  # dead codes were restarted during training
    held = tok.report(later)
    assert held["usage"] >= 0.8
    assert held["mae"] < 0.1 * held["return_std"], held  # 32 codes: ~1/30 of a std per bar
    decoded = tok.decode(tok.encode(later))
    assert decoded.shape == later.shape


def test_dead_code_restarts_raise_usage(returns) -> None:
    train, _ = returns
    without = _vq(dead_fraction=0.0, kmeans_iters=0, max_epochs=3, min_steps=0).fit(train)
    with_restarts = _vq(max_epochs=3, min_steps=0).fit(train)
    assert without.net_.restarts == 0
    assert with_restarts.report(train)["usage"] >= without.report(train)["usage"]


def test_normalisation_is_fitted_on_training_patches_only(returns) -> None:
    train, later = returns
    for tok in (
        _vq(max_epochs=1, min_steps=0).fit(train),
        QuantileTokenizer(codebook_size=16).fit(train),
    ):
        assert np.allclose(tok.mean_, train.reshape(-1, 1).mean(0))
        assert np.allclose(tok.std_, train.reshape(-1, 1).std(0))
        mean = tok.mean_.copy()
        tok.encode(later * 100)  # encoding other data changes nothing learned
        assert np.array_equal(tok.mean_, mean)


@pytest.mark.parametrize("kind", [VQVAETokenizer, QuantileTokenizer])
def test_save_load_round_trip(kind, returns, tmp_path) -> None:
    train, later = returns
    tok = kind(random_state=0, codebook_size=16, max_epochs=1, min_steps=0).fit(train)
    path = tok.save(tmp_path / "tok")
    for f in path.iterdir():  # torch zip or JSON, never a raw pickle stream
        assert f.read_bytes()[:1] != b"\x80", f
    loaded = load_tokenizer(path)
    assert type(loaded) is kind and loaded.fields_ == tok.fields_
    assert np.array_equal(loaded.encode(later), tok.encode(later))
    assert np.array_equal(loaded.table_, tok.table_)
    with pytest.raises(DataError, match="not a saved tokenizer"):
        load_tokenizer(tmp_path / "missing")


def test_quantile_tokenizer_uses_every_code_equally(returns) -> None:
    train, _ = returns
    tok = QuantileTokenizer(codebook_size=64).fit(train)
    counts = np.bincount(tok.encode(train), minlength=64)
    assert codebook_usage(tok.encode(train), 64) == 1.0
    assert counts.max() - counts.min() <= 2
    assert np.all(np.diff(tok.decode_returns(np.arange(64))[:, 0]) > 0)  # bins are ordered


def test_multi_field_patches_and_shapes() -> None:
    panel = synthetic_panel(n_symbols=3, n_bars=120, seed=1)
    frame = bar_fields(panel, ("ret", "range", "volume"))
    assert frame.columns.tolist() == ["ret", "range", "volume"]
    patches, where = panel_patches(frame, 4)
    assert patches.shape == (3 * (119 // 4), 4, 3)  # first bar has no return
    assert (where.groupby("symbol").size() == 119 // 4).all()
    tok = _vq(codebook_size=8, patch=4, max_epochs=1, min_steps=5).fit(
        patches, fields=("ret", "range", "volume")
    )
    assert tok.decode(tok.encode(patches[:5])).shape == (5, 4, 3)
    with pytest.raises(DataError, match=r"shape \(n, 4, 3\)"):
        tok.encode(patches[:, :2])
    with pytest.raises(ConfigError, match="fields must start with 'ret'"):
        bar_fields(panel, ("range",))
    with pytest.raises(NotFittedError):
        QuantileTokenizer().encode(patches)


def test_kmeans_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    x = (centres[:, None] + 0.1 * torch.randn(3, 50, 2, generator=g)).reshape(-1, 2)
    got = kmeans(x, 3, iters=10, generator=g)
    assert torch.cdist(centres, got).min(1).values.max() < 0.1


def test_code_statistics() -> None:
    assert codebook_usage([0, 1, 1, 3], 8) == 0.375
    assert code_perplexity(np.arange(16), 16) == pytest.approx(16)
    assert code_perplexity([2, 2, 2], 16) == pytest.approx(1)


def test_tokenize_panel_fits_on_early_timestamps_only() -> None:
    panel = synthetic_panel(n_symbols=3, n_bars=200, seed=2)
    tok = QuantileTokenizer(codebook_size=8)
    tokens, meta = tokenize_panel(panel, tok, train_frac=0.5)
    end = pd.Timestamp(meta["train_end"])
    early = bar_fields(panel)[panel.index.get_level_values("timestamp") <= end]["ret"].dropna()
    assert tok.mean_[0] == pytest.approx(early.mean())
    assert len(tokens) == 3 * 199 and meta["report_train"]["usage"] == 1.0


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"TokenizerConfig\.codebook_size must be an int >= 2"):
        TokenizerConfig(codebook_size=1)
    with pytest.raises(ConfigError, match="decay"):
        TokenizerConfig(decay=1.0)
