"""Return tokenizers and token statistics: usage, round trips, train-only normalisation,
save/load, quantile bins, streams, baselines and analysis tables against naive loops."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from alphaforge.data import synthetic_panel
from alphaforge.errors import ConfigError, DataError, NotFittedError
from alphaforge.models.tokenizer import (
    QuantileTokenizer,
    TokenStreams,
    VQVAETokenizer,
    analyze_tokens,
    bar_fields,
    bigram_baseline,
    code_perplexity,
    codebook_usage,
    kmeans,
    load_tokenizer,
    outlier_tokens,
    panel_patches,
    read_tokens,
    tokenize_panel,
    top_ngrams,
    transition_matrix,
    unigram_baseline,
    write_tokens,
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
    for tok in (_vq(max_epochs=1, min_steps=0).fit(train), QuantileTokenizer(codebook_size=16)
                .fit(train)):
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
        patches, fields=("ret", "range", "volume"))
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


# ---------------------------------------------------------------------------- streams
def _streams(docs: list[list[int]]) -> TokenStreams:
    frames = [pd.DataFrame({"symbol": f"S{i}", "token": d,
                            "timestamp": pd.date_range("2021-01-01", periods=len(d))})
              for i, d in enumerate(docs)]
    return TokenStreams.from_frame(pd.concat(frames).sample(frac=1.0, random_state=0))


def test_streams_split_by_time() -> None:
    s = _streams([[1, 2, 3, 4, 5], [6, 7], [8, 9, 10, 11]])
    assert s.symbols == ("S0", "S1", "S2") and s.tokens.tolist() == list(range(1, 12))
    train, valid = s.split(pd.Timestamp("2021-01-03"))
    assert train.tokens.tolist() == [1, 2, 3, 6, 7, 8, 9, 10]
    assert valid.symbols == ("S0", "S2") and valid.target_from.tolist() == [3, 3]
    assert valid.tokens[valid.target_mask()].tolist() == [4, 5, 11]
    assert valid.previous().tolist() == [-1, 1, 2, 3, 4, -1, 8, 9, 10]
    with pytest.raises(DataError, match="need both > 0"):
        s.split(pd.Timestamp("2030-01-01"))


def test_token_file_round_trip(tmp_path) -> None:
    s = _streams([[1, 2, 3], [4, 5]])
    path = write_tokens(tmp_path / "t.parquet", s.to_frame(), {"vocab_size": 8})
    frame, meta = read_tokens(path)
    assert meta == {"vocab_size": 8}
    assert TokenStreams.from_frame(frame).tokens.tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(DataError, match="cannot read tokens"):
        read_tokens(tmp_path / "nope.parquet")


def test_tokenize_panel_fits_on_early_timestamps_only() -> None:
    panel = synthetic_panel(n_symbols=3, n_bars=200, seed=2)
    tok = QuantileTokenizer(codebook_size=8)
    tokens, meta = tokenize_panel(panel, tok, train_frac=0.5)
    end = pd.Timestamp(meta["train_end"])
    early = bar_fields(panel)[panel.index.get_level_values("timestamp") <= end]["ret"].dropna()
    assert tok.mean_[0] == pytest.approx(early.mean())
    assert len(tokens) == 3 * 199 and meta["report_train"]["usage"] == 1.0


# ---------------------------------------------------------------------------- baselines
def test_bigram_baseline_is_exact_on_a_cycle_and_beats_unigram() -> None:
    cycle = [0, 1, 2, 3] * 50
    train, valid = _streams([cycle, cycle]).split(pd.Timestamp("2021-01-01") +
                                                  pd.Timedelta(days=149))
    bi, uni = bigram_baseline(train, valid, 4, alpha=1e-6), unigram_baseline(train, valid, 4)
    assert bi["accuracy"] == 1.0 and bi["cross_entropy"] < 1e-4
    assert uni["cross_entropy"] == pytest.approx(np.log(4), rel=1e-3)
    assert uni["top5_accuracy"] == 1.0 and bi["n_tokens"] == uni["n_tokens"] == 100


# ---------------------------------------------------------------------------- analysis
def test_analysis_tables_match_naive_loops() -> None:
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 6, size=n).tolist() for n in (40, 1, 25)]
    s = _streams(docs)
    naive_t, naive_3 = np.zeros((6, 6)), Counter()
    for d in docs:
        for a, b in zip(d[:-1], d[1:], strict=True):
            naive_t[a, b] += 1
        for i in range(len(d) - 2):
            naive_3[" ".join(map(str, d[i:i + 3]))] += 1
    assert np.array_equal(transition_matrix(s, 6, normalize=False).to_numpy(), naive_t)
    probs = transition_matrix(s, 6).to_numpy()
    assert np.allclose(probs.sum(1)[naive_t.sum(1) > 0], 1.0)
    grams = top_ngrams(s, 3, top=1000)
    assert dict(zip(grams["ngram"], grams["count"], strict=True)) == dict(naive_3)
    assert grams["count"].is_monotonic_decreasing


def test_analyze_tokens_and_outliers(returns) -> None:
    train, _ = returns
    tok = QuantileTokenizer(codebook_size=16).fit(train)
    where = pd.DataFrame({"symbol": "A", "timestamp": pd.date_range("2020", periods=len(train)),
                          "token": tok.encode(train)})
    s = TokenStreams.from_frame(where)
    tables = analyze_tokens(s, 16, tok, top=5)
    assert set(tables) == {"frequencies", "transitions", "entropy", "ngrams_2", "ngrams_3",
                           "outliers"}
    freq = tables["frequencies"]
    assert freq["count"].sum() == len(train) and "decoded_return" in freq
    entropy = dict(zip(tables["entropy"]["metric"], tables["entropy"]["value"], strict=True))
    assert entropy["unigram_entropy_bits"] == pytest.approx(4.0, abs=0.01)  # equal bins
    out = tables["outliers"]
    assert set(out["reason"]) <= {"extreme", "rare", "rare, extreme"}
    assert (out["z"].abs() > 3).all()  # equal bins: none rare, only the extreme tails
    rare = outlier_tokens(_streams([[0] * 50 + [1]]), 4)
    assert rare["token"].tolist() == [2, 3, 1]  # never seen first, then the rarest seen
